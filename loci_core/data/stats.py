"""Scene statistics of docs/cater.md (The videos), from scenes on disk or straight from the sampler.

Per video (snitch = object "spl", containment physical as in trajectory.py):
- contained_end:  the snitch is under a cone at the last frame            (CATER re-simulation: ~37 %)
- ever_contained: under a cone at some frame                                (~78 %)
- carried:        moved while under a cone at some frame                    (~49 %)
- nested_end:     under two cones (cone in cone) at the last frame          (~7 %)
- last_seen_top1: the 6x6 cell where the snitch was last seen equals the label (~79 %); "seen" = not
                  contained, or, when loci's ground truth exists, state == visible (so occlusion counts too)
- contained_frames: share of frames with the snitch under a cone           (~22 %)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from loci_core.data.camera import grid_class
from loci_core.data.scene import VISIBLE, Scene
from loci_core.data.trajectory import carried, containers, containment_depth

CATER_REFERENCE = {  # a positions-only re-simulation of CATER's sampling rules over 8,000 videos
    "contained_end": 0.37,
    "ever_contained": 0.78,
    "carried": 0.49,
    "nested_end": 0.07,
    "last_seen_top1": 0.79,
    "contained_frames": 0.22,
}


def video_stats(scene: Scene, states: np.ndarray | None = None) -> dict[str, float]:
    s = scene.snitch_index
    parent = containers(scene)
    inside = parent[s] >= 0
    depth = containment_depth(parent)[s]
    seen = (states[:, s] == VISIBLE) if states is not None else ~inside
    label = grid_class(scene.locations[s, -1])
    seen_frames = np.nonzero(seen)[0]
    last_seen = seen_frames[-1] if len(seen_frames) else 0
    return {
        "contained_end": float(inside[-1]),
        "ever_contained": float(inside.any()),
        "carried": float(carried(parent, scene.locations)[s].any()),
        "nested_end": float(depth[-1] >= 2),
        "last_seen_top1": float(grid_class(scene.locations[s, last_seen]) == label),
        "contained_frames": float(inside.mean()),
    }


def aggregate(per_video: Iterable[dict[str, float]]) -> dict[str, float]:
    rows = list(per_video)
    if not rows:
        raise ValueError("no videos to compute statistics over")
    out = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
    out["videos"] = len(rows)
    return out


def simulate(count: int, seed: int, num_frames: int = 301, progress: bool = False) -> dict[str, float]:
    """Statistics of `count` sampled scenes (no rendering; occlusion therefore not modelled)."""
    from tqdm import tqdm

    from loci_core.data.sampler import sample_scene, video_rng

    rows = (
        video_stats(sample_scene(video_rng(seed, i), num_frames))
        for i in tqdm(range(count), desc="simulate", unit="video", disable=not progress)
    )
    return aggregate(rows)


def directory_stats(root: Path, progress: bool = False) -> dict[str, float]:
    """Statistics over every scene JSON under root/scenes (using ground_truth/*.npz states when present)."""
    from tqdm import tqdm

    from loci_core.data.reader import CaterFormatError, read_scene

    paths = sorted((Path(root) / "scenes").glob("*.json"))
    if not paths:
        raise CaterFormatError(f"{Path(root) / 'scenes'}: no scene JSON files")
    rows = []
    for path in tqdm(paths, desc="stats", unit="video", disable=not progress):
        scene = read_scene(path)
        gt_path = Path(root) / "ground_truth" / f"{path.stem}.npz"
        states = None
        if gt_path.is_file():
            with np.load(gt_path) as z:
                states = z["states"]
        rows.append(video_stats(scene, states))
    return aggregate(rows)


def format_table(stats: dict[str, float]) -> str:
    lines = [f"{'statistic':<18} {'value':>8} {'CATER':>8}"]
    for key, ref in CATER_REFERENCE.items():
        lines.append(f"{key:<18} {100 * stats[key]:7.1f}% {100 * ref:7.1f}%")
    lines.append(f"{'videos':<18} {int(stats['videos']):>8}")
    return "\n".join(lines)


def footage_table(dataset, seed: int) -> str:
    """What training will see of a FootageVideos data set (split "all"): sequences, frames, split, background."""
    from loci_core.data.footage import VALIDATION_FRACTION, split_names

    counts = np.array([s.num_frames for s in dataset.sequences])
    test = split_names(dataset.names, "test", seed)
    return "\n".join([
        f"{dataset.source.description}: {len(counts)} sequences, {counts.sum()} frames "
        f"(per sequence min {counts.min()}, median {int(np.median(counts))}, max {counts.max()})",
        f"split by sequence (seed {seed}, {VALIDATION_FRACTION:.0%} held out): train {len(counts) - len(test)}, "
        f"test {len(test)}" + (f" ({', '.join(test[:5])}{' ...' if len(test) > 5 else ''})" if test else ""),
        f"background: {dataset.background_source()}"])
