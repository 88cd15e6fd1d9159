"""Loci's losses as pure functions of one step's outputs (docs/model.md, Losses).

Notation: v = visibility (largest mask value of each slot in this prediction), V = activity
(running max of v over the sequence). `loci_loss` combines all terms with the weights of a
TrainConfig; the regularisers are meant to be off during a sequence's warm-up calls
(`regularize=False`), as in the original.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import TrainConfig


def entity_target(next_frame: torch.Tensor, background: torch.Tensor, background_fade: float,
                  foreground_threshold: float) -> torch.Tensor:
    """The image target: foreground only while the background is faded out (entity pre-training),
    the full frame once it is faded in. (B, 3, H, W), background (1|B, 3, H, W) -> (B, 3, H, W)."""
    foreground = ((next_frame - background).square().mean(1, keepdim=True).sqrt()
                  > foreground_threshold).to(next_frame.dtype)  # (B, 1, H, W)
    return (next_frame * (foreground * (1 - background_fade) + background_fade)).clamp(0, 1)


def image_loss(prediction: torch.Tensor, next_frame: torch.Tensor, background: torch.Tensor,
               background_fade: float, foreground_threshold: float) -> torch.Tensor:
    """Binary cross-entropy between the predicted frame and the (entity pre-training) target."""
    target = entity_target(next_frame, background, background_fade, foreground_threshold)
    return F.binary_cross_entropy(prediction.clamp(0, 1), target)


def position_loss(position: torch.Tensor, prev_position: torch.Tensor,
                  activity: torch.Tensor) -> torch.Tensor:
    """Smooth motion: mean of V * (P' - P)^2 over batch, slots and (p_row, p_col, s). (B, O, 3), V (B, O)."""
    return (activity.unsqueeze(-1) * (position - prev_position.detach()).square()).mean()


def object_permanence_loss(appearance_logits: torch.Tensor, memory_appearance_logits: torch.Tensor,
                           visibility: torch.Tensor, activity: torch.Tensor,
                           colour_bias: float) -> torch.Tensor:
    """A slot that was seen (V) but is now hidden (1 - v) keeps the appearance it had while visible.

    appearance logits (B, O, 3, H, W) of the new state and of the memory (no gradient)."""
    weight = ((1 - visibility) * activity)[..., None, None, None]
    now = torch.sigmoid(appearance_logits + colour_bias)
    remembered = torch.sigmoid(memory_appearance_logits.detach() + colour_bias)
    return (weight * (now - remembered).square()).mean()


def centre_on(images: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """Translate each slot image so its position moves to the image centre (bilinear, zero padding).

    images (B, O, C, H, W), position (B, O, >=2) (p_row, p_col) -> (B, O, C, H, W)."""
    b, o, c, h, w = images.shape
    theta = torch.zeros(b * o, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = position[..., 1].reshape(-1)  # x (columns) first in affine_grid
    theta[:, 1, 2] = position[..., 0].reshape(-1)
    grid = F.affine_grid(theta, [b * o, c, h, w], align_corners=True)
    return F.grid_sample(images.flatten(0, 1), grid, align_corners=True).view(b, o, c, h, w)


def temporal_consistency_loss(prev_appearance_logits: torch.Tensor, appearance_logits: torch.Tensor,
                              prev_position: torch.Tensor, position: torch.Tensor, activity: torch.Tensor,
                              colour_bias: float) -> torch.Tensor:
    """A slot's appearance, seen from its own position, stays the same from one step to the next."""
    before = centre_on(torch.sigmoid(prev_appearance_logits.detach() + colour_bias), prev_position.detach())
    after = centre_on(torch.sigmoid(appearance_logits + colour_bias), position.detach())
    return (activity[..., None, None, None] * (before - after).square()).mean()


def snitch_loss(snitch: torch.Tensor, target: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error of the snitch read-out (p_row, p_col) against the projected truth, (B, 2), over
    the targets that are `known` (B,) bool: a snitch hidden since its sequence began cannot be located from
    the sequence, and training on it teaches the read-out to hedge."""
    error = (snitch - target).square().mean(-1)                               # (B,)
    if known is None:
        return error.mean()
    weight = known.to(error.dtype)
    return (error * weight).sum() / weight.sum().clamp(min=1.0)


SNITCH_SLOT_RADIUS = 0.2
"""a slot is the temporal read-out's target only if it is this near the snitch (screen units, frame = [-1, 1])"""


def snitch_slot_targets(position: torch.Tensor, target: torch.Tensor, known: torch.Tensor | None = None,
                        radius: float = SNITCH_SLOT_RADIUS) -> tuple[torch.Tensor, torch.Tensor]:
    """The slot nearest the true snitch as the temporal read-out's class: position (B, O, >=2), target (B, 2),
    known (B,) -> (B,) slot index and (B,) bool whether it counts (known, and some slot that near)."""
    distance = (position[..., :2].detach() - target[:, None]).square().sum(-1).sqrt()   # (B, O)
    nearest = distance.min(1)
    counts = nearest.values <= radius
    if known is not None:
        counts = counts & known
    return nearest.indices, counts


def snitch_slot_loss(scores: torch.Tensor, slot: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the temporal read-out's logits over slots (B, O) against the target slot (B,), over
    the targets that count (B,) bool; 0 when none does."""
    losses = F.cross_entropy(scores, slot, reduction="none")
    weight = counts.to(losses.dtype)
    return (losses * weight).sum() / weight.sum().clamp(min=1.0)


@dataclass
class LossTerms:
    total: torch.Tensor
    image: torch.Tensor
    position: torch.Tensor
    object: torch.Tensor
    time: torch.Tensor
    snitch: torch.Tensor

    def items(self) -> dict[str, float]:
        """Plain floats for logging."""
        return {k: float(getattr(self, k).detach()) for k in ("total", "image", "position", "object", "time",
                                                               "snitch")}


def loci_loss(out, next_frame: torch.Tensor, background: torch.Tensor, train: TrainConfig,
              background_fade: float, colour_bias: float, snitch_target: torch.Tensor | None = None,
              snitch_known: torch.Tensor | None = None, regularize: bool = True) -> LossTerms:
    """All terms of one step, weighted by `train`.

    out: the model's StepOutput; next_frame (B, 3, H, W) the frame the output predicts; background the
    raw background image; background_fade the current Ramps.background; colour_bias model.colour_bias;
    snitch_target (B, 2) or None, snitch_known (B,) which of them count (None: all); regularize False
    during warm-up calls."""
    zero = out.prediction.new_zeros(())
    image = image_loss(out.prediction, next_frame, background, background_fade, train.foreground_threshold)
    position = object_term = time = snitch = zero
    if regularize:
        position = position_loss(out.position, out.prev_position, out.activity)
        if out.memory_appearance_logits is not None:
            object_term = object_permanence_loss(out.appearance_logits, out.memory_appearance_logits,
                                                 out.visibility, out.activity, colour_bias)
        time = temporal_consistency_loss(out.prev_appearance_logits, out.appearance_logits, out.prev_position,
                                         out.position, out.activity, colour_bias)
    if snitch_target is not None and out.snitch_scores is not None:
        snitch = snitch_slot_loss(out.snitch_scores, *snitch_slot_targets(out.position, snitch_target, snitch_known))
    elif snitch_target is not None and out.snitch is not None:
        snitch = snitch_loss(out.snitch, snitch_target, snitch_known)
    total = (image + train.position_regularizer * train.position_factor * position
             + train.object_regularizer * object_term + train.time_regularizer * train.time_factor * time
             + train.supervision_factor * snitch)
    return LossTerms(total=total, image=image, position=position, object=object_term, time=time,
                     snitch=snitch)
