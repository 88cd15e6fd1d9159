"""`loci export`: a training checkpoint -> a small release checkpoint for people who only run the model.

A training checkpoint also carries what `loci train --resume` needs (optimiser moments, each
process's sequence state and random generators, loop counters): most of its size and of no use
for tracking. The release file keeps what loading and tracking read (`load_model`,
`OnlineTracker.from_checkpoint`) and says where it came from in `provenance`:

    {"source": file name, "global_step", "data", "split", "note", "exported": UTC ISO time, "torch"}
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import torch

from ..model.checkpoint import CheckpointError, load_model, write_checkpoint

# Allow-list rather than a list of what to drop, so payload that training adds later stays out of
# releases until someone decides it belongs there.
KEEP = ("format", "version", "config", "model", "global_step", "background", "resolution")


def release_checkpoint(data: dict, source: Path, note: str | None = None) -> dict:
    """The release dict of a loaded checkpoint dict (tensors are shared, not copied)."""
    train_state = data.get("train_state") or {}
    release = {key: data[key] for key in KEEP if key in data}
    release["provenance"] = {
        "source": Path(source).name,  # the name only: the trainer's directories mean nothing to users
        "global_step": int(data["global_step"]),
        "data": train_state.get("data"),
        "split": train_state.get("split"),
        "note": note,
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": str(torch.__version__),  # a str subclass that weights_only loading refuses
    }
    return release


def export(checkpoint: Path, out: Path, note: str | None = None, force: bool = False) -> dict:
    """Write the release checkpoint of `checkpoint` to `out`.

    Returns {"out": path, "dropped": names of the keys left out, "source_bytes", "out_bytes"}."""
    checkpoint, out = Path(checkpoint), Path(out)
    if out.exists() and out.resolve() == checkpoint.resolve():
        # Even with --force: that would silently end the run's ability to resume.
        raise FileExistsError(f"{out} is the training checkpoint itself; choose another --out")
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to overwrite it")
    # Building the model, not only reading the file, so that weights that do not fit their config
    # are refused here rather than by the first user.
    _, _, data = load_model(checkpoint)
    release = release_checkpoint(data, checkpoint, note)
    write_checkpoint(out, release)
    return {"out": out, "dropped": [key for key in data if key not in release],
            "source_bytes": checkpoint.stat().st_size, "out_bytes": out.stat().st_size}


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="strip a training checkpoint down to a release checkpoint",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path, help="training checkpoint (.pt)")
    p.add_argument("--out", required=True, type=Path, help="release checkpoint to write, e.g. models/NAME.pt")
    p.add_argument("--note", help="free text stored in the provenance (what, why, which run)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        done = export(args.checkpoint, args.out, args.note, args.force)
    except (CheckpointError, FileExistsError, OSError) as err:
        print(f"loci export: error: {err}", file=sys.stderr)
        return 2
    print(f"{done['out']}: {_size(done['out_bytes'])} (from {_size(done['source_bytes'])}; "
          f"dropped: {', '.join(done['dropped']) or 'nothing'})")
    return 0
