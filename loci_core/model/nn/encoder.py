"""Slot-wise encoder: a 12-channel image per slot -> the slot's current position, gestalt, priority.

Input channels per slot (built by the model, all at the current frame resolution):
    0-2 frame, 3 error map, 4 own mask, 5 other slots' masks, 6 background mask,
    7-9 own previous appearance (RGB logits), 10 own Gaussian map, 11 other slots' occlusion-
    corrected Gaussian maps.

Trunk (CATER sizes): level 2 (240x320): AggressiveDownConv 12->24 + 3 scaled residual blocks
-> 24x60x80; level 1 (60x80): the 12 channels duplicated -> 24. Then AggressiveDownConv 24->48
-> 48x15x20 and 3 residual blocks. Heads: gestalt (-> 1x1 -> residual blocks -> G) and position
(-> 3 maps: size, location by soft-argmax, priority).
"""

from __future__ import annotations

import torch
from torch import nn

from ...config import ENCODER_INPUTS, ModelConfig
from .blocks import AggressiveConvTo1x1, AggressiveDownConv, GroupedInput, ResidualBlock, channel_skip

# The input channels that differ between a frame's slots, and those they all share (the frame, its error
# map and the background mask): the model passes them apart, and the first convolution runs the shared
# ones once per frame.
SLOT_INPUTS = (4, 5, 7, 8, 9, 10, 11)
FRAME_INPUTS = (0, 1, 2, 3, 6)


def _axis(n: int, device) -> torch.Tensor:
    return torch.linspace(-1.0, 1.0, n, device=device) if n > 1 else torch.zeros(1, device=device)


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        e = cfg.encoder
        c, c1, g = e.channels, e.level1_channels, cfg.gestalt_size
        self.level1_channels, self.std_bias = c1, e.std_bias
        if cfg.max_level >= 2:
            self.level2 = nn.Sequential(
                AggressiveDownConv(ENCODER_INPUTS, c1, cfg.branch_init),
                *[ResidualBlock(c1, c1, alpha=cfg.branch_init) for _ in range(e.num_layers)])
        self.level1 = AggressiveDownConv(c1, c, cfg.branch_init)
        self.trunk = nn.Sequential(*[ResidualBlock(c, c) for _ in range(e.num_layers)])
        width = max(c, g)
        self.gestalt_head = nn.Sequential(
            AggressiveConvTo1x1(c, width, cfg.latent_size, cfg.branch_init),
            *[ResidualBlock(width, width, kernel=1) for _ in range(e.num_layers)],
            ResidualBlock(width, g, kernel=1))
        self.position_head = nn.Sequential(*[ResidualBlock(c, c) for _ in range(e.num_layers)],
                                           ResidualBlock(c, 3))

    def forward(self, x: torch.Tensor | GroupedInput, level: int, std_scale: float = 1.0):
        """x (N, 12, H, W), or those channels as a GroupedInput (SLOT_INPUTS / FRAME_INPUTS)
        -> position (N, 3) = (p_row, p_col, s), gestalt (N, G), priority (N,)."""
        if level == 2:
            f = self.level1(self.level2(x))  # (N, C1, H/4, W/4) -> (N, C, h, w)
        elif self.level1_channels % ENCODER_INPUTS == 0:
            # level 1 duplicates each input channel; fold that into the first convolution instead
            f = self.level1(x, fold_input=self.level1_channels // ENCODER_INPUTS)
        else:
            f = self.level1(channel_skip(x.full() if isinstance(x, GroupedInput) else x, self.level1_channels))
        f = self.trunk(f)  # (N, C, h, w)

        gestalt = self.gestalt_head(f).flatten(1)  # (N, G), unbounded
        maps = self.position_head(f)  # (N, 3, h, w)
        n, _, h, w = maps.shape
        size = torch.sigmoid(maps[:, 0] + self.std_bias).mean((1, 2)) * std_scale  # (N,)
        attention = torch.softmax(maps[:, 1].flatten(1), dim=1).view(n, h, w)  # spatial soft-argmax
        p_row = (attention.sum(2) * _axis(h, maps.device)).sum(1)
        p_col = (attention.sum(1) * _axis(w, maps.device)).sum(1)
        priority = torch.tanh(maps[:, 2]).mean((1, 2))  # (N,) in [-1, 1]
        return torch.stack([p_row, p_col, size], dim=1), gestalt, priority
