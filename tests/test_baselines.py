"""Baselines on hand-made cases: chance, last-seen oracle and the classical tracker on drawn squares."""

import numpy as np
import pytest

from loci_core.data.camera import pixel_to_screen
from loci_core.evaluation import metrics
from loci_core.evaluation.baselines.chance import chance_ranking, most_frequent_classes
from loci_core.evaluation.baselines.classical import ClassicalConfig, ClassicalTracker
from loci_core.evaluation.baselines.last_seen import last_seen_final, last_seen_track


def test_most_frequent_classes():
    labels = [3, 3, 3, 7, 7, 1, 0, 9, 9, 9, 9]
    assert most_frequent_classes(labels, 36, k=3).tolist() == [9, 3, 7]
    # Ties go to the lower class; unseen classes fill the tail in order.
    assert most_frequent_classes([5], 36, k=3).tolist() == [5, 0, 1]
    assert chance_ranking(labels, 36, n_videos=2, k=2).tolist() == [[9, 3], [9, 3]]


def test_last_seen_holds_position_while_hidden():
    positions = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 1.0]])
    visible = np.array([False, True, True, False, False])
    track = last_seen_track(positions, visible)
    # Before the first sighting the start position; then the last visible one.
    assert track[:, 0].tolist() == [0.0, 1.0, 2.0, 2.0, 2.0]
    assert last_seen_final(positions, visible).tolist() == [2.0, 0.0]
    assert last_seen_final(positions, np.ones(5, bool)).tolist() == [4.0, 1.0]


GOLD = (0.80, 0.75, 0.17)
RED = (0.8, 0.1, 0.1)


def _scene(T=12, H=40, W=50, second=GOLD):
    """A grey background, a red square moving right, and a (gold) square moving down that is gone
    (hidden) from frame 8 on. Returns frames uint8 (T, 3, H, W), background (3, H, W), gt labels."""
    bg = np.full((3, H, W), 0.4, np.float32)
    frames = np.repeat(bg[None], T, 0).copy()
    gt = np.zeros((T, H, W), np.int32)
    for t in range(T):
        c = 5 + 2 * t
        frames[t, :, 5:11, c:c + 6] = np.array(RED)[:, None, None]
        gt[t, 5:11, c:c + 6] = 1
        if t < 8:
            r = 15 + 2 * t
            frames[t, :, r:r + 5, 35:40] = np.array(second)[:, None, None]
            gt[t, r:r + 5, 35:40] = 2
    return (frames * 255).round().astype(np.uint8), bg, gt


def test_classical_tracker_tracks_and_finds_the_snitch():
    frames, bg, gt = _scene()
    res = ClassicalTracker(ClassicalConfig(max_coast=3)).run(frames, bg)
    assert res.labels.shape == gt.shape
    # Both squares are detected with stable identities while visible.
    out = metrics.mot_metrics([metrics.mot_accumulator(gt, res.labels)])
    assert out["mota"] == pytest.approx(1.0) and out["id_switches"] == 0
    # The snitch is the gold square: its estimate follows it while visible ...
    centre = pixel_to_screen(np.array([15 + 2 * 7 + 2.0, 37.0]), (40, 50))
    assert np.abs(res.snitch[7] - centre).max() < 0.1
    # ... coasts on for max_coast frames (constant velocity), then stays where the track died.
    assert res.snitch[11, 0] == pytest.approx(res.snitch[10, 0])
    assert res.snitch[10, 0] > res.snitch[7, 0]
    # Tracks only have positions while alive.
    assert np.isnan(res.positions[11]).all(axis=-1).sum() == res.tracks - 1


def test_classical_tracker_without_gold_has_no_snitch():
    frames, bg, _ = _scene(second=(0.1, 0.2, 0.8))
    res = ClassicalTracker().run(frames, bg)
    assert res.tracks == 2
    assert np.isnan(res.snitch).all()
