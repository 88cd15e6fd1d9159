"""Faster forms of the reference blocks (`nn/blocks.py`), each computed from the block's own parameters:
vector MLPs for convolutions on 1x1 maps, the transposed convolution as a sub-pixel convolution in the
cells layout, and a first convolution that runs input channels shared by a frame's slots once per frame."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..nn.blocks import (
    AggressiveConvTo1x1,
    AggressiveDownConv,
    AggressiveUpConv,
    ResidualBlock,
    as_computed,
    channel_skip,
)
from .cache import derived


def residual(block: ResidualBlock, x: torch.Tensor) -> torch.Tensor:
    """block(x); on 1x1 maps with 1x1 kernels as linear layers, which run much faster than convolutions (CPU)."""
    if x.shape[-2:] != (1, 1) or block.conv1.kernel_size != (1, 1):
        return block(x)
    y = F.relu(as_computed(x)) if block.leading_relu else x
    y = F.relu(F.linear(y.flatten(1), block.conv1.weight.flatten(1), block.conv1.bias))
    y = F.linear(y, block.conv2.weight.flatten(1), block.conv2.bias)[..., None, None]
    return (block.scale(y) if block.scale is not None else y) + channel_skip(x, block.cout)


def residuals(blocks, x: torch.Tensor) -> torch.Tensor:
    """A sequence of blocks, each through `residual`."""
    for block in blocks:
        x = residual(block, x) if isinstance(block, ResidualBlock) else to_1x1(block, x)
    return x


def to_1x1(block: AggressiveConvTo1x1, x: torch.Tensor) -> torch.Tensor:
    """block(x), its last convolution (which covers its whole input) as a linear layer."""
    y = F.relu(block.conv1(x))  # (N, cin, kh, kw): exactly the last kernel's size
    y = F.linear(y.flatten(1), block.conv2.weight.flatten(1), block.conv2.bias)[..., None, None]
    return block.scale(y) + channel_skip(x.mean((2, 3), keepdim=True), block.cout)


def subpixel_weight(weight: torch.Tensor) -> torch.Tensor:
    """Rewrite a ConvTranspose2d(kernel 12, stride 4, padding 4) weight (cin, cout, 12, 12) as the
    weight (cout*16, cin, 3, 3) of a 3x3 convolution (padding 1) whose output, pixel-shuffled by 4,
    is the transposed convolution's output: output pixel (4y + a, 4x + b) only sees inputs
    y-1..y+1, x-1..x+1, through kernel taps 4(1 - dy) + a, 4(1 - dx) + b. Same function, but a
    plain convolution, which is several times faster on CPUs than the transposed one."""
    cin, cout = weight.shape[:2]
    taps = weight.view(cin, cout, 3, 4, 3, 4).flip(2, 4)  # [ci, co, dy, a, dx, b]
    return taps.permute(1, 3, 5, 0, 2, 4).reshape(cout * 16, cin, 3, 3)


def _subpixel(block: AggressiveUpConv) -> tuple[torch.Tensor, torch.Tensor]:
    alpha = block.scale.alpha
    return subpixel_weight(block.up.weight) * alpha, (block.up.bias * alpha).repeat_interleave(16)


def up_cells(block: AggressiveUpConv, x: torch.Tensor) -> torch.Tensor:
    """block(x) by 4x4 cells, (N, h, w, cout, 16) (fast/layout.py). The whole sum is formed before the pixel
    shuffle, on the 16x smaller grid: alpha and the bias go into the sub-pixel convolution's weights, and the
    skip, the same channel average at all 16 sub-pixels, is added by broadcasting."""
    y = F.relu(block.conv(F.relu(as_computed(x))))
    weight, bias = derived(block, "subpixel", lambda: _subpixel(block), block.up.weight, block.up.bias,
                           block.scale.alpha)
    out = F.conv2d(y, weight, bias, padding=1).permute(0, 2, 3, 1).unflatten(-1, (block.cout, 16))
    return out + channel_skip(x, block.cout).permute(0, 2, 3, 1).unsqueeze(-1)


@dataclass(frozen=True)
class GroupedInput:
    """An (N, C, H, W) input whose channels `shared_channels` are the same for each group of `N / G`
    consecutive rows (a frame's slots), held without the repetition: `own` (N, C - S, H, W) holds the
    channels `own_channels`, `shared` (G, S, H, W) the others. A convolution of it runs the shared
    channels once per group."""

    own: torch.Tensor
    shared: torch.Tensor
    own_channels: tuple[int, ...]
    shared_channels: tuple[int, ...]

    def split(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A convolution weight (Cout, C, k, k) -> its parts for `own` and for `shared`."""
        return weight[:, list(self.own_channels)], weight[:, list(self.shared_channels)]

    def conv2d(self, weights: tuple[torch.Tensor, torch.Tensor], bias: torch.Tensor | None, **kwargs) -> torch.Tensor:
        """The convolution with weights = split(weight) of the full input."""
        own = F.conv2d(self.own, weights[0], bias, **kwargs)  # (N, Cout, h, w)
        shared = F.conv2d(self.shared, weights[1], None, **kwargs)  # (G, Cout, h, w)
        return (own.unflatten(0, (shared.shape[0], -1)) + shared.unsqueeze(1)).flatten(0, 1)

    def map(self, fn) -> GroupedInput:
        """The same channel-wise function (pooling, resizing) applied to both parts."""
        return GroupedInput(fn(self.own), fn(self.shared), self.own_channels, self.shared_channels)

    def full(self) -> torch.Tensor:
        """(N, C, H, W), channels in their original order."""
        shared = self.shared.repeat_interleave(self.own.shape[0] // self.shared.shape[0], 0)
        order = torch.tensor(self.own_channels + self.shared_channels).argsort()
        return torch.cat([self.own, shared], 1)[:, order.to(self.own.device)]


def _first_weight(block: AggressiveDownConv, fold_input: int, x: torch.Tensor | GroupedInput):
    weight = block.conv1.weight
    if fold_input > 1:  # x has cin / fold_input channels, each standing for fold_input copies
        weight = weight.unflatten(1, (block.cin // fold_input, fold_input)).sum(2)
    return x.split(weight) if isinstance(x, GroupedInput) else weight


def down_conv(block: AggressiveDownConv, x: torch.Tensor | GroupedInput, fold_input: int = 1) -> torch.Tensor:
    """block(x) for an input held as a GroupedInput, or (`fold_input` = k > 1) for the narrower tensor whose
    k-fold consecutive channel duplication is the block's input: the duplication is folded into the
    convolution weights (sum over the k copies), k times fewer multiply-adds in the big 11x11 convolution."""
    groups = (x.own_channels, x.shared_channels) if isinstance(x, GroupedInput) else None
    weight = derived(block, f"conv1 {fold_input} {groups}", lambda: _first_weight(block, fold_input, x),
                     block.conv1.weight)
    if isinstance(x, GroupedInput):
        first = x.conv2d(weight, block.conv1.bias, stride=4, padding=5)
        pooled = x.map(lambda t: F.avg_pool2d(t, 4)).full()
    else:
        first = F.conv2d(x, weight, block.conv1.bias, stride=4, padding=5)
        pooled = F.avg_pool2d(x, 4)
    return block.finish(first, pooled)
