"""`loci curve`: `loci eval` over a run's checkpoints, as a table and a plot against training updates.

    PREFIX.json  one row per checkpoint, by global_step: {"global_step", "checkpoint",
                 "top1", "top5", "l1" (Loci's CATER snitch localisation), "fg_ari", "miou", "mota",
                 "idf1" (Loci's tracking), "best_slot_top1" (top-1 of a perfect read-out of Loci's
                 slots), "video_set" (which videos were evaluated)}; null where the evaluation has no
                 such number
    PREFIX.png   snitch top-1 and FG-ARI against updates, the baselines' top-1 as dashed lines

`--extend` adds the new checkpoints to an existing PREFIX.json (a run keeps only its last checkpoints,
so a curve over a long run grows as it trains); its rows must come from the same videos.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from .evaluate import BEST_SLOT

CATER_KEYS = ("top1", "top5", "l1")
TRACKING_KEYS = ("fg_ari", "miou", "mota", "idf1")
FIGSIZE, DPI = (6.4, 4.0), 100          # a 640x400 PNG


class CurveError(RuntimeError):
    """A learning curve that cannot be drawn; the message says why."""


def _finite(x) -> float | None:
    # JSON has no NaN or infinity (MOTA is -inf on a video without objects): write null instead.
    return float(x) if x is not None and math.isfinite(x) else None


def curve_row(step: int, checkpoint: Path, results: dict) -> dict:
    """One JSON row of an `evaluate` results dict."""
    cater = results["cater"].get("loci", {})
    tracking = results["tracking"].get("loci", {})
    row = {"global_step": int(step), "checkpoint": str(checkpoint)}
    row.update({k: _finite(cater.get(k)) for k in CATER_KEYS})
    row.update({k: _finite(tracking.get(k)) for k in TRACKING_KEYS})
    row["best_slot_top1"] = _finite(results["cater"].get(BEST_SLOT, {}).get("top1"))
    row["video_set"] = results["video_set"]
    return row


def read_curve(path: Path) -> list[dict]:
    """The rows of an earlier PREFIX.json; refuses a file that is not one."""
    try:
        rows = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise CurveError(f"{path}: not a learning curve ({err})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "global_step" in r for r in rows):
        raise CurveError(f"{path}: not a learning curve (expected a list of rows with a global_step)")
    return rows


def extend_rows(old: list[dict], new: list[dict], source: Path) -> list[dict]:
    """`old` with `new` added (a new row replaces an old one of the same step), by step; the rows of
    both must come from the same evaluated videos, or the curve would mix two test sets."""
    wanted = {r["video_set"] for r in new}
    mixed = sorted({str(r.get("video_set")) for r in old} - wanted)
    if mixed:
        raise CurveError(f"{source} was evaluated on other videos ({', '.join(mixed)}) than these "
                         f"({', '.join(sorted(wanted))}); use the same --data/--split/--videos or a new --out")
    steps = {r["global_step"] for r in new}
    return sorted([r for r in old if r["global_step"] not in steps] + new, key=lambda r: r["global_step"])


def by_step(checkpoints: list[Path]) -> list[tuple[int, Path]]:
    """(global_step, path) of each checkpoint, in training order; refuses an unreadable one up front
    so that a typo does not surface only after an hour of evaluating the others."""
    from ..model.checkpoint import CheckpointError, load_checkpoint

    if not checkpoints:
        raise CurveError("no checkpoints given")
    steps = []
    for path in dict.fromkeys(Path(c) for c in checkpoints):
        try:
            steps.append((int(load_checkpoint(path)["global_step"]), path))
        except CheckpointError as err:
            hint = " (a shell pattern that matched nothing?)" if any(c in str(path) for c in "*?[") else ""
            raise CurveError(f"{err}{hint}") from None
    return sorted(steps, key=lambda s: (s[0], str(s[1])))


def learning_curve(checkpoints: list[Path], data: Path, split: str = "test", batch: int | None = None,
                   videos: int | None = None, device: str = "cpu", resize: bool = False,
                   progress: bool = True) -> tuple[list[dict], dict]:
    """Evaluate every checkpoint; returns (rows by global_step, the last checkpoint's results)."""
    from tqdm import tqdm

    from .evaluate import evaluate

    rows, results = [], {}
    series = by_step(checkpoints)
    for i, (step, path) in enumerate(tqdm(series, unit="ckpt", desc="curve", disable=not progress)):
        # the baselines do not train: scored once, with the last checkpoint
        results = evaluate(path, data, split, batch, videos, out_dir=None, device=device, resize=resize,
                           progress=False, baselines=i == len(series) - 1)
        rows.append(curve_row(step, path, results))
    return rows, results


def plot_curve(rows: list[dict], baselines: dict[str, float], path: Path) -> None:
    """PNG of top-1 and FG-ARI per update; `baselines` {name: top-1} drawn as horizontal lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    steps = [r["global_step"] for r in rows]
    nan = float("nan")                  # matplotlib leaves a gap at NaN, where None would fail
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    ax.plot(steps, [nan if r["top1"] is None else r["top1"] for r in rows], marker="o", label="Loci snitch top-1")
    ax.plot(steps, [nan if r["fg_ari"] is None else r["fg_ari"] for r in rows], marker="s", label="Loci FG-ARI")
    for i, (name, top1) in enumerate(baselines.items()):  # C0, C1 are Loci's own lines
        ax.axhline(top1, linestyle="--", color=f"C{i + 2}", linewidth=1, label=f"{name} top-1")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training updates (global step)")
    ax.set_ylabel("score (top-1 as a fraction)")
    ax.set_title("Learning curve")
    ax.grid(alpha=0.3)
    # Below the axes: inside, it would cover the oracle's line at 1.0 or the curves near 0.
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_curve(rows: list[dict], last: dict, prefix: Path) -> tuple[Path, Path]:
    """PREFIX.json and PREFIX.png; the baselines come from the last evaluation (they do not train)."""
    json_path, png_path = Path(f"{prefix}.json"), Path(f"{prefix}.png")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(rows, indent=2) + "\n")
    baselines = {name: r["top1"] for name, r in last.get("cater", {}).items()
                 if name not in ("loci", BEST_SLOT) and _finite(r.get("top1")) is not None}
    plot_curve(rows, baselines, png_path)
    return json_path, png_path


def register(subparsers) -> None:
    from ..device import add_device_argument

    p = subparsers.add_parser("curve", help="evaluate several checkpoints: metrics against training updates",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", required=True, nargs="+", type=Path,
                   help="checkpoints in any order, e.g. runs/small/checkpoints/step-*.pt")
    p.add_argument("--data", required=True, type=Path, help="CATER-format data set directory")
    p.add_argument("--split", default="test", help="test (CATER's val.txt), train or all")
    p.add_argument("--videos", type=int, help="evaluate only the first N videos of the split")
    p.add_argument("--batch", type=int, default=None, help="videos per batch (default: as loci eval)")
    p.add_argument("--resize", action="store_true", help="resize videos to the checkpoints' resolution")
    add_device_argument(p)
    p.add_argument("--out", required=True, type=Path, help="output prefix: writes PREFIX.json and PREFIX.png")
    p.add_argument("--extend", action="store_true",
                   help="add to the rows already in PREFIX.json (same videos) instead of replacing them")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.reader import CaterFormatError
    from ..device import DeviceError, resolve_device
    from ..model.checkpoint import CheckpointError
    from .evaluate import EvalError

    earlier = Path(f"{args.out}.json")
    try:
        device = resolve_device(args.device)
        # read before the (long) evaluation, so that a wrong file fails at once
        old = read_curve(earlier) if args.extend and earlier.exists() else []
        rows, last = learning_curve(args.checkpoints, args.data, args.split, args.batch, args.videos, device,
                                    args.resize, progress=not args.no_progress)
        rows = extend_rows(old, rows, earlier) if old else rows
        written = write_curve(rows, last, args.out)
    except (CurveError, EvalError, CheckpointError, CaterFormatError, DeviceError, OSError) as err:
        print(f"loci curve: error: {err}", file=sys.stderr)
        return 2
    for r in rows:
        print(f"step {r['global_step']:>8}: top-1 {_pct(r['top1'])}  FG-ARI {_num(r['fg_ari'])}  "
              f"MOTA {_num(r['mota'])}  IDF1 {_num(r['idf1'])}  ({r['checkpoint']})")
    print(f"written: {written[0]}, {written[1]}", file=sys.stderr)
    return 0


def _pct(x) -> str:
    return "  n/a" if x is None else f"{x * 100:5.1f}%"


def _num(x) -> str:
    return "  n/a" if x is None else f"{x:5.3f}"
