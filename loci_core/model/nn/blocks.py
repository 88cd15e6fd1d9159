"""Building blocks: every learned branch sits beside a parameter-free skip path.

Most branches are multiplied by a learnable scalar that starts near zero, so an untrained
network is a fixed pipeline of pooling, channel averaging/duplication and upsampling, and
training gradually opens the branches. This is also what makes the resolution growth
(level 1 -> level 2) nearly function-preserving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .derived import derived


def channel_skip(x: torch.Tensor, cout: int, dim: int = 1) -> torch.Tensor:
    """Parameter-free channel change along `dim` (the channel axis).

    cin > cout: average groups of consecutive channels; cout > cin: repeat each channel
    consecutively (c0, c0, c1, c1, ...); otherwise average down to gcd then repeat."""
    cin = x.shape[dim]
    if cin == cout:
        return x
    if cin % cout == 0:
        return x.unflatten(dim, (cout, cin // cout)).mean(dim + 1 if dim >= 0 else dim)
    if cout % cin == 0:
        return x.repeat_interleave(cout // cin, dim=dim)
    g = math.gcd(cin, cout)
    return channel_skip(channel_skip(x, g, dim), cout, dim)


def as_computed(x: torch.Tensor) -> torch.Tensor:
    """x in the dtype an autocast region gives a convolution (the same values it would see), or x. A ReLU of the
    result before a convolution keeps one half-size tensor for backward, where a ReLU of x keeps x's float32
    output beside the convolution's half-size copy of it (training under `train.precision: bfloat16`)."""
    if x.requires_grad and torch.is_autocast_enabled(x.device.type):
        return x.to(torch.get_autocast_dtype(x.device.type))
    return x


class Scale(nn.Module):
    """A learnable scalar multiplier (the residual-branch gate), initialised to `init`."""

    def __init__(self, init: float):
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x):
        return x * self.alpha


