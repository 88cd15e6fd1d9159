"""Slot-wise decoder: (position, gestalt[, priority]) -> per-slot mask logits and RGB logits.

The "what" (gestalt) is placed in space only through the "where" Gaussian blob: the merged
latent is gaussian_map(position) * gestalt on the latent grid (optionally occlusion-corrected by
priority). A shared trunk follows, then a mask head and an RGB head, each ending in an x4
up-convolution (level 1). Level 2 adds, per head, a refinement branch on top of the
nearest-upsampled level-1 output, scaled by a learnable scalar starting at ~0 — so a level-1
model grown to level 2 renders the nearest-upsampled level-1 output.

The trunk and the heads are exposed separately so the model can run each head only where it is
needed. `model/fast/decoder.py` computes the same decoder faster.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...config import ModelConfig
from .blocks import AggressiveUpConv, ResidualBlock, Scale
from .gaussian import gaussian_maps, prioritize


class _Level2Refinement(nn.Module):
    """out = nearest4(level1_out) + alpha * [RB, RB, UpConv C->e*k, UpConv e*k->k](features)."""

    def __init__(self, channels: int, out: int, expansion: int, alpha: float):
        super().__init__()
        self.branch = nn.Sequential(ResidualBlock(channels, channels), ResidualBlock(channels, channels),
                                    AggressiveUpConv(channels, expansion * out, 1.0),
                                    AggressiveUpConv(expansion * out, out, 1.0))
        self.scale = Scale(alpha)

    def forward(self, level1_out, features):
        """level1_out (N, k, h, w), features (N, C, h/4, w/4) -> (N, k, 4h, 4w)."""
        return F.interpolate(level1_out, scale_factor=4, mode="nearest") + self.scale(self.branch(features))


class _Head(nn.Module):
    def __init__(self, cfg: ModelConfig, out: int):
        super().__init__()
        c = cfg.decoder.channels
        self.block = ResidualBlock(c, c)
        self.level1 = AggressiveUpConv(c, out, cfg.up_branch_init)
        if cfg.max_level >= 2:
            self.level2 = _Level2Refinement(c, out, cfg.decoder.level2_expansion, cfg.up_branch_init)

    def forward(self, features, level: int):
        """features (N, C, h, w) -> (N, out, h * 4**level, w * 4**level)."""
        f = self.block(features)
        if level == 1:
            return self.level1(f)
        return self.level2(self.level1(f), f)


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
        """maps (B, O, h, w), gestalt (B, O, G) -> trunk features (B*O, C, h, w) of the merged latent
        map x gestalt (B*O, G, h, w): the "what" placed where the Gaussian says."""
        latent = maps.unsqueeze(2) * gestalt[..., None, None]  # (B, O, G, h, w)
        return self.trunk(latent.flatten(0, 1))

    def features(self, position, gestalt, priority=None) -> torch.Tensor:
        """position (B, O, 3), gestalt (B, O, G), priority (B, O) or None -> (B*O, C, h, w)."""
        return self.features_of_maps(self.place(position, priority), gestalt)

    def masks(self, features, level: int) -> torch.Tensor:
        return self.mask_head(features, level)[:, 0]  # (N, H, W)

    def rgb(self, features, level: int) -> torch.Tensor:
        return self.rgb_head(features, level)  # (N, 3, H, W)

    def forward(self, position, gestalt, priority=None, level: int = 1):
        """-> mask logits (B, O, H, W), RGB logits (B, O, 3, H, W)."""
        b, o = position.shape[:2]
        f = self.features(position, gestalt, priority)
        return self.masks(f, level).unflatten(0, (b, o)), self.rgb(f, level).unflatten(0, (b, o))
