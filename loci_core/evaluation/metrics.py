"""Evaluation metrics as pure functions of numpy arrays (no model, no files).

Two families:

* CATER snitch localisation (docs/cater.md): top-1 / top-5 over the 6x6 grid
  cells, L1 grid distance with *integer* rows (the original divided the label by 6 with true
  division), L2 in world units on the snitch plane, and the per-step L2 binned by how long the
  snitch has been contained.
* Tracking and segmentation against per-pixel ground truth, all on *label maps*: int arrays
  (T, H, W) with 0 = background and k + 1 = entity k (a ground-truth object, a slot or a track).
  MOTA / IDF1 (motmetrics, mask IoU matching), FG-ARI, mIoU, and the position error of the slot
  that tracks each object, split by the object's state (visible / occluded / contained / carried).

Positions are (p_row, p_col) in [-1, 1] like everywhere in loci; errors are reported in pixels
of the label maps' resolution so that the number means something to a reader.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

# Object states as stored in ground_truth/<name>.npz (H2's generator).
STATE_NAMES = ("visible", "occluded", "contained", "carried")
VISIBLE = 0
CARRIED_STATE = 3

# Lower edges of the frames-since-contained bins of the per-step L2 plot: not contained, then up to
# 1 s, 1-3 s, 3-6 s and more than 6 s of continuous containment at CATER's 24 fps.
CONTAINED_BIN_EDGES = (0, 1, 25, 73, 145)

# Two masks are the same object for MOT when their IoU reaches this (the usual MOTS threshold).
MOT_IOU_THRESHOLD = 0.5


# --------------------------------------------------------------------------------------------
# CATER localisation


def nearest_cells(xy: np.ndarray, centres: np.ndarray, k: int = 1) -> np.ndarray:
    """Classes of the k grid cells whose centres are nearest to each point.

    xy (N, 2) world (x, y); centres (C, 2) world (x, y) of class c = row * cols + col.
    Returns (N, k) int class ids, nearest first (the argmax of softmax(-d^2) and its top-k).
    """
    d2 = ((xy[:, None, :] - centres[None, :, :]) ** 2).sum(-1)      # (N, C)
    return np.argsort(d2, axis=1, kind="stable")[:, :k]


def grid_l1(pred: np.ndarray, label: np.ndarray, cols: int) -> np.ndarray:
    """|d col| + |d row| between grid classes (class = row * cols + col), rows by floor division."""
    pred, label = np.asarray(pred, np.int64), np.asarray(label, np.int64)
    return np.abs(pred % cols - label % cols) + np.abs(pred // cols - label // cols)


def cater_localisation(pred_xy: np.ndarray, true_xyz: np.ndarray, label: np.ndarray,
                       centres: np.ndarray, cols: int, plane_z: float) -> dict:
    """The CATER table for one method.

    pred_xy (N, 2) predicted world (x, y) of the snitch on the plane z = plane_z at the final frame;
    true_xyz (N, 3) the true final 3-D snitch position; label (N,) the true class.
    """
    pred_xy, true_xyz = np.asarray(pred_xy, np.float64), np.asarray(true_xyz, np.float64)
    label = np.asarray(label, np.int64)
    ranked = nearest_cells(pred_xy, centres, k=5)                    # (N, 5)
    pred_xyz = np.concatenate([pred_xy, np.full((len(pred_xy), 1), plane_z)], axis=1)
    return {
        "top1": float(np.mean(ranked[:, 0] == label)),
        "top5": float(np.mean((ranked == label[:, None]).any(axis=1))),
        "l1": float(np.mean(grid_l1(ranked[:, 0], label, cols))),
        "l2": float(np.mean(np.linalg.norm(pred_xyz - true_xyz, axis=1))),
        "videos": int(len(label)),
    }


def class_localisation(ranked: np.ndarray, label: np.ndarray, cols: int) -> dict:
    """top-1, top-5 and L1 for a method that outputs ranked classes (N, >=5) instead of a point."""
    ranked, label = np.asarray(ranked, np.int64), np.asarray(label, np.int64)
    return {
        "top1": float(np.mean(ranked[:, 0] == label)),
        "top5": float(np.mean((ranked[:, :5] == label[:, None]).any(axis=1))),
        "l1": float(np.mean(grid_l1(ranked[:, 0], label, cols))),
        "videos": int(len(label)),
    }


def frames_since_contained(contained: np.ndarray) -> np.ndarray:
    """Per frame, how many consecutive frames (including this one) the snitch has been contained.

    contained (..., T) bool -> (..., T) int; 0 where it is not contained.
    """
    contained = np.asarray(contained, bool)
    count = np.zeros(contained.shape, np.int64)
    running = np.zeros(contained.shape[:-1], np.int64)
    for t in range(contained.shape[-1]):
        running = np.where(contained[..., t], running + 1, 0)
        count[..., t] = running
    return count


def bin_by_containment(values: np.ndarray, since: np.ndarray,
                       edges: tuple[int, ...] = CONTAINED_BIN_EDGES) -> list[dict]:
    """Summaries of per-step values (e.g. L2) grouped by frames-since-contained bins.

    values, since: same shape (any); NaN values are ignored. Returns one dict per bin with
    label, count, mean and the 25/50/75 % quantiles (NaN for empty bins).
    """
    values, since = np.asarray(values, np.float64).ravel(), np.asarray(since).ravel()
    out = []
    for i, lo in enumerate(edges):
        hi = edges[i + 1] if i + 1 < len(edges) else None
        sel = (since >= lo) & (since < hi if hi is not None else True) & np.isfinite(values)
        label = "0" if (lo == 0 and hi == 1) else (f"{lo}-{hi - 1}" if hi is not None else f">={lo}")
        v = values[sel]
        q = np.quantile(v, [0.25, 0.5, 0.75]) if v.size else np.full(3, np.nan)
        out.append({"bin": label, "count": int(v.size), "mean": float(v.mean()) if v.size else float("nan"),
                    "q25": float(q[0]), "median": float(q[1]), "q75": float(q[2])})
    return out


def plot_binned_l2(curves: dict[str, list[dict]], path) -> None:
    """PNG: median (line) and inter-quartile band of the L2 per frames-since-contained bin, per method."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for name, bins in curves.items():
        x = np.arange(len(bins))
        med = np.array([b["median"] for b in bins])
        ax.plot(x, med, marker="o", label=name)
        ax.fill_between(x, [b["q25"] for b in bins], [b["q75"] for b in bins], alpha=0.2)
    first = next(iter(curves.values()), [])
    ax.set_xticks(np.arange(len(first)), [b["bin"] for b in first])
    ax.set_xlabel("frames since the snitch was contained")
    ax.set_ylabel("L2 error (world units)")
    ax.set_title("Snitch position error by containment duration")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# Label-map overlaps