class ResidualBlock(nn.Module):
    """y = scale(F(x)) + skip(x), F = [ReLU] -> Conv k -> ReLU -> Conv k (cout -> cout).

    `alpha=None` is the plain block (branch not scaled); a float adds a learnable scale."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, leading_relu: bool = True,
                 alpha: float | None = None):
        super().__init__()
        self.cout = cout
        self.leading_relu = leading_relu
        self.conv1 = nn.Conv2d(cin, cout, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(cout, cout, kernel, padding=kernel // 2)
        self.scale = Scale(alpha) if alpha is not None else None

    def forward(self, x, skip: torch.Tensor | None = None):
        """`skip`, if given, is channel_skip(x, cout), from a caller that has it cheaper."""
        y = F.relu(as_computed(x)) if self.leading_relu else x
        if x.shape[-2:] == (1, 1) and self.conv1.kernel_size == (1, 1):
            # on 1x1 maps the block is a vector MLP, which linear layers run much faster than convolutions (CPU)
            y = F.relu(F.linear(y.flatten(1), self.conv1.weight.flatten(1), self.conv1.bias))
            y = F.linear(y, self.conv2.weight.flatten(1), self.conv2.bias)[..., None, None]
            return self._scaled(y) + (channel_skip(x, self.cout) if skip is None else skip)
        return self.finish(self.conv1(y), channel_skip(x, self.cout) if skip is None else skip)

    def finish(self, first: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """The block from the output of its first convolution on (for a caller that computes that
        convolution its own way): first (N, cout, h, w), skip = channel_skip(x, cout)."""
        return self._scaled(self.conv2(F.relu(first))) + skip

    def _scaled(self, y):
        return self.scale(y) if self.scale is not None else y


class LinearResidual(nn.Module):
    """Vector version of ResidualBlock: y = skip(x) + [ReLU] -> Linear -> ReLU -> Linear."""

    def __init__(self, cin: int, cout: int, leading_relu: bool = True):
        super().__init__()
        self.cout = cout
        self.leading_relu = leading_relu
        self.fc1 = nn.Linear(cin, cout)
        self.fc2 = nn.Linear(cout, cout)

    def forward(self, x):
        y = F.relu(x) if self.leading_relu else x
        return self.fc2(F.relu(self.fc1(y))) + channel_skip(x, self.cout, dim=-1)


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


class AggressiveDownConv(nn.Module):
    """x1/4 resolution: y = repeat_channels(avgpool4(x)) + alpha * [Conv11 s4 -> ReLU -> Conv3].

    `fold_input` (an integer k) tells the block its input is a k-fold consecutive channel
    duplication of a narrower tensor: it then takes that narrower tensor and folds the
    duplication into the convolution weights (sum over the k copies) — the same function,
    k times fewer multiply-adds in the big 11x11 convolution."""

    def __init__(self, cin: int, cout: int, alpha: float):
        super().__init__()
        if cout % cin:
            raise ValueError(f"AggressiveDownConv needs cout ({cout}) to be a multiple of cin ({cin})")
        self.cin, self.cout = cin, cout
        self.conv1 = nn.Conv2d(cin, cout, 11, stride=4, padding=5)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.scale = Scale(alpha)

    def _first_weight(self, fold_input: int, x: torch.Tensor | GroupedInput):
        weight = self.conv1.weight
        if fold_input > 1:  # x has cin / fold_input channels, each standing for fold_input copies
            weight = weight.unflatten(1, (self.cin // fold_input, fold_input)).sum(2)
        return x.split(weight) if isinstance(x, GroupedInput) else weight

    def forward(self, x: torch.Tensor | GroupedInput, fold_input: int = 1):
        groups = (x.own_channels, x.shared_channels) if isinstance(x, GroupedInput) else None
        weight = derived(self, f"conv1 {fold_input} {groups}", lambda: self._first_weight(fold_input, x),
                         self.conv1.weight)
        if isinstance(x, GroupedInput):
            y = x.conv2d(weight, self.conv1.bias, stride=4, padding=5)
            pooled = x.map(lambda t: F.avg_pool2d(t, 4)).full()
        else:
            y = F.conv2d(x, weight, self.conv1.bias, stride=4, padding=5)
            pooled = F.avg_pool2d(x, 4)
        return self.scale(self.conv2(F.relu(y))) + channel_skip(pooled, self.cout)


class AggressiveConvTo1x1(nn.Module):
    """(cin, h, w) -> (cout, 1, 1): y = repeat_channels(mean(x)) + alpha * [Conv5 s3 -> ReLU -> Conv k].

    The last kernel covers the whole inner map: ((h+1)//3+1, (w+1)//3+1) (6x8 for 15x20)."""

    def __init__(self, cin: int, cout: int, grid: tuple[int, int], alpha: float):
        super().__init__()
        self.cout = cout
        h, w = grid
        self.conv1 = nn.Conv2d(cin, cin, 5, stride=3, padding=3)
        self.conv2 = nn.Conv2d(cin, cout, ((h + 1) // 3 + 1, (w + 1) // 3 + 1))
        self.scale = Scale(alpha)

    def forward(self, x):
        y = F.relu(self.conv1(x))  # (N, cin, kh, kw): exactly the last kernel's size
        # a convolution that covers its whole input is a linear layer (and runs much faster as one on a CPU)
        y = F.linear(y.flatten(1), self.conv2.weight.flatten(1), self.conv2.bias)[..., None, None]
        return self.scale(y) + channel_skip(x.mean((2, 3), keepdim=True), self.cout)


def subpixel_weight(weight: torch.Tensor) -> torch.Tensor:
    """Rewrite a ConvTranspose2d(kernel 12, stride 4, padding 4) weight (cin, cout, 12, 12) as the
    weight (cout*16, cin, 3, 3) of a 3x3 convolution (padding 1) whose output, pixel-shuffled by 4,
    is the transposed convolution's output: output pixel (4y + a, 4x + b) only sees inputs
    y-1..y+1, x-1..x+1, through kernel taps 4(1 - dy) + a, 4(1 - dx) + b. Same function, but a
    plain convolution, which is several times faster on CPUs than the transposed one."""
    cin, cout = weight.shape[:2]
    taps = weight.view(cin, cout, 3, 4, 3, 4).flip(2, 4)  # [ci, co, dy, a, dx, b]
    return taps.permute(1, 3, 5, 0, 2, 4).reshape(cout * 16, cin, 3, 3)


class AggressiveUpConv(nn.Module):
    """x4 resolution: y = nearest4(average_channels(x)) + alpha * [ReLU -> Conv3 -> ReLU -> ConvT12 s4].

    The transposed convolution is stored as such (its parameters and initialisation) but computed
    as a 3x3 convolution + pixel shuffle (`subpixel_weight`). The whole sum is formed before the
    pixel shuffle, on the 16x smaller latent grid: alpha and the bias go into that convolution's
    weights, and the skip, the same channel average at all 16 sub-pixels, is added to them by
    broadcasting, cheaper than adding bias, scale and skip at the output resolution."""

    def __init__(self, cin: int, cout: int, alpha: float):
        super().__init__()
        self.cout = cout
        self.conv = nn.Conv2d(cin, cin, 3, padding=1)
        self.up = nn.ConvTranspose2d(cin, cout, 12, stride=4, padding=4)
        self.scale = Scale(alpha)

    def _subpixel(self) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = self.scale.alpha
        return subpixel_weight(self.up.weight) * alpha, (self.up.bias * alpha).repeat_interleave(16)

    def cells(self, x):
        """x (N, cin, h, w) -> the output by 4x4 cells, (N, h, w, cout, 16) (see `cells_to_image`)."""
        y = F.relu(self.conv(F.relu(as_computed(x))))
        weight, bias = derived(self, "subpixel", self._subpixel, self.up.weight, self.up.bias, self.scale.alpha)
        out = F.conv2d(y, weight, bias, padding=1).permute(0, 2, 3, 1).unflatten(-1, (self.cout, 16))
        return out + channel_skip(x, self.cout).permute(0, 2, 3, 1).unsqueeze(-1)

    def forward(self, x):
        return cells_to_image(self.cells(x))


def cells_to_image(cells: torch.Tensor) -> torch.Tensor:
    """(..., h, w, C, 16) -> (..., C, 4h, 4w): entry [i, j, c, 4a + b] is pixel (4i + a, 4j + b) of channel c.
    The up-convolutions compute their output in this layout (the memory order of a channels-last convolution's
    output), then shuffle its pixels; element-wise work on their outputs is done before that shuffle: in the
    image layout each pixel's inputs are gathered from strided places, which compiled loops do not vectorise."""
    *lead, h, w, c, _ = cells.shape
    flat = cells.reshape(-1, h, w, c * 16).permute(0, 3, 1, 2)  # (M, C*16, h, w), channels-last
    return pixel_shuffle4(flat).view(*lead, c, 4 * h, 4 * w)


def pixels_last(image: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) in the memory layout `cells_to_image` gives (each pixel's C values side by side), with
    the same strides for every tensor of a shape (also along dimensions of size 1, which a compiled graph's
    guards compare too); no copy if it has that layout already."""
    moved = image.movedim(-3, -1).contiguous()
    return moved.view(-1).view(moved.shape).movedim(-1, -3)


def image_to_cells(image: torch.Tensor) -> torch.Tensor:
    """(N, C, 4h, 4w) -> (N, h, w, C, 16), the inverse of `cells_to_image`."""
    c = image.shape[1]
    return F.pixel_unshuffle(image, 4).permute(0, 2, 3, 1).unflatten(-1, (c, 16))


def pixel_shuffle4(x: torch.Tensor) -> torch.Tensor:
    """F.pixel_shuffle(x, 4), values and memory layout; without gradients, a gather of x's memory through an
    index kept per shape and layout, which runs faster on a CPU than the shuffle (a 6-D strided copy of
    4-element runs). Level-1 sizes only: the index of a level-2 output would take tens of MB."""
    dense = x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)
    if torch.is_grad_enabled() or torch.compiler.is_compiling() or not dense or x.numel() > GATHER_LIMIT:
        return F.pixel_shuffle(x, 4)
    key = (x.shape, x.stride(), x.device)
    entry = _shuffle_index.get(key)
    if entry is None:
        with torch.inference_mode(False):
            offsets = torch.arange(x.numel(), device=x.device, dtype=torch.int32).as_strided(x.shape, x.stride())
            shuffled = F.pixel_shuffle(offsets, 4)
            # gathered in the memory order of the shuffle's output (channels-last for a channels-last input, as
            # the up-convolutions give it): eager and compiled steps then give their outputs the same layout
            last = not shuffled.is_contiguous()
            entry = (shuffled.permute(0, 2, 3, 1) if last else shuffled).reshape(-1), last
        if len(_shuffle_index) >= 32:  # shapes vary with the batch and the number of re-spawned slots
            _shuffle_index.pop(next(iter(_shuffle_index)))
        _shuffle_index[key] = entry
    index, last = entry
    n, c, h, w = x.shape
    gathered = x.as_strided((x.numel(),), (1,)).index_select(0, index)
    if last:
        return gathered.view(n, 4 * h, 4 * w, c // 16).permute(0, 3, 1, 2)
    return gathered.view(n, c // 16, 4 * h, 4 * w)


GATHER_LIMIT = 2 ** 21  # elements (an 8 MB index); the small config's RGB output has 0.29 M at B=1, 2.3 M at B=8
_shuffle_index: dict = {}  # (shape, strides, device) -> gather index, the oldest dropped beyond 32
