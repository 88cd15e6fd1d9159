"""Loss functions: targets, weighting by visibility/activity, translation-invariant consistency."""

import pytest
import torch

from loci_core.config import TrainConfig
from loci_core.training.losses import (
    centre_on,
    entity_target,
    image_loss,
    object_permanence_loss,
    position_loss,
    snitch_loss,
    temporal_consistency_loss,
)


def test_entity_target_keeps_only_the_foreground_until_the_background_fades_in():
    background = torch.full((1, 3, 4, 4), 0.5)
    frame = background.clone()
    frame[..., 1, 1] = torch.tensor([1.0, 0.0, 0.0])
    target = entity_target(frame, background, 0.0, 0.1)
    assert target[0, :, 1, 1].tolist() == [1.0, 0.0, 0.0] and target.sum() == 1.0
    assert torch.equal(entity_target(frame, background, 1.0, 0.1), frame)
    assert image_loss(frame, frame, background, 1.0, 0.1) < image_loss(background, frame, background, 1.0, 0.1)


def test_position_loss_counts_only_seen_slots():
    new, old = torch.zeros(1, 2, 3), torch.ones(1, 2, 3)
    assert position_loss(new, old, torch.tensor([[0.0, 0.0]])) == 0
    assert position_loss(new, old, torch.tensor([[1.0, 0.0]])) == pytest.approx(0.5)


def test_object_permanence_only_for_hidden_slots_that_were_seen():
    now, memory = torch.zeros(1, 2, 3, 4, 4), torch.full((1, 2, 3, 4, 4), 5.0)
    hidden_seen = object_permanence_loss(now, memory, torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]]), -2.5)
    assert hidden_seen > 0
    assert object_permanence_loss(now, memory, torch.ones(1, 2), torch.ones(1, 2), -2.5) == 0
    assert object_permanence_loss(now, memory, torch.zeros(1, 2), torch.zeros(1, 2), -2.5) == 0


def test_centre_on_moves_the_slot_position_to_the_centre():
    images = torch.zeros(1, 1, 1, 9, 9)
    images[..., 2, 6] = 1.0  # row 2, column 6 -> p_row = -0.5, p_col = 0.5
    centred = centre_on(images, torch.tensor([[[-0.5, 0.5]]]))
    assert centred[0, 0, 0, 4, 4] == pytest.approx(1.0) and centred.sum() == pytest.approx(1.0)


def test_temporal_consistency_ignores_translation():
    logits = torch.full((1, 1, 3, 9, 9), -10.0)
    moved = logits.clone()
    logits[..., 2, 2] = 10.0  # at (-0.5, -0.5)
    moved[..., 6, 6] = 10.0  # the same appearance at (0.5, 0.5)
    activity = torch.ones(1, 1)
    same = temporal_consistency_loss(logits, moved, torch.tensor([[[-0.5, -0.5, 0]]]),
                                     torch.tensor([[[0.5, 0.5, 0]]]), activity, 0.0)
    different = temporal_consistency_loss(logits, moved, torch.zeros(1, 1, 3), torch.zeros(1, 1, 3), activity, 0.0)
    assert same < 1e-6 < different


def test_snitch_loss_and_weights():
    assert snitch_loss(torch.zeros(2, 2), torch.ones(2, 2)) == 1.0
    cfg = TrainConfig()
    assert cfg.position_factor == 0.01 and cfg.time_factor == 0.1 and cfg.foreground_threshold == 0.1
