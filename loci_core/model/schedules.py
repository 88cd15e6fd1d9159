"""Explicit training schedules as functions of the global optimiser step.

The original used "clock" parameters (a gradient hack that made a parameter grow by about the
learning rate per update) to ramp two quantities from 0 to 1 during training. Here they are
plain functions of `global_step` (saved in checkpoints), with the same tanh curves:

- std_scale: the encoder's size output is multiplied by tanh(std_ramp_rate * step), so slots
  start as small blobs and may grow later;
- background: the background fade-in iota = tanh(background_ramp_rate * (step - entity_pretraining_steps)
  / 2) after the entity pre-training phase (0 before). While iota ~ 0 the rendered background is
  black and the image target contains only the foreground.

And the learning-rate factor of a stage (1 throughout with the paper's constant rates; a half cosine
down to lr_final_factor with train.lr_schedule 'cosine'), a function of the stage's own update count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import TrainConfig


@dataclass(frozen=True)
class Ramps:
    std_scale: float = 1.0
    background: float = 1.0

    @classmethod
    def full(cls) -> Ramps:
        """Both ramps finished: a fully trained model (the default for inference)."""
        return cls(1.0, 1.0)


def std_scale(global_step: int, train: TrainConfig) -> float:
    return math.tanh(train.std_ramp_rate * max(global_step, 0))


def background_fade(global_step: int, train: TrainConfig) -> float:
    return math.tanh(train.background_ramp_rate * max(global_step - train.entity_pretraining_steps, 0) / 2)


def ramps_at(global_step: int, train: TrainConfig) -> Ramps:
    """The ramps in effect at optimiser step `global_step` (counted over all stages)."""
    return Ramps(std_scale=std_scale(global_step, train), background=background_fade(global_step, train))


def lr_factor(stage_update: int, train: TrainConfig) -> float:
    """Multiplier of every learning rate at the stage's update `stage_update` (0-based)."""
    if train.lr_schedule == "constant":
        return 1.0
    progress = min(max(stage_update, 0) / max(train.updates, 1), 1.0)
    final = train.lr_final_factor
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
