"""Evaluation of a checkpoint on whole videos, next to the baselines (`loci eval`; its CLI: command.py).

For every video of the split: `warmup_calls` calls on frame 0, then one call per frame; the call
on frame t predicts frame t + 1, so Loci's masks, slot positions and snitch read-out of that call
are compared with the ground truth of frame t + 1 (frames 1 .. T-1). The classical tracker sees
the same frames and is scored on the same frames.

Results (printed as Markdown, written as JSON plus a PNG plot):
* CATER snitch localisation at the last frame (docs/cater.md): top-1, top-5, L1, L2, top-1
  for the videos whose snitch ends inside a container and for the others, and the per-step L2
  binned by frames since the snitch was contained; besides Loci's read-out, the best of Loci's
  slots in hindsight (the slot nearest the snitch), which tells read-out errors from slot errors;
* tracking against the generated ground truth (needs the data set's ground_truth/ files):
  MOTA, IDF1, FG-ARI, mIoU, position error of each object's tracked slot by object state.

`evaluate_tracks` scores any per-frame label maps (+ positions) of one video, so tracks that come
from elsewhere (a bag written by `loci bag track`) are scored by the same code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.camera import CATER_Z0, DEFAULT_GRID, ProjectiveCamera, class_centres, grid_class
from ..tracking import snitch_rules
from . import metrics

CELL_COLS = DEFAULT_GRID


class EvalError(RuntimeError):
    """An evaluation that cannot run; the message says why."""


# --------------------------------------------------------------------------------------------
# Scoring one video's tracks


def evaluate_tracks(pred_labels: np.ndarray, item: dict, pred_positions: np.ndarray | None = None,
                    frames: slice = slice(1, None)) -> dict:
    """Tracking scores of one video.

    pred_labels (T', H, W) int: 0 = background, e + 1 = entity e, for the frames `frames` of the
    item (default: all but the first, as for Loci, whose call on frame t predicts frame t + 1);
    pred_positions (T', E, 2) (p_row, p_col) per entity (NaN where an entity has none); without
    them an entity's position is the centroid of its mask. `item` is a CaterVideos item with the
    ground-truth extras (instance_ids, object_states, object_screen, num_objects).
    Returns {"mot": motmetrics accumulator, "fg_ari", "miou", "track": (T', K) entity tracking each
    object (metrics.tracked_entities), "position": by-state errors}.
    """
    if "instance_ids" not in item:
        raise EvalError(f"{item.get('name', 'video')}: no ground-truth masks (ground_truth/ missing)")
    gt = _np(item["instance_ids"])[frames].astype(np.int32)
    k = int(item["num_objects"])
    states = _np(item["object_states"])[frames][:, :k]
    gt_pos = _np(item["object_screen"])[frames][:, :k]
    pred_labels = np.asarray(pred_labels).astype(np.int32)
    if pred_labels.shape != gt.shape:
        raise EvalError(f"{item.get('name', 'video')}: predicted label maps {pred_labels.shape} do not "
                        f"match the ground truth {gt.shape}")
    if pred_positions is None:
        pred_positions = centroids(pred_labels)
    track = metrics.tracked_entities(gt, pred_labels, states)
    return {"mot": metrics.mot_accumulator(gt, pred_labels), "fg_ari": metrics.fg_ari(gt, pred_labels),
            "miou": metrics.matched_miou(gt, pred_labels), "track": track,
            "position": metrics.position_error_by_state(gt_pos, states, track, pred_positions, gt.shape[1:])}


def centroids(labels: np.ndarray) -> np.ndarray:
    """(T, H, W) label maps -> (T, E, 2) screen centroid of each entity's pixels (NaN where absent)."""
    from ..data.camera import pixel_centres

    T, H, W = labels.shape
    E = int(labels.max()) if labels.size else 0
    grid = pixel_centres((H, W)).reshape(-1, 2)                      # (H*W, 2)
    out = np.full((T, E, 2), np.nan)
    for t in range(T):
        flat = labels[t].ravel()
        counts = np.bincount(flat, minlength=E + 1)[1:]
        sums = np.stack([np.bincount(flat, weights=grid[:, i], minlength=E + 1)[1:] for i in range(2)], -1)
        ok = counts > 0
        out[t, ok] = sums[ok] / counts[ok, None]
    return out


def summarise_tracks(per_video: list[dict]) -> dict:
    """Aggregate evaluate_tracks results over videos."""
    out = metrics.mot_metrics([v["mot"] for v in per_video])
    out["fg_ari"] = float(np.nanmean([v["fg_ari"] for v in per_video]))
    out["miou"] = float(np.nanmean([v["miou"] for v in per_video]))
    out["position"] = metrics.merge_state_errors([v["position"] for v in per_video])
    return out


def _np(x) -> np.ndarray:
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# --------------------------------------------------------------------------------------------
# Running Loci over whole videos


@dataclass
class VideoRun:
    """What Loci produced for one video, for frames 1 .. T-1."""
    labels: np.ndarray          # (T-1, H, W) int16 slot label maps (argmax of the masks)
    positions: np.ndarray       # (T-1, O, 2) predicted (p_row, p_col)
    snitch: np.ndarray | None   # (T-1, 2) read-out or None
    visibility: np.ndarray      # (T-1, O) each slot's largest mask value
    snitch_weights: np.ndarray | None = None  # (T-1, O) the read-out's weight of each slot, or None
    extras: dict = field(default_factory=dict)


@torch.inference_mode()
def run_loci(model, items: list[dict], warmup_calls: int, device, on_step=None) -> list[VideoRun]:
    """Run a batch of whole videos (equal length) through the model in eval mode.

    `on_step(t, frame, out)` is called after each real call (t = input frame index) with the batch
    tensors, for callers that want pictures (loci save)."""
    model.eval()
    frames = torch.stack([it["frames"] for it in items]).to(device)          # (B, T, 3, H, W) uint8
    background = torch.stack([it["background"] for it in items]).to(device)  # (B, 3, H, W)
    B, T = frames.shape[:2]
    state = model.initial_state(B, device)
    first = frames[:, 0].float() / 255.0
    for _ in range(warmup_calls):
        _, state = model.step(first, state, background)
    labels, positions, visibility, snitch, weights = [], [], [], [], []
    for t in range(T - 1):
        frame = frames[:, t].float() / 255.0
        out, state = model.step(frame, state, background)
        labels.append(metrics.label_map_from_masks(out.masks.cpu().numpy()).astype(np.int16))
        positions.append(out.position[..., :2].cpu().numpy())
        visibility.append(out.visibility.float().cpu().numpy())
        if out.snitch is not None:
            snitch.append(out.snitch.cpu().numpy())
            weights.append(out.snitch_weights.float().cpu().numpy())
        if on_step is not None:
            on_step(t, frame, out)
    labels, positions, visibility = np.stack(labels, 1), np.stack(positions, 1), np.stack(visibility, 1)
    snitch = np.stack(snitch, 1) if snitch else None                         # (B, T-1, ...)
    weights = np.stack(weights, 1) if weights else None
    return [VideoRun(labels[b], positions[b], None if snitch is None else snitch[b], visibility[b],
                     None if weights is None else weights[b]) for b in range(B)]


# --------------------------------------------------------------------------------------------
# The whole evaluation


def data_resolution(root: Path, name: str) -> tuple[int, int]:
    """(H, W) of a data set's videos, read from the first video's header."""
    import cv2

    path = Path(root) / "videos" / f"{name}.avi"
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise EvalError(f"{path}: cannot open the video to read its size")
    size = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    cap.release()
    return size


def check_resolution(checkpoint: Path, model, data: Path, name: str, resize: bool) -> None:
    """Refuse data whose videos are not at the model's resolution, unless resizing was asked for."""
    native = data_resolution(data, name)
    if native != tuple(model.resolution) and not resize:
        h, w = model.resolution
        raise EvalError(f"{checkpoint} works on {w}x{h} frames (level {model.level}) but the videos in "
                        f"{data} are {native[1]}x{native[0]}; pass --resize to resize them to {w}x{h}")


def _screen_to_world(screen: np.ndarray, cameras: np.ndarray) -> np.ndarray:
    """(T, ..., 2) screen points, (T, 4, 4) cameras -> (T, ..., 3) world points on the snitch plane."""
    return np.stack([ProjectiveCamera(c).screen_to_ground(s, CATER_Z0) for s, c in zip(screen, cameras)])


BEST_SLOT = "best Loci slot (oracle)"
TOP_SLOT = "loci, top slot"
CARRIED = "loci, sticky slot + carrier following"
CARRIED_CELLS = 2
"""the node's bar: a carried snitch's entity is published within this many grid cells (L1) of the truth"""


READOUT_ANSWER = "read-out answer"


def _count_carried(counts: dict, item: dict, track: np.ndarray, own: np.ndarray, followed: np.ndarray,
                   answer: np.ndarray | None = None) -> None:
    """Add one video's carried-snitch frames: is the entity tracking the snitch published within
    CARRIED_CELLS of the truth, with carrier following and with the model's own positions? And the snitch
    read-out's answer (T, 2) screen, which need not follow any one entity, when the model has one."""
    snitch = _snitch_object(item)
    carried = np.flatnonzero(_np(item["object_states"])[1:, snitch] == metrics.CARRIED_STATE)
    if not len(carried):
        return
    cameras, truth = _np(item["camera"])[1:][carried], _np(item["snitch_world"])[1:][carried]
    entity = track[carried, snitch]
    counts["frames"] += len(carried)

    def near(screen: np.ndarray) -> np.ndarray:
        world = _screen_to_world(screen, cameras)
        return metrics.grid_l1(grid_class(world), grid_class(truth), CELL_COLS) <= CARRIED_CELLS

    for key, positions in ((CARRIED, followed), ("model position", own)):
        counts[key] += int((near(positions[carried, np.maximum(entity, 0)]) & (entity >= 0)).sum())
    if answer is not None:
        counts[READOUT_ANSWER] = counts.get(READOUT_ANSWER, 0) + int(near(answer[carried]).sum())


def _carried_summary(counts: dict) -> dict:
    n = counts["frames"]
    keys = [CARRIED, "model position"] + ([READOUT_ANSWER] if READOUT_ANSWER in counts else [])
    return {"frames": n, "within_cells": CARRIED_CELLS, **{key: (counts[key] / n if n else None) for key in keys}}


@dataclass(frozen=True)
class VideoEnd:
    """What the CATER table needs of a video once its frames are gone: how it ends."""

    label: int                # the snitch's grid cell at the last frame
    snitch_world: np.ndarray  # (3,) the snitch's world position at the last frame
    contained: bool           # the snitch ends inside a container
    name: str = ""
    state: str | None = None  # the snitch's state in the last frame (metrics.STATE_NAMES), if known

    @classmethod
    def of(cls, item: dict) -> VideoEnd:
        state = None
        if "object_states" in item:
            state = metrics.STATE_NAMES[int(_np(item["object_states"])[-1, _snitch_object(item)])]
        return cls(int(item["label"]), _np(item["snitch_world"])[-1], bool(_np(item["contained"])[-1]),
                   str(item.get("name", "")), state)


class _Method:
    """Per-method accumulators: final answers, per-step L2 with containment, tracking results."""

    def __init__(self, name: str):
        self.name = name
        self.final_xy, self.ranked, self.step_l2, self.since, self.tracks = [], [], [], [], []

    def add_snitch(self, screen: np.ndarray, item: dict, frames: slice = slice(1, None)) -> None:
        """screen (T', 2) the method's snitch screen position for the item's frames `frames`,
        taken to the snitch plane through each frame's camera."""
        screen = np.where(np.isfinite(screen), screen, 0.0)  # never found: the image centre
        self.add_world(_screen_to_world(screen, _np(item["camera"])[frames]), item, frames)

    def add_world(self, world: np.ndarray, item: dict, frames: slice = slice(1, None)) -> None:
        """world (T', 3) the method's snitch position in the world for the item's frames `frames`."""
        truth = _np(item["snitch_world"])[frames]
        self.final_xy.append(world[-1, :2])
        self.step_l2.append(np.linalg.norm(world - truth, axis=1))
        self.since.append(metrics.frames_since_contained(_np(item["contained"]))[frames])

    def rankings(self) -> np.ndarray | None:
        """(N, C) every video's grid cells, the method's answer first."""
        if self.ranked:
            return np.stack(self.ranked)
        if self.final_xy:
            return metrics.nearest_cells(np.stack(self.final_xy), class_centres(CELL_COLS), k=CELL_COLS ** 2)
        return None

    def cater(self, ends: list[VideoEnd]) -> dict | None:
        labels = np.array([e.label for e in ends])
        truth = np.stack([e.snitch_world for e in ends])
        if self.ranked:
            out = metrics.class_localisation(np.stack(self.ranked), labels, CELL_COLS)
            first = np.stack(self.ranked)[:, 0]
            centres = class_centres(CELL_COLS)[first]
            out["l2"] = float(np.mean(np.linalg.norm(
                np.concatenate([centres, np.full((len(centres), 1), CATER_Z0)], 1) - truth, axis=1)))
        elif self.final_xy:
            out = metrics.cater_localisation(np.stack(self.final_xy), truth, labels, class_centres(CELL_COLS),
                                             CELL_COLS, CATER_Z0)
            first = metrics.nearest_cells(np.stack(self.final_xy), class_centres(CELL_COLS), k=1)[:, 0]
        else:
            return None
        # standard errors over videos: what a difference between two rows must exceed to mean something
        ranking = self.rankings()
        out["top1_se"] = _standard_error(ranking[:, 0] == labels)
        out["top5_se"] = _standard_error((ranking[:, :5] == labels[:, None]).any(1))
        out["l1_se"] = _standard_error(metrics.grid_l1(ranking[:, 0], labels, CELL_COLS))
        # Snitches that end inside a container are the hard part of CATER: only a tracker that follows the
        # container finds them. Top-1 for those and for the rest tells where a method fails.
        hit = first == labels
        inside = np.array([e.contained for e in ends])
        out["contained_at_end"] = int(inside.sum())
        out["top1_contained_at_end"] = float(hit[inside].mean()) if inside.any() else None  # no such video
        out["top1_free_at_end"] = float(hit[~inside].mean()) if (~inside).any() else None
        return out

    def binned(self) -> list[dict] | None:
        if not self.step_l2:
            return None
        return metrics.bin_by_containment(np.concatenate(self.step_l2), np.concatenate(self.since))


def _standard_error(values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def per_video(methods: dict, ends: list[VideoEnd]) -> list[dict]:
    """Every video's ending and every method's answer (a world point where it has one, and its ranking of
    the grid cells), for re-scoring and inspecting failures with other tools."""
    rankings = {name: m.rankings() for name, m in methods.items()}
    rows = []
    for i, end in enumerate(ends):
        answers = {}
        for name, m in methods.items():
            if rankings[name] is None:
                continue
            world = [float(v) for v in m.final_xy[i]] if m.final_xy else None
            answers[name] = {"world_xy": world, "ranking": [int(c) for c in rankings[name][i]]}
        rows.append({"name": end.name, "label": end.label, "snitch_world": [float(v) for v in end.snitch_world],
                     "contained_at_end": end.contained, "state_at_end": end.state, "answers": answers})
    return rows


def video_set_id(names: list[str]) -> str:
    """Names which videos were evaluated, wherever the data set lies: numbers are comparable only
    between evaluations with the same id (`loci curve --extend` checks it)."""
    digest = hashlib.sha1("\n".join(sorted(names)).encode()).hexdigest()[:12]
    return f"{len(names)} video{'' if len(names) == 1 else 's'}, sha1 {digest}"


def default_batch(level: int, device: str) -> int:
    """Videos per batch when the user did not say: level-2 tensors of many videos overflow a CPU's cache,
    so on a CPU batch 1 runs a level-2 model fastest per frame (bench/README.md)."""
    return 1 if level >= 2 and torch.device(device).type == "cpu" else 8


def evaluate(checkpoint: Path, data: Path, split: str = "test", batch: int | None = None,
             videos: int | None = None, out_dir: Path | None = None, device: str = "cpu", resize: bool = False,
             progress: bool = True, baselines: bool = True, compile_model: bool = False,
             data_options: dict | None = None, visibility_threshold: float = 0.5,
             carrier_radius: float = 0.25) -> dict:
    """Run the whole evaluation; returns the results dict (also written to out_dir). Without
    `baselines` only Loci is scored (the baselines depend on the videos alone, not the checkpoint).
    `batch` None: `default_batch` for the model's level and the device. `compile_model`: run the model
    through `Loci.compile_inference`, compiled before the first video for each batch size the run has.
    `data_options`: open_video_data's footage keywords (topic, background, ...); footage without ground
    truth gets evaluate_footage's measures instead of the CATER table."""
    from tqdm import tqdm

    from ..data.footage import FootageVideos
    from ..data.reader import read_split
    from ..data.sources import open_video_data
    from ..model.checkpoint import load_model
    from .baselines.chance import chance_ranking
    from .baselines.classical import ClassicalTracker

    model, cfg, _ = load_model(checkpoint, device=device)
    if batch is not None and batch < 1:
        raise EvalError(f"batch must be at least 1, got {batch}")
    batch = batch or default_batch(model.level, device)
    torch.manual_seed(cfg.train.seed)
    dataset = open_video_data(data, split=split, size=model.resolution, seed=cfg.train.seed,
                              **(data_options or {}))
    if len(dataset) == 0:
        raise EvalError(f"{data}: the {split} split is empty")
    if isinstance(dataset, FootageVideos):
        from .footage import evaluate_footage

        count = len(dataset) if videos is None else min(videos, len(dataset))
        return evaluate_footage(model, cfg, dataset, count, out_dir, device, checkpoint, data, split, progress)
    check_resolution(checkpoint, model, data, dataset.entries[0].name, resize)
    n = len(dataset) if videos is None else min(videos, len(dataset))
    has_gt = all(dataset.has_ground_truth(e.name) for e in dataset.entries[:n])
    if compile_model:  # for the batch sizes this run has (a smaller last batch compiles now, not mid-run)
        model.compile_inference(batch_size=[min(batch, n)] + ([n % batch] if n > batch and n % batch else []))

    methods = {name: _Method(name) for name in ("loci", TOP_SLOT, CARRIED, BEST_SLOT, "last seen (oracle)",
                                                "classical tracker", "chance")}
    loci_m, top_m, carried_m, best_m, last_m, classic_m, chance_m = methods.values()
    carried_frames = {"frames": 0, CARRIED: 0, "model position": 0}
    tracker = ClassicalTracker()
    bar = tqdm(total=n, unit="video", desc="eval", disable=not progress)
    snitch_off = cfg.model.snitch == "off"
    ends = []
    for start in range(0, n, batch):
        # videos are read one batch at a time: 200 videos of 301 frames at 320x240 with their ground truth are ~18 GB
        chunk = [dataset[i] for i in range(start, min(start + batch, n))]
        ends += [VideoEnd.of(it) for it in chunk]
        if len({it["frames"].shape for it in chunk}) != 1:
            raise EvalError("videos of different lengths in one batch; use --batch 1")
        for it, res in zip(chunk, run_loci(model, chunk, cfg.train.warmup_calls, device)):
            followed = res.positions
            if res.snitch is not None:
                loci_m.add_snitch(res.snitch, it)
                top_m.add_snitch(snitch_rules.top_slot(res.snitch_weights, res.positions), it)
                answers, followed = snitch_rules.sticky_carried(res.snitch_weights, res.positions,
                                                                res.visibility >= visibility_threshold,
                                                                carrier_radius)
                carried_m.add_snitch(answers, it)
            best_m.add_world(best_slot_track(res.positions, it), it)
            if has_gt:
                tracks = evaluate_tracks(res.labels, it, res.positions)
                loci_m.tracks.append(tracks)
                _count_carried(carried_frames, it, tracks["track"], res.positions, followed, res.snitch)
            if baselines:
                _score_baselines(it, has_gt, tracker, last_m, classic_m)
            bar.update()
    bar.close()
    if baselines:
        train_labels = [e.label for e in read_split(data, "train") if e.label is not None and e.label >= 0]
        chance_m.ranked = list(chance_ranking(train_labels or [0], CELL_COLS * CELL_COLS, n,
                                                     k=CELL_COLS * CELL_COLS))

    results = {"checkpoint": str(checkpoint), "data": str(data), "split": split, "videos": n,
               "carried_snitch": _carried_summary(carried_frames) if has_gt else None,
               "video_set": video_set_id([e.name for e in dataset.entries[:n]]),
               "resolution": list(model.resolution), "snitch_readout": cfg.model.snitch,
               "tracking_ground_truth": has_gt, "cater": {}, "tracking": {}, "l2_by_containment": {}}
    for name, m in methods.items():
        table = m.cater(ends)
        if table is not None:
            results["cater"][name] = table
        binned = m.binned()
        if binned is not None:
            results["l2_by_containment"][name] = binned
        if m.tracks:
            results["tracking"][name] = summarise_tracks(m.tracks)
    results["notes"] = [f"{BEST_SLOT}: in every frame the slot nearest the true snitch, i.e. what a perfect "
                        "read-out of these slots would answer. What separates it from 'loci' is the read-out's "
                        "error; what it misses itself, the slots' (no slot on the snitch)"]
    if snitch_off:
        results["notes"] += ["the checkpoint has no snitch read-out (model.snitch = off): "
                            "no CATER numbers for Loci"]
    results["per_video"] = per_video(methods, ends)
    if out_dir is not None:
        _write(results, Path(out_dir))
    return results


def best_slot_track(positions: np.ndarray, item: dict) -> np.ndarray:
    """positions (T-1, O, 2) Loci's slot screen positions for frames 1..T-1 -> (T-1, 3) world points on the
    snitch plane of the slot nearest the true snitch in each frame (a read-out that knows the answer)."""
    cameras = _np(item["camera"])[1:]
    unset = ~np.isfinite(positions).all(-1)                                     # (T-1, O)
    screen = np.where(unset[..., None], 0.0, positions)
    world = _screen_to_world(screen, cameras)                                    # (T-1, O, 3)
    truth = _np(item["snitch_world"])[1:]
    distance = np.linalg.norm(world[..., :2] - truth[:, None, :2], axis=2)
    nearest = np.where(unset, np.inf, distance).argmin(1)  # (T-1,); all unset: slot 0 at the image centre
    return world[np.arange(len(world)), nearest]


def _score_baselines(it: dict, has_gt: bool, tracker, last_m: _Method, classic_m: _Method) -> None:
    """Add one video's last-seen oracle (needs the ground truth) and classical-tracker results."""
    from .baselines.last_seen import last_seen_track

    if has_gt:
        snitch_k = _snitch_object(it)
        visible = _np(it["object_states"])[:, snitch_k] == metrics.VISIBLE
        seen = last_seen_track(_np(it["snitch_world"]), visible)   # (T, 3)
        seen[:, 2] = CATER_Z0            # answers live on the snitch plane like everyone's
        last_m.add_world(seen[1:], it)
    classic = tracker.run(_np(it["frames"]), _np(it["background"]))
    classic_m.add_snitch(classic.snitch[1:], it)
    if has_gt:
        classic_m.tracks.append(evaluate_tracks(classic.labels[1:], it, classic.positions[1:]))


def _snitch_object(item: dict) -> int:
    """The index of the snitch among a video item's objects."""
    k = int(item["num_objects"])
    return int(np.flatnonzero(_np(item["object_shape"])[:k] == _spl_index())[0])


def _spl_index() -> int:
    from ..data.scene import ALL_SHAPES

    return ALL_SHAPES.index("spl")


# --------------------------------------------------------------------------------------------
# Output


def _f(x, digits=3, scale=1.0) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x * scale:.{digits}f}"


def markdown(results: dict) -> str:
    lines = [f"Evaluation of `{results['checkpoint']}` on {results['videos']} {results['split']} videos of "
             f"`{results['data']}` at {results['resolution'][1]}x{results['resolution'][0]}", ""]
    inside = next(iter(results["cater"].values()), {}).get("contained_at_end")
    lines += ["CATER snitch localisation (last frame); top-1 also for the videos whose snitch ends inside a "
              f"container ({inside} of {results['videos']}) and the others:", "",
              "| method | top-1 % | top-5 % | L1 (cells) | L2 (world) | top-1 % contained at end | top-1 % free |",
              "|---|---|---|---|---|---|---|"]
    for name, r in results["cater"].items():
        lines.append(f"| {name} | {_pm(r, 'top1', 1, 100)} | {_pm(r, 'top5', 1, 100)} | {_pm(r, 'l1', 2)} | "
                     f"{_f(r.get('l2'), 2)} | {_f(r.get('top1_contained_at_end'), 1, 100)} | "
                     f"{_f(r.get('top1_free_at_end'), 1, 100)} |")
    lines.append("\n± one standard error over videos.")
    carried = results.get("carried_snitch")
    if carried and carried["frames"]:
        lines.append(f"\nCarried snitch ({carried['frames']} frames in which a cone carries it): the entity "
                     f"tracking it is within {carried['within_cells']} grid cells (L1) of the truth in "
                     f"{_f(carried[CARRIED], 1, 100)} % of them with carrier following, "
                     f"{_f(carried['model position'], 1, 100)} % at the model's own position (the tracker's and the "
                     "node's default).")
        if carried.get(READOUT_ANSWER) is not None:
            lines.append(f"The snitch read-out's answer is within {carried['within_cells']} cells in "
                         f"{_f(carried[READOUT_ANSWER], 1, 100)} % of those frames.")
    for note in results.get("notes", []):
        lines.append(f"\nNote: {note}")
    if results["tracking"]:
        states = metrics.STATE_NAMES
        lines += ["", "Tracking against the generated ground truth (frames 1..T-1; position error in pixels, "
                  "lost = share of frames without a tracked entity):", "",
                  "| method | MOTA | IDF1 | FG-ARI | mIoU | "
                  + " | ".join(f"{s} px (lost)" for s in states) + " |",
                  "|---|---|---|---|---|" + "---|" * len(states)]
        for name, r in results["tracking"].items():
            pos = " | ".join(f"{_f(r['position'][s]['error_px'], 1)} ({_f(r['position'][s]['lost'], 2)})"
                             for s in states)
            lines.append(f"| {name} | {_f(r['mota'])} | {_f(r['idf1'])} | {_f(r['fg_ari'])} | "
                         f"{_f(r['miou'])} | {pos} |")
    elif not results["tracking_ground_truth"]:
        lines.append("\nNo tracking metrics: the data set has no ground_truth/ files (real CATER).")
    return "\n".join(lines)


def _pm(row: dict, key: str, digits: int, scale: float = 1.0) -> str:
    se = row.get(f"{key}_se")
    text = _f(row[key], digits, scale)
    return text if se is None or not np.isfinite(se) else f"{text} ± {_f(se, digits, scale)}"


def _write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in results.items() if k != "per_video"}
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=float))
    (out / "videos.json").write_text(json.dumps(results["per_video"], indent=1, default=float))
    (out / "results.md").write_text(markdown(results) + "\n")
    if results["l2_by_containment"]:
        metrics.plot_binned_l2(results["l2_by_containment"], out / "l2_by_containment.png")

