"""Carrier following: hand-built scenes where a cone covers an object and slides away with it (also a cone
under a cone), run through `carrier.follow` and through `OnlineTracker`'s entity output."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from loci_core.config import load_config
from loci_core.model.loci import Loci
from loci_core.tracking import carrier
from loci_core.tracking.tracker import OnlineTracker
from tests.test_train_fixtures import TINY

RADIUS = 0.25


def _run(frames):
    """frames: list of (positions (O, 2), visible (O,)) -> published positions per frame."""
    state = carrier.CarrierState.initial(len(frames[0][0]))
    out = []
    for position, visible in frames:
        published, state = carrier.follow(state, np.array(position, float), np.array(visible, bool), RADIUS)
        out.append(published)
    return out, state


def test_hidden_entity_moves_with_the_cone_that_covered_it():
    # entity 0 (snitch) at (0, 0); entity 1 (cone) comes down on it, then slides right by 0.5 while the
    # snitch's own slot stays behind; entity 2 is far away and must not be chosen
    frames = [([[0, 0], [0, 0.05], [0.8, 0.8]], [1, 1, 1]),
              ([[0, 0], [0, 0.02], [0.8, 0.8]], [0, 1, 1]),       # the snitch goes hidden under the cone
              ([[0, 0], [0, 0.27], [0.8, 0.8]], [0, 1, 1]),
              ([[0, 0], [0, 0.52], [0.8, 0.8]], [0, 1, 1])]
    published, state = _run(frames)
    # the cone's motion since the snitch was last seen (cone at 0.05 then) moves the snitch
    assert published[1][0] == pytest.approx([0, -0.03])
    assert published[3][0] == pytest.approx([0, 0.47])
    assert state.carrier.tolist() == [1, -1, -1]
    # seen again: its own position, no carrier
    published2, state2 = carrier.follow(state, np.array([[0.1, 0.6], [0, 0.52], [0.8, 0.8]]),
                                        np.ones(3, bool), RADIUS)
    assert published2[0] == pytest.approx([0.1, 0.6])
    assert state2.carrier.tolist() == [-1, -1, -1]


def test_nested_containment_chains_and_nothing_near_means_no_carrier():
    # 0 under cone 1; then cone 1 (with 0) under cone 2, which carries both up by 0.4
    frames = [([[0, 0], [0, 0], [0.5, 0.5]], [1, 1, 1]),
              ([[0, 0], [0, 0], [0.5, 0.5]], [0, 1, 1]),
              ([[0, 0], [0.1, 0.1], [0.1, 0.1]], [0, 1, 1]),     # cone 2 comes down over cone 1
              ([[0, 0], [0.1, 0.1], [0.1, 0.1]], [0, 0, 1]),
              ([[0, 0], [0.1, 0.1], [-0.3, 0.1]], [0, 0, 1])]
    published, state = _run(frames)
    assert state.carrier.tolist() == [1, 2, -1]
    assert published[4][1] == pytest.approx([-0.3, 0.1])        # cone 1 moved with cone 2
    assert published[4][0] == pytest.approx([-0.3, 0.1])        # and the snitch with cone 1
    # an entity that goes hidden with nothing visible near it keeps the model's own position
    lonely, state = _run([([[0, 0], [0.9, 0.9]], [1, 1]), ([[0.05, 0], [0.9, 0.9]], [0, 1])])
    assert state.carrier.tolist() == [-1, -1]
    assert lonely[1][0] == pytest.approx([0.05, 0])


def _output(position, visible_mask_value):
    """A model output the tracker reads: 2 slots with square masks around their positions."""
    o, (h, w) = 2, (60, 80)
    masks = np.zeros((1, o + 1, h, w), np.float32)
    masks[0, o] = 0.5
    for k, ((pr, pc), v) in enumerate(zip(position, visible_mask_value)):
        r, c = int((pr + 1) / 2 * (h - 1)), int((pc + 1) / 2 * (w - 1))
        masks[0, k, max(r - 3, 0):r + 4, max(c - 3, 0):c + 4] = v
    return SimpleNamespace(
        position=torch.tensor([[[pr, pc, 0.05] for pr, pc in position]]),
        visibility=torch.tensor([visible_mask_value]), priority=torch.zeros(1, o),
        gestalt=torch.zeros(1, o, 4), masks=torch.from_numpy(masks))


def test_online_tracker_publishes_hidden_entities_at_their_carrier():
    cfg = load_config(TINY)
    cfg.model.num_slots = 2
    tracker = OnlineTracker(Loci(cfg.model), cfg, follow_carriers=True)
    steps = [([(0, 0), (0, 0.05)], [0.9, 0.9]),
             ([(0, 0), (0, 0.02)], [0.1, 0.9]),
             ([(0, 0), (0, 0.52)], [0.1, 0.9])]
    for position, vis in steps:
        entities = {e.id: e for e in tracker._tracked(_output(position, vis), (60, 80)).entities}
    snitch, cone = entities[0], entities[1]
    assert snitch.hidden and snitch.carrier == 1 and cone.carrier is None
    assert snitch.position_norm == pytest.approx((0.0, 0.47), abs=1e-6)
    assert snitch.position_px[0] == pytest.approx(cone.position_px[0] - 0.05 * 79 / 2, abs=1e-4)
    off = OnlineTracker(Loci(cfg.model), cfg)   # the default: the model's own positions
    for position, vis in steps:
        entities = {e.id: e for e in off._tracked(_output(position, vis), (60, 80)).entities}
    assert entities[0].position_norm == pytest.approx((0.0, 0.0)) and entities[0].carrier is None


def test_eval_counts_carried_frames_near_the_truth_for_the_snitch_entity():
    from loci_core.data.camera import CATER_Z0, ProjectiveCamera
    from loci_core.evaluation.evaluate import CARRIED, _count_carried, _spl_index

    camera = ProjectiveCamera.cater()
    T = 6
    truth = np.stack([np.linspace(-2, 2, T), np.full(T, 0.5), np.full(T, CATER_Z0)], 1)  # the snitch slides
    states = np.array([0, 0, 3, 3, 3, 2])[:, None]                                     # carried in 2..4
    item = {"num_objects": 1, "object_shape": torch.tensor([_spl_index()]),
            "object_states": torch.from_numpy(states.astype(np.int8)),
            "camera": torch.from_numpy(np.repeat(camera.matrix[None], T, 0).astype(np.float32)),
            "snitch_world": torch.from_numpy(truth.astype(np.float32))}
    on_truth = camera.world_to_screen(truth[1:])[:, None]                               # (T-1, 1, 2)
    stuck = np.repeat(on_truth[:1], T - 1, 0)                                           # where it was first
    track = np.zeros((T - 1, 1), np.int64)
    counts = {"frames": 0, CARRIED: 0, "model position": 0}
    _count_carried(counts, item, track, stuck, on_truth)
    # the carried snitch is at x = -0.4, 0.4, 1.2; stuck at x = -1.2 is 1, 2 and 3 cells away
    assert counts == {"frames": 3, CARRIED: 3, "model position": 2}
    track[2] = -1                                                       # no entity tracks it in one frame
    _count_carried(counts, item, track, stuck, on_truth)
    assert counts["frames"] == 6 and counts[CARRIED] == 5
    # the read-out's answer is scored on its own, whichever entity tracks the snitch
    from loci_core.evaluation.evaluate import READOUT_ANSWER
    counts = {"frames": 0, CARRIED: 0, "model position": 0}
    _count_carried(counts, item, track, stuck, on_truth, answer=stuck[:, 0])
    assert counts[READOUT_ANSWER] == 2 and counts["frames"] == 3
