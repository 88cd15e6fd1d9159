"""Runs every benchmark in turn and writes their JSON under bench/results/ (`make bench`).

Run on a quiet machine: the numbers are wall-clock speeds, and other processes change them."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RUNS = {
    "render_speed": [],
    "model_speed": [],
    "kernel_bound": [],
    "node_speed": [],
    "subnormal_tails": [],
    "train_speed": [],
}


def main() -> int:
    (BENCH / "results").mkdir(exist_ok=True)
    failed = []
    for name, extra in RUNS.items():
        print(f"\n## {name}\n", flush=True)
        cmd = [sys.executable, str(BENCH / f"{name}.py"), "--json", str(BENCH / "results" / f"{name}.json"), *extra]
        if subprocess.run(cmd, cwd=BENCH.parent).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
