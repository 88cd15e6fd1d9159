"""The decoder (`nn/decoder.py`), computed faster: the trunk's first convolution folded to one 3x3 kernel per
slot (its input has rank one per slot), and the heads by 4x4 cells (fast/layout.py) with sub-pixel
up-convolutions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nn.blocks import channel_skip
from ..nn.decoder import Decoder, _Head
from .blocks import up_cells
from .layout import cells_to_image


def neighbourhoods(maps: torch.Tensor) -> torch.Tensor:
    """maps (N, h, w) -> (N, h*w, 9): each position's zero-padded 3x3 neighbourhood, row by row (the
    order of a 3x3 convolution's weights). F.unfold gives the same, transposed, and ran slower eager."""
    n, h, w = maps.shape
    padded = F.pad(maps, (1, 1, 1, 1))
    return torch.stack([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], -1).view(n, h * w, 9)


def features_of_maps(decoder: Decoder, maps: torch.Tensor, gestalt: torch.Tensor) -> torch.Tensor:
    """decoder.features_of_maps(maps (B, O, h, w), gestalt (B, O, G)) -> (B*O, C, h, w), channels-last.

    The trunk's input, maps x gestalt, has rank one per slot: its first convolution is each slot's map
    convolved with its own 3x3 kernel (the weights summed over the gestalt), 1/G of the work and no
    (N, G, h, w) input to build; and its channel skip is maps x (the skip of the gestalt vector). As a
    batched matrix product over each position's 3x3 neighbourhood (a grouped convolution with one group per
    slot runs at a few GFLOP/s), faster eager and compiled."""
    b, o, h, w = maps.shape
    first = decoder.trunk[0]
    c = first.cout
    kernels = torch.einsum("cgk,ng->nkc", first.conv1.weight.flatten(2), gestalt.flatten(0, 1))  # (N, 9, C)
    y = torch.baddbmm(first.conv1.bias, neighbourhoods(maps.flatten(0, 1)), kernels)  # (N, h*w, C)
    y = y.view(b * o, h, w, c).permute(0, 3, 1, 2)  # (N, C, h, w), channels-last
    skip = maps.unsqueeze(-1) * channel_skip(gestalt, c, dim=-1)[:, :, None, None, :]  # (B, O, h, w, C)
    f = first.finish(y, skip.flatten(0, 1).permute(0, 3, 1, 2))
    return decoder.trunk[1:](f)


def features(decoder: Decoder, position, gestalt, priority=None) -> torch.Tensor:
    """decoder.features(position (B, O, 3), gestalt (B, O, G), priority (B, O) or None) -> (B*O, C, h, w)."""
    return features_of_maps(decoder, decoder.place(position, priority), gestalt)


def head_cells(head: _Head, features: torch.Tensor, level: int) -> torch.Tensor:
    """head(features (N, C, h, w), level) by 4x4 cells: (N, h * 4**(level-1), w * 4**(level-1), out, 16)."""
    f = head.block(features)
    if level == 1:
        return up_cells(head.level1, f)
    refine = head.level2
    nearest = cells_to_image(up_cells(head.level1, f)).permute(0, 2, 3, 1).unsqueeze(-1)  # a broadcast per cell
    return nearest + refine.scale(up_cells(refine.branch[-1], refine.branch[:-1](f)))


def mask_cells(decoder: Decoder, features, level: int) -> torch.Tensor:
    return head_cells(decoder.mask_head, features, level)[..., 0, :]  # (N, H/4, W/4, 16)


def rgb_cells(decoder: Decoder, features, level: int) -> torch.Tensor:
    return head_cells(decoder.rgb_head, features, level)  # (N, H/4, W/4, 3, 16)


def decode(decoder: Decoder, position, gestalt, priority=None, level: int = 1):
    """decoder(position, gestalt, priority, level): mask logits (B, O, H, W), RGB logits (B, O, 3, H, W)."""
    b, o = position.shape[:2]
    f = features(decoder, position, gestalt, priority)
    masks = cells_to_image(mask_cells(decoder, f, level).unsqueeze(-2)).squeeze(-3)
    return masks.unflatten(0, (b, o)), cells_to_image(rgb_cells(decoder, f, level)).unflatten(0, (b, o))


def appearance(decoder: Decoder, position, gestalt, level: int) -> torch.Tensor:
    """Un-occluded RGB logits: (B, O, 3) / (B, O, G) -> (B, O, 3, H, W)."""
    b, o = position.shape[:2]
    return cells_to_image(rgb_cells(decoder, features(decoder, position, gestalt), level)).unflatten(0, (b, o))