def overlap_counts(gt: np.ndarray, pred: np.ndarray, n_gt: int, n_pred: int) -> np.ndarray:
    """Joint pixel histogram (n_gt + 1, n_pred + 1) of two label maps of equal shape (row/col 0 = bg)."""
    joint = gt.astype(np.int64).ravel() * (n_pred + 1) + pred.astype(np.int64).ravel()
    return np.bincount(joint, minlength=(n_gt + 1) * (n_pred + 1)).reshape(n_gt + 1, n_pred + 1)


def iou_matrix(counts: np.ndarray) -> np.ndarray:
    """IoU (n_gt, n_pred) of the foreground entities from a joint histogram of overlap_counts."""
    inter = counts[1:, 1:].astype(np.float64)
    area_gt = counts[1:, :].sum(1, keepdims=True)
    area_pred = counts[:, 1:].sum(0, keepdims=True)
    union = area_gt + area_pred - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _n_labels(labels: np.ndarray) -> int:
    return int(labels.max()) if labels.size else 0


# --------------------------------------------------------------------------------------------
# Tracking (MOT)


def mot_accumulator(gt: np.ndarray, pred: np.ndarray, iou_threshold: float = MOT_IOU_THRESHOLD):
    """motmetrics accumulator for one video; gt, pred (T, H, W) label maps.

    Per frame the objects are the labels present in the map; distance = 1 - IoU, pairs with an IoU
    below the threshold cannot match.
    """
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    n_gt, n_pred = _n_labels(gt), _n_labels(pred)
    for g, p in zip(gt, pred):
        counts = overlap_counts(g, p, n_gt, n_pred)
        gt_ids = np.flatnonzero(counts[1:, :].sum(1) > 0)
        hyp_ids = np.flatnonzero(counts[:, 1:].sum(0) > 0)
        iou = iou_matrix(counts)[np.ix_(gt_ids, hyp_ids)]
        dist = np.where(iou >= iou_threshold, 1.0 - iou, np.nan)
        acc.update(list(gt_ids + 1), list(hyp_ids + 1), dist)
    return acc


def mot_metrics(accumulators: list) -> dict:
    """MOTA and IDF1 over all videos together (counts summed before the ratios), plus the counts."""
    import motmetrics as mm

    names = ["mota", "idf1", "num_switches", "num_false_positives", "num_misses", "num_objects"]
    host = mm.metrics.create()
    summary = host.compute_many(accumulators, metrics=names, names=[str(i) for i in range(len(accumulators))],
                                generate_overall=True)
    overall = summary.loc["OVERALL"]
    return {"mota": float(overall["mota"]), "idf1": float(overall["idf1"]),
            "id_switches": int(overall["num_switches"]),
            "false_positives": int(overall["num_false_positives"]),
            "misses": int(overall["num_misses"]), "gt_instances": int(overall["num_objects"])}


# --------------------------------------------------------------------------------------------
# Segmentation


