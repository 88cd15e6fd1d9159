"""The encoder (`nn/encoder.py`) on its input held as a GroupedInput: the 5 channels a frame's slots share
(frame, error map, background mask) run through the first convolution once per frame, and at level 1 the
input's channel duplication is folded into that convolution's weights."""

from __future__ import annotations

import torch

from ...config import ENCODER_INPUTS
from ..nn.blocks import channel_skip
from ..nn.encoder import Encoder
from .blocks import GroupedInput, down_conv, residuals

# The input channels (nn/encoder.py's numbering) that differ between a frame's slots, and those they all share
SLOT_INPUTS = (4, 5, 7, 8, 9, 10, 11)
FRAME_INPUTS = (0, 1, 2, 3, 6)


def encode(encoder: Encoder, x: GroupedInput, level: int, std_scale: float):
    """encoder(x.full(), level, std_scale): position (N, 3), gestalt (N, G), priority (N,)."""
    if level == 2:
        f = encoder.level1(encoder.level2[1:](down_conv(encoder.level2[0], x)))
    elif encoder.level1_channels % ENCODER_INPUTS == 0:
        f = down_conv(encoder.level1, x, fold_input=encoder.level1_channels // ENCODER_INPUTS)
    else:
        f = encoder.level1(channel_skip(x.full(), encoder.level1_channels))
    f = encoder.trunk(f)
    gestalt = residuals(encoder.gestalt_head, f).flatten(1)
    return encoder.estimates(gestalt, encoder.position_head(f), std_scale)


def grouped(per_slot: torch.Tensor, per_frame: torch.Tensor) -> GroupedInput:
    """per_slot (N, 7, H, W) (channels SLOT_INPUTS), per_frame (B, 5, H, W) (FRAME_INPUTS) -> the input."""
    return GroupedInput(per_slot, per_frame, SLOT_INPUTS, FRAME_INPUTS)
