"""Generator speed: frames per second of sample + render + write (video, masks, scene JSON), one process.

    .venv/bin/python bench/render_speed.py [--videos 2] [--json bench/results/render_speed.json]

Targets (issue 3): >= 200 frames/s at 80x60 and >= 20 frames/s at 320x240 on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loci_core.data import writer  # noqa: E402
from loci_core.data.generate import GenerateOptions, generate_one  # noqa: E402

TARGETS = {(60, 80): 200.0, (240, 320): 20.0}


def measure(size: tuple[int, int], videos: int, seed: int) -> dict:
    opts = GenerateOptions(size=size)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        writer.make_dirs(root)
        generate_one(root, 10_000, seed, GenerateOptions(size=size, frames=10))  # warm-up (imports, caches)
        start = time.perf_counter()
        for i in range(videos):
            generate_one(root, i, seed, opts)
        elapsed = time.perf_counter() - start
        disk = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    frames = videos * opts.frames
    return {
        "size": f"{size[1]}x{size[0]}",
        "videos": videos,
        "frames": frames,
        "seconds": elapsed,
        "fps": frames / elapsed,
        "target_fps": TARGETS[size],
        "bytes_written": disk,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = [measure(size, args.videos, args.seed) for size in TARGETS]
    print(f"{'size':>9} {'videos':>6} {'frames':>6} {'seconds':>8} {'frames/s':>9} {'target':>7}  ok")
    for r in rows:
        ok = "yes" if r["fps"] >= r["target_fps"] else "NO"
        print(
            f"{r['size']:>9} {r['videos']:>6} {r['frames']:>6} {r['seconds']:8.2f} {r['fps']:9.1f} "
            f"{r['target_fps']:7.0f}  {ok}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
