"""Slot-wise decoder: (position, gestalt[, priority]) -> per-slot mask logits and RGB logits.

The "what" (gestalt) is placed in space only through the "where" Gaussian blob: the merged
latent is gaussian_map(position) * gestalt on the latent grid (optionally occlusion-corrected by
priority). A shared trunk follows, then a mask head and an RGB head, each ending in an x4
up-convolution (level 1). Level 2 adds, per head, a refinement branch on top of the
nearest-upsampled level-1 output, scaled by a learnable scalar starting at ~0 — so a level-1
model grown to level 2 renders the nearest-upsampled level-1 output.

The trunk and the heads are exposed separately so the model can run the trunk once on a stacked
batch (occluded + un-occluded decodes) and each head only where it is needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...config import ModelConfig
from .blocks import AggressiveUpConv, ResidualBlock, Scale, cells_to_image, channel_skip
from .gaussian import gaussian_maps, prioritize


def neighbourhoods(maps: torch.Tensor) -> torch.Tensor:
    """maps (N, h, w) -> (N, h*w, 9): each position's zero-padded 3x3 neighbourhood, row by row (the
    order of a 3x3 convolution's weights). F.unfold gives the same, transposed, and ran slower eager."""
    n, h, w = maps.shape
    padded = F.pad(maps, (1, 1, 1, 1))
    return torch.stack([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], -1).view(n, h * w, 9)


class _Level2Refinement(nn.Module):
    """out = nearest4(level1_out) + alpha * [RB, RB, UpConv C->e*k, UpConv e*k->k](features), by 4x4 cells (in
    which the nearest upsampling is a broadcast over each cell)."""

    def __init__(self, channels: int, out: int, expansion: int, alpha: float):
        super().__init__()
        self.branch = nn.Sequential(ResidualBlock(channels, channels), ResidualBlock(channels, channels),
                                    AggressiveUpConv(channels, expansion * out, 1.0),
                                    AggressiveUpConv(expansion * out, out, 1.0))
        self.scale = Scale(alpha)

    def cells(self, level1_out, features):
        """level1_out (N, k, h, w), features (N, C, h/4, w/4) -> (N, h, w, k, 16)."""
        nearest = level1_out.permute(0, 2, 3, 1).unsqueeze(-1)
        return nearest + self.scale(self.branch[-1].cells(self.branch[:-1](features)))


class _Head(nn.Module):
    def __init__(self, cfg: ModelConfig, out: int):
        super().__init__()
        c = cfg.decoder.channels
        self.block = ResidualBlock(c, c)
        self.level1 = AggressiveUpConv(c, out, cfg.up_branch_init)
        if cfg.max_level >= 2:
            self.level2 = _Level2Refinement(c, out, cfg.decoder.level2_expansion, cfg.up_branch_init)

    def cells(self, features, level: int):
        """features (N, C, h, w) -> the output by 4x4 cells, (N, h * 4**(level-1), w * 4**(level-1), out, 16)."""
        f = self.block(features)
        if level == 1:
            return self.level1.cells(f)
        return self.level2.cells(self.level1(f), f)

    def forward(self, features, level: int):
        """features (N, C, h, w) -> (N, out, h * 4**level, w * 4**level)."""
        return cells_to_image(self.cells(features, level))


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c, g = cfg.decoder.channels, cfg.gestalt_size
        self.latent_size = tuple(cfg.latent_size)
        self.trunk = nn.Sequential(ResidualBlock(g, c, leading_relu=False),
                                   *[ResidualBlock(c, c) for _ in range(cfg.decoder.num_layers - 1)])
        self.mask_head = _Head(cfg, 1)
        self.rgb_head = _Head(cfg, 3)

    def place(self, position, priority=None) -> torch.Tensor:
        """position (B, O, 3), priority (B, O) or None -> Gaussian maps (B, O, h, w) on the latent grid."""
        maps = gaussian_maps(position, self.latent_size)
        return prioritize(maps, priority) if priority is not None else maps

    def features_of_maps(self, maps, gestalt) -> torch.Tensor:
        """maps (B, O, h, w), gestalt (B, O, G) -> trunk features (B*O, C, h, w)."""
        b, o, h, w = maps.shape
        first = self.trunk[0]
        c = first.cout
        # The trunk's input, maps x gestalt, has rank one per slot: its first convolution is each slot's map
        # convolved with its own 3x3 kernel (the weights summed over the gestalt), 1/G of the work and no
        # (N, G, h, w) input to build; and its channel skip is maps x (the skip of the gestalt vector).
        # As a batched matrix product over each position's 3x3 neighbourhood (a grouped convolution with one
        # group per slot runs at a few GFLOP/s), faster eager and compiled. Its (N, h*w, C)
        # result is already channels-last, the layout the next convolution wants.
        kernels = torch.einsum("cgk,ng->nkc", first.conv1.weight.flatten(2), gestalt.flatten(0, 1))  # (N, 9, C)
        y = torch.baddbmm(first.conv1.bias, neighbourhoods(maps.flatten(0, 1)), kernels)  # (N, h*w, C)
        y = y.view(b * o, h, w, c).permute(0, 3, 1, 2)  # (N, C, h, w), channels-last
        skip = maps.unsqueeze(-1) * channel_skip(gestalt, c, dim=-1)[:, :, None, None, :]  # (B, O, h, w, C)
        f = first.finish(y, skip.flatten(0, 1).permute(0, 3, 1, 2))
        return self.trunk[1:](f)

    def features(self, position, gestalt, priority=None) -> torch.Tensor:
        """position (B, O, 3), gestalt (B, O, G), priority (B, O) or None -> (B*O, C, h, w)."""
        return self.features_of_maps(self.place(position, priority), gestalt)

    def masks(self, features, level: int) -> torch.Tensor:
        return self.mask_head(features, level)[:, 0]  # (N, H, W)

    def rgb(self, features, level: int) -> torch.Tensor:
        return self.rgb_head(features, level)  # (N, 3, H, W)

    def mask_cells(self, features, level: int) -> torch.Tensor:
        return self.mask_head.cells(features, level)[..., 0, :]  # (N, H/4, W/4, 16), see blocks.cells_to_image

    def rgb_cells(self, features, level: int) -> torch.Tensor:
        return self.rgb_head.cells(features, level)  # (N, H/4, W/4, 3, 16)

    def forward(self, position, gestalt, priority=None, level: int = 1):
        """-> mask logits (B, O, H, W), RGB logits (B, O, 3, H, W)."""
        b, o = position.shape[:2]
        f = self.features(position, gestalt, priority)
        return self.masks(f, level).unflatten(0, (b, o)), self.rgb(f, level).unflatten(0, (b, o))
