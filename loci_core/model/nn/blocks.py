"""Building blocks: every learned branch sits beside a parameter-free skip path.

Most branches are multiplied by a learnable scalar that starts near zero, so an untrained
network is a fixed pipeline of pooling, channel averaging/duplication and upsampling, and
training gradually opens the branches. This is also what makes the resolution growth
(level 1 -> level 2) nearly function-preserving.

These are the reference forms; `model/fast/blocks.py` computes the same functions faster.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


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

    def forward(self, x):
        """x (N, cin, h, w) -> (N, cout, h, w)."""
        y = F.relu(as_computed(x)) if self.leading_relu else x
        return self.finish(self.conv1(y), channel_skip(x, self.cout))

    def finish(self, first: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """The block from the output of its first convolution on: first (N, cout, h, w), skip = channel_skip(x,
        cout)."""
        y = self.conv2(F.relu(first))
        return (self.scale(y) if self.scale is not None else y) + skip


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


class AggressiveDownConv(nn.Module):
    """x1/4 resolution: y = repeat_channels(avgpool4(x)) + alpha * [Conv11 s4 -> ReLU -> Conv3]."""

    def __init__(self, cin: int, cout: int, alpha: float):
        super().__init__()
        if cout % cin:
            raise ValueError(f"AggressiveDownConv needs cout ({cout}) to be a multiple of cin ({cin})")
        self.cin, self.cout = cin, cout
        self.conv1 = nn.Conv2d(cin, cout, 11, stride=4, padding=5)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.scale = Scale(alpha)

    def forward(self, x):
        """x (N, cin, H, W) -> (N, cout, H/4, W/4)."""
        return self.finish(self.conv1(x), F.avg_pool2d(x, 4))

    def finish(self, first: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """The block from the output of its first convolution and the pooled input on."""
        return self.scale(self.conv2(F.relu(first))) + channel_skip(pooled, self.cout)


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
        """x (N, cin, h, w) -> (N, cout, 1, 1)."""
        y = self.conv2(F.relu(self.conv1(x)))
        return self.scale(y) + channel_skip(x.mean((2, 3), keepdim=True), self.cout)


class AggressiveUpConv(nn.Module):
    """x4 resolution: y = nearest4(average_channels(x)) + alpha * [ReLU -> Conv3 -> ReLU -> ConvT12 s4]."""

    def __init__(self, cin: int, cout: int, alpha: float):
        super().__init__()
        self.cout = cout
        self.conv = nn.Conv2d(cin, cin, 3, padding=1)
        self.up = nn.ConvTranspose2d(cin, cout, 12, stride=4, padding=4)
        self.scale = Scale(alpha)

    def forward(self, x):
        """x (N, cin, h, w) -> (N, cout, 4h, 4w)."""
        y = self.up(F.relu(self.conv(F.relu(as_computed(x)))))
        return self.scale(y) + F.interpolate(channel_skip(x, self.cout), scale_factor=4, mode="nearest")
