"""What steps 2-8 of `Loci.step` (`_advance`: error map to composite) take and give, as two small values, so
that the reference and the fast implementation share one signature and TorchInductor sees a pure function;
and the error map (step 2), which both compute alike."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def error_map(frame: torch.Tensor, prediction: torch.Tensor | None, background: torch.Tensor) -> torch.Tensor:
    """Where the last prediction was wrong, weighted by where the frame differs from the background:
    E = sqrt(RMS_c(frame - prediction)) * RMS_c(frame - background); RMS_c(frame - background) on a
    sequence's first call. (B, 3, H, W) -> (B, 1, H, W)."""
    to_background = (frame - background).square().mean(1, keepdim=True).sqrt()
    if prediction is None:
        return to_background
    return (frame - prediction).square().mean(1, keepdim=True).sqrt().sqrt() * to_background


@dataclass(frozen=True)
class AdvanceInputs:
    frame: torch.Tensor
    """(B, 3, H, W) the new frame"""
    prediction: torch.Tensor | None
    """(B, 3, H, W) the carried prediction of this frame (None on a sequence's first call)"""
    background: torch.Tensor
    """(1 or B, 3, H, W) the background image, as given"""
    masks: torch.Tensor | None
    """(B, O+1, H, W) the carried masks (None on a sequence's first call)"""
    position: torch.Tensor
    """(B, O, 3) carried slot positions"""
    gestalt: torch.Tensor
    """(B, O, G)"""
    priority: torch.Tensor
    """(B, O)"""
    active: torch.Tensor
    """(B, O) bool: slots that carry on (the others re-spawn)"""
    appearance: torch.Tensor | None
    """(B, O, 3, H, W) carried un-occluded RGB logits (None on a sequence's first call)"""
    hidden: list
    """per predictor layer (B*O, W)"""
    traces: list
    """per predictor layer: GateL0RD eligibility traces or None"""
    background_logit: torch.Tensor
    """(B, 1, H, W) the background's mask logits"""
    background_shown: torch.Tensor
    """(1 or B, 3, H, W) the background as rendered"""
    std_scale: float
    noisy: bool
    generator: torch.Generator | None
    respawn: bool
    """False when every slot carries on (nothing to spawn)"""
    precision: torch.dtype | None = None
    """autocast dtype of the encoder's and decoder's convolutions (training), None: float32"""
    in_place_traces: bool = False
    """the caller gives the eligibility traces up: they are updated in their own memory"""


@dataclass
class Advanced:
    position: torch.Tensor
    """(B, O, 3) predicted next-step slot states"""
    gestalt: torch.Tensor
    """(B, O, G)"""
    priority: torch.Tensor
    """(B, O)"""
    masks: torch.Tensor
    """(B, O+1, H, W) predicted masks"""
    visibility: torch.Tensor
    """(B, O) largest mask value of each slot"""
    error: torch.Tensor
    """(B, 1, H, W) the error map fed to the encoder"""
    prediction: torch.Tensor
    """(B, 3, H, W) the predicted next frame"""
    appearance: torch.Tensor
    """(B, O, 3, H, W) un-occluded RGB logits of the predicted state"""
    prev_appearance: torch.Tensor
    """(B, O, 3, H, W) un-occluded RGB logits of the state at the start (after re-spawning)"""
    prev_position: torch.Tensor
    """(B, O, 3) slot positions at the start (after re-spawning)"""
    encoded_position: torch.Tensor
    """(B, O, 3) the encoder's estimates"""
    snitch: torch.Tensor | None
    snitch_weights: torch.Tensor | None
    openings: torch.Tensor
    """() fraction of open GateL0RD gates"""
    hidden: list
    traces: list

    @classmethod
    def of(cls, predicted: dict, **rest) -> Advanced:
        """The predictor's outputs (its dict) with the rest of the fields."""
        keys = ("position", "gestalt", "priority", "snitch", "snitch_weights", "openings", "hidden", "traces")
        return cls(**{k: predicted[k] for k in keys}, **rest)
