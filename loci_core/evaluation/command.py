"""`loci eval`: the command line of evaluation (the scoring itself is evaluate.py).

It evaluates a checkpoint on a data set's split, prints the results table as Markdown and names the
files it wrote; every expected failure is a one-line error and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

DESCRIPTION = ("Evaluate a checkpoint on whole videos: the CATER snitch table, tracking scores against the "
               "generated ground truth and the baselines (docs/cater.md says what each number means).")


def register(subparsers) -> None:
    from ..data.sources import add_footage_arguments
    from ..device import add_device_argument

    p = subparsers.add_parser("eval", help="evaluate a checkpoint: CATER table, tracking metrics, baselines",
                              description=DESCRIPTION)
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--data", required=True, type=Path,
                   help="CATER-format directory, folder of video files or rosbag2 (with --topic)")
    add_footage_arguments(p)
    p.add_argument("--split", default="test", help="test (CATER's val.txt), train or all")
    p.add_argument("--batch", type=int, default=None,
                   help="videos per batch (default: 8, or 1 for level-2 models on a CPU, where that runs fastest; "
                        "see bench/README.md)")
    p.add_argument("--videos", type=int, help="evaluate only the first N videos of the split")
    p.add_argument("--out", type=Path, help="output directory (default: next to the checkpoint)")
    add_device_argument(p)
    p.add_argument("--resize", action="store_true", help="resize videos to the checkpoint's resolution")
    p.add_argument("--compile", action="store_true",
                   help="compile the model's step with TorchInductor (faster tracking after minutes of "
                        "compiling per batch size; needs a C++ compiler)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.reader import CaterFormatError
    from ..data.sources import data_options
    from ..device import DeviceError, resolve_device
    from ..model.checkpoint import CheckpointError
    from .evaluate import EvalError, evaluate, markdown

    out = args.out or args.checkpoint.parent / f"eval-{args.checkpoint.stem}-{args.split}"
    try:
        device = resolve_device(args.device)
        results = evaluate(args.checkpoint, args.data, args.split, args.batch, args.videos, out, device,
                           args.resize, progress=not args.no_progress, compile_model=args.compile,
                           data_options=data_options(args))
    except (EvalError, CheckpointError, CaterFormatError, DeviceError, OSError) as err:
        print(f"loci eval: error: {err}", file=sys.stderr)
        return 2
    if results.get("kind") == "footage":
        from .footage import markdown as footage_markdown

        print(footage_markdown(results))
        print(f"\nwritten to {out}/ (results.json, results.md, overlays/)", file=sys.stderr)
        return 0
    print(markdown(results))
    print(f"\nwritten to {out}/ (results.json, results.md, videos.json: every video's answers, "
          "l2_by_containment.png)", file=sys.stderr)
    return 0
