"""Metric functions against values worked out by hand on small constructed cases."""

import math

import numpy as np
import pytest

from loci_core.evaluation import metrics

# The 6x6 CATER grid built by hand for the tests: class = 6 * row + col, centre (col - 2.5, row - 2.5).
CENTRES = np.array([(c - 2.5, r - 2.5) for r in range(6) for c in range(6)])


def test_grid_l1_uses_integer_rows():
    # 5 = (row 0, col 5), 6 = (row 1, col 0): 5 columns and 1 row apart. True division of the
    # labels (the original's bug) would give 5 + |5/6 - 6/6| = 5.17 instead.
    assert metrics.grid_l1(np.array([5]), np.array([6]), 6).tolist() == [6]
    # 7 = (1, 1), 12 = (2, 0): one row and one column.
    assert metrics.grid_l1(np.array([7, 14]), np.array([12, 14]), 6).tolist() == [2, 0]
    assert metrics.grid_l1(np.array([0]), np.array([35]), 6).tolist() == [10]


def test_nearest_cells_orders_by_distance():
    # (0.6, -0.4) lies in cell row 2, col 3 (class 15, d^2 0.02); next come (0.5, 0.5) = class 21 and
    # (1.5, -0.5) = class 16, both at d^2 0.82, before (-0.5, -0.5) = class 14 at 1.22.
    ranked = metrics.nearest_cells(np.array([[0.6, -0.4]]), CENTRES, k=3)
    assert ranked[0, 0] == 15
    assert set(ranked[0, 1:].tolist()) == {21, 16}


def test_cater_localisation_table():
    pred_xy = np.array([[0.5, -0.5],     # centre of class 15: correct
                        [-2.5, -2.5],    # class 0, truth 1: wrong, in top-5, L1 1
                        [2.5, 2.5]])     # class 35, truth 0: wrong, not in top-5, L1 10
    label = np.array([15, 1, 0])
    z0 = 0.3
    true_xyz = np.array([[0.5, -0.5, z0], [-1.5, -2.5, z0], [-2.5, -2.5, z0 + 1.0]])
    out = metrics.cater_localisation(pred_xy, true_xyz, label, CENTRES, 6, z0)
    assert out["top1"] == pytest.approx(1 / 3)
    assert out["top5"] == pytest.approx(2 / 3)
    assert out["l1"] == pytest.approx((0 + 1 + 10) / 3)
    assert out["l2"] == pytest.approx((0 + 1.0 + math.sqrt(25 + 25 + 1)) / 3)
    assert out["videos"] == 3


def test_class_localisation():
    ranked = np.array([[3, 4, 5, 6, 7], [3, 4, 5, 6, 7]])
    out = metrics.class_localisation(ranked, np.array([3, 9]), 6)
    assert out["top1"] == 0.5 and out["top5"] == 0.5
    # 3 = (0, 3), 9 = (1, 3): one row apart.
    assert out["l1"] == pytest.approx(0.5)


def test_frames_since_contained_and_bins():
    contained = np.array([0, 1, 1, 0, 1, 1, 1], bool)
    since = metrics.frames_since_contained(contained)
    assert since.tolist() == [0, 1, 2, 0, 1, 2, 3]
    l2 = np.array([1.0, 2.0, 4.0, 3.0, 6.0, np.nan, 8.0])
    bins = metrics.bin_by_containment(l2, since, edges=(0, 1, 3))
    assert [b["bin"] for b in bins] == ["0", "1-2", ">=3"]
    assert [b["count"] for b in bins] == [2, 3, 1]
    assert bins[0]["mean"] == pytest.approx(2.0)
    assert bins[1]["median"] == pytest.approx(4.0)
    assert bins[2]["mean"] == pytest.approx(8.0)


def test_frames_since_contained_batched():
    contained = np.array([[1, 1, 0], [0, 1, 1]], bool)
    assert metrics.frames_since_contained(contained).tolist() == [[1, 2, 0], [0, 1, 2]]


def _squares(T=3, H=8, W=8):
    """Two 2x2 ground-truth objects that stay put: object 1 top-left, object 2 bottom-right."""
    gt = np.zeros((T, H, W), np.int32)
    gt[:, 1:3, 1:3] = 1
    gt[:, 5:7, 5:7] = 2
    return gt


def test_mot_perfect_and_identity_switch():
    gt = _squares()
    perfect = metrics.mot_metrics([metrics.mot_accumulator(gt, gt * 1)])
    assert perfect["mota"] == pytest.approx(1.0) and perfect["idf1"] == pytest.approx(1.0)

    swapped = gt.copy()
    swapped[2] = np.where(gt[2] == 1, 2, np.where(gt[2] == 2, 1, 0))   # the ids swap in the last frame
    out = metrics.mot_metrics([metrics.mot_accumulator(gt, swapped)])
    # 6 ground-truth instances, 2 identity switches, no misses/false positives: MOTA = 1 - 2/6.
    assert out["id_switches"] == 2
    assert out["mota"] == pytest.approx(1 - 2 / 6)
    # IDF1: best global id mapping keeps 2 of 3 frames per object: IDTP 4, IDFP 2, IDFN 2 -> 8 / 12.
    assert out["idf1"] == pytest.approx(8 / 12)


