"""The "cells" layout: x4 up-convolutions compute their output by 4x4 cells, (..., h, w, C, 16), which is the
memory order of a channels-last convolution's output; element-wise work on those outputs is done in that
layout, before the pixel shuffle to (..., C, 4h, 4w): in the image layout each pixel's inputs are gathered
from strided places, which compiled loops do not vectorise."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cells_to_image(cells: torch.Tensor) -> torch.Tensor:
    """(..., h, w, C, 16) -> (..., C, 4h, 4w): entry [i, j, c, 4a + b] is pixel (4i + a, 4j + b) of channel c."""
    *lead, h, w, c, _ = cells.shape
    flat = cells.reshape(-1, h, w, c * 16).permute(0, 3, 1, 2)  # (M, C*16, h, w), channels-last
    return pixel_shuffle4(flat).view(*lead, c, 4 * h, 4 * w)


def image_to_cells(image: torch.Tensor) -> torch.Tensor:
    """(N, C, 4h, 4w) -> (N, h, w, C, 16), the inverse of `cells_to_image`."""
    c = image.shape[1]
    return F.pixel_unshuffle(image, 4).permute(0, 2, 3, 1).unflatten(-1, (c, 16))


def pixels_last(image: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) in the memory layout `cells_to_image` gives (each pixel's C values side by side), with
    the same strides for every tensor of a shape (also along dimensions of size 1, which a compiled graph's
    guards compare too); no copy if it has that layout already."""
    moved = image.movedim(-3, -1).contiguous()
    return moved.view(-1).view(moved.shape).movedim(-1, -3)


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