def fg_ari(gt: np.ndarray, pred: np.ndarray) -> float:
    """Adjusted Rand index of the predicted labels over the ground-truth foreground pixels of a video.

    NaN when the video has no foreground pixel.
    """
    from sklearn.metrics import adjusted_rand_score

    fg = gt > 0
    if not fg.any():
        return float("nan")
    return float(adjusted_rand_score(gt[fg], pred[fg]))


def matched_miou(gt: np.ndarray, pred: np.ndarray) -> float:
    """Mean IoU of the ground-truth objects of a video after a one-to-one Hungarian matching to the
    predicted entities on the IoU of whole-video masks; objects left unmatched count as IoU 0.
    """
    counts = overlap_counts(gt, pred, _n_labels(gt), _n_labels(pred))
    present = counts[1:, :].sum(1) > 0
    if not present.any():
        return float("nan")
    iou = iou_matrix(counts)[present]
    rows, cols = linear_sum_assignment(-iou)
    matched = np.zeros(iou.shape[0])
    matched[rows] = iou[rows, cols]
    return float(matched.mean())


# --------------------------------------------------------------------------------------------
# Position error of the tracked slot, by object state


def tracked_entities(gt: np.ndarray, pred: np.ndarray, states: np.ndarray) -> np.ndarray:
    """For every frame and object the predicted entity that tracks it, or -1.

    While an object is visible (state 0) it is matched one-to-one to the entities of that frame by
    a Hungarian assignment on mask IoU (pairs with no overlap do not match). In the other states
    the object keeps the entity it was matched to when it was last visible; before its first match
    it has none. gt, pred (T, H, W) label maps; states (T, K). Returns (T, K) entity index (0-based).
    """
    T, K = states.shape
    n_gt, n_pred = max(_n_labels(gt), K), _n_labels(pred)
    track = np.full((T, K), -1, np.int64)
    last = np.full(K, -1, np.int64)
    for t in range(T):
        iou = iou_matrix(overlap_counts(gt[t], pred[t], n_gt, n_pred))[:K]
        visible = np.flatnonzero(states[t] == VISIBLE)
        if visible.size and n_pred:
            sub = iou[visible]
            rows, cols = linear_sum_assignment(-sub)
            for r, c in zip(rows, cols):
                if sub[r, c] > 0:
                    last[visible[r]] = c
        track[t] = last
    return track


def position_error_by_state(gt_positions: np.ndarray, states: np.ndarray, track: np.ndarray,
                            pred_positions: np.ndarray, size_hw: tuple[int, int]) -> dict:
    """Mean distance in pixels between each object and its tracked entity, per object state.

    gt_positions (T, K, 2) and pred_positions (T, E, 2) as (p_row, p_col) in [-1, 1] (NaN where an
    entity has no position); states (T, K); track (T, K) from tracked_entities. Frames where the
    object has no tracked entity (or its entity no position) are counted as lost, not as errors.
    Returns {state: {"error_px": mean or NaN, "frames": n, "lost": fraction of that state's frames}}.
    """
    H, W = size_hw
    scale = np.array([H / 2.0, W / 2.0])
    T, K = states.shape
    has = track >= 0
    pred = np.full((T, K, 2), np.nan)
    t_idx, k_idx = np.nonzero(has)
    pred[t_idx, k_idx] = pred_positions[t_idx, track[t_idx, k_idx]]
    err = np.linalg.norm((pred - gt_positions) * scale, axis=-1)    # (T, K), NaN when lost
    out = {}
    for s, name in enumerate(STATE_NAMES):
        sel = states == s
        e = err[sel]
        ok = np.isfinite(e)
        out[name] = {"error_px": float(e[ok].mean()) if ok.any() else float("nan"),
                     "frames": int(sel.sum()), "lost": float(1.0 - ok.mean()) if sel.any() else float("nan")}
    return out


def merge_state_errors(per_video: list[dict]) -> dict:
    """Frame-weighted average of position_error_by_state results over videos."""
    out = {}
    for name in STATE_NAMES:
        frames = sum(v[name]["frames"] for v in per_video)
        found = [(v[name]["frames"] * (1 - v[name]["lost"]), v[name]["error_px"]) for v in per_video
                 if v[name]["frames"] and np.isfinite(v[name]["error_px"])]
        n_found = sum(n for n, _ in found)
        error = sum(n * e for n, e in found) / n_found if n_found else float("nan")
        out[name] = {"error_px": float(error), "frames": int(frames),
                     "lost": float(1 - n_found / frames) if frames else float("nan")}
    return out


def label_map_from_masks(masks: np.ndarray) -> np.ndarray:
    """Slot label map from soft masks (..., O + 1, H, W) whose last channel is the background:
    per pixel the argmax; 0 = background, k + 1 = slot k.
    """
    arg = masks.argmax(axis=-3)
    n_slots = masks.shape[-3] - 1
    return np.where(arg == n_slots, 0, arg + 1).astype(np.int32)