def test_mot_low_iou_is_miss_and_false_positive():
    gt = _squares(T=1)
    pred = np.zeros_like(gt)
    pred[0, 1:3, 1:3] = 1                    # object 1 exact
    pred[0, 5:7, 6:8] = 2                    # object 2 shifted: IoU 2/6 < 0.5
    out = metrics.mot_metrics([metrics.mot_accumulator(gt, pred)])
    assert out["misses"] == 1 and out["false_positives"] == 1
    assert out["mota"] == pytest.approx(1 - 2 / 2)
    # Two videos pool their counts: this one plus a perfect one gives 1 - 2 / 4.
    both = metrics.mot_metrics([metrics.mot_accumulator(gt, pred), metrics.mot_accumulator(gt, gt)])
    assert both["mota"] == pytest.approx(0.5)


def test_fg_ari():
    gt = _squares(T=1)
    relabelled = np.where(gt == 1, 7, np.where(gt == 2, 3, 0))
    assert metrics.fg_ari(gt, relabelled) == pytest.approx(1.0)
    # Background labels in the prediction do not matter: only ground-truth foreground pixels count.
    noisy_bg = relabelled.copy()
    noisy_bg[0, 0, :] = 9
    assert metrics.fg_ari(gt, noisy_bg) == pytest.approx(1.0)
    # One label for everything: ARI 0.
    assert metrics.fg_ari(gt, np.ones_like(gt)) == pytest.approx(0.0)
    assert math.isnan(metrics.fg_ari(np.zeros_like(gt), gt))


def test_matched_miou():
    gt = _squares(T=1)
    pred = np.zeros_like(gt)
    pred[0, 1:3, 1:4] = 2                    # object 1 (area 4) plus 2 extra pixels: IoU 4/6
    # Object 2 has no prediction at all: IoU 0.
    assert metrics.matched_miou(gt, pred) == pytest.approx((4 / 6 + 0) / 2)
    assert metrics.matched_miou(gt, gt) == pytest.approx(1.0)


def test_label_map_from_masks():
    masks = np.zeros((3, 2, 2), np.float32)   # 2 slots + background
    masks[0, 0, 0] = 1.0
    masks[1, 0, 1] = 1.0
    masks[2, 1, :] = 1.0
    assert metrics.label_map_from_masks(masks).tolist() == [[1, 2], [0, 0]]


def test_tracked_slot_keeps_identity_while_hidden_and_error_by_state():
    T, H, W = 4, 8, 8
    gt = np.zeros((T, H, W), np.int32)
    pred = np.zeros((T, H, W), np.int32)
    gt[:2, 2:4, 2:4] = 1                     # object 0 visible in frames 0-1, then contained
    pred[:2, 2:4, 2:4] = 2                   # slot 1 covers it while it is visible
    pred[2:, 6:8, 6:8] = 1                   # another slot appears later; it must not take over
    states = np.array([[0], [0], [2], [3]], np.int8)
    track = metrics.tracked_entities(gt, pred, states)
    assert track[:, 0].tolist() == [1, 1, 1, 1]

    gt_pos = np.zeros((T, 1, 2))
    slots = np.zeros((T, 2, 2))
    slots[:, 1] = [[0.0, 0.0], [0.25, 0.0], [0.0, 0.5], [0.5, 0.5]]
    out = metrics.position_error_by_state(gt_pos, states, track, slots, (H, W))
    # Pixels: rows scale by H/2 = 4, columns by W/2 = 4.
    assert out["visible"]["error_px"] == pytest.approx((0 + 1.0) / 2)
    assert out["contained"]["error_px"] == pytest.approx(2.0)
    assert out["carried"]["error_px"] == pytest.approx(math.hypot(2, 2))
    assert out["occluded"]["frames"] == 0 and math.isnan(out["occluded"]["error_px"])

    merged = metrics.merge_state_errors([out, out])
    assert merged["visible"]["error_px"] == pytest.approx(0.5)
    assert merged["visible"]["frames"] == 4


def test_untracked_object_counts_as_lost():
    states = np.zeros((2, 1), np.int8)
    gt = np.zeros((2, 4, 4), np.int32)
    gt[:, :2, :2] = 1
    pred = np.zeros_like(gt)                 # nothing predicted
    track = metrics.tracked_entities(gt, pred, states)
    assert (track == -1).all()
    out = metrics.position_error_by_state(np.zeros((2, 1, 2)), states, track, np.zeros((2, 0, 2)), (4, 4))
    assert out["visible"]["lost"] == 1.0 and math.isnan(out["visible"]["error_px"])


def test_plot_binned_l2(tmp_path):
    bins = metrics.bin_by_containment(np.arange(6.0), np.array([0, 1, 2, 30, 80, 200]))
    metrics.plot_binned_l2({"loci": bins, "last seen": bins}, tmp_path / "l2.png")
    assert (tmp_path / "l2.png").stat().st_size > 1000
