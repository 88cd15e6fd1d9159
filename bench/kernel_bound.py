"""How close to the machine's peak can a Loci step get with the kernels it is made of?

    .venv/bin/python bench/kernel_bound.py            # small config (B=1, B=16) and paper config level 1
    .venv/bin/python bench/kernel_bound.py --quick    # smoke run

% of peak (model_speed.py) counts only convolutions and matrix products as work. This script records every
such operator of one inference step (with its arguments, through a dispatch mode), re-runs each of them
alone on the same tensors and sums their best times: the time a step would take if everything else
(element-wise work, softmaxes, indexing, Python) cost nothing, and the FLOP/s that would give. If that rate
is below a target fraction of the peak, no change to the rest of the step can reach the target: only other
kernels (or other layer shapes) could. Also lists the operators that take the most of that time, with the
rate each reaches alone. The peak is measured in the same run as in model_speed.py.
Writes JSON to bench/results/kernel_bound.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

CASES = [("cater-small", 1, 1), ("cater-small", 1, 16), ("cater", 1, 1)]


def record_kernels(run) -> list[tuple]:
    """(op, args, kwargs, flops) of every FLOP-counted operator `run()` dispatches, arguments cloned."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_map
    from torch.utils.flop_counter import flop_registry

    calls = []

    def snapshot(value):
        return value.detach().clone() if isinstance(value, torch.Tensor) else value

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            count = flop_registry.get(func.overloadpacket)
            if count is not None:
                flops = count(*args, **kwargs, out_val=out)
                calls.append((func, tree_map(snapshot, args), tree_map(snapshot, kwargs), flops))
            return out

    with Recorder():
        run()
    return calls


def describe(func, args) -> str:
    import torch

    shapes = "x".join(str(list(a.shape)) for a in args if isinstance(a, torch.Tensor))
    extra = ""
    if func.overloadpacket is torch.ops.aten.convolution and len(args) > 8:
        stride, groups = args[3], args[8]
        extra = f" stride {list(stride)}" + (f" groups {groups}" if groups != 1 else "")
    return f"{func.overloadpacket.__name__} {shapes}{extra}"


def measure(config: str, level: int, batch: int, repeats: int) -> dict:
    import torch
    from model_speed import CONFIGS, _best_rate

    from loci_core.config import load_config
    from loci_core.model.loci import Loci

    cfg = load_config(CONFIGS[config])
    cfg.model.level = level
    torch.manual_seed(0)
    model = Loci(cfg.model).eval()
    h, w = model.resolution
    frames = torch.rand(4 + repeats, batch, 3, h, w)
    background = torch.rand(1, 3, h, w)
    with torch.no_grad():
        state = model.initial_state(batch)
        for t in range(3):
            _, state = model.step(frames[t], state, background)
        calls = record_kernels(lambda: model.step(frames[3], state, background))
    with torch.inference_mode():
        step_state = state
        step_seconds = float("inf")
        for t in range(repeats):  # the whole step, timed the same way (best single call)
            start = time.perf_counter()
            _, step_state = model.step(frames[4 + t], step_state, background)
            step_seconds = min(step_seconds, time.perf_counter() - start)
        cpu = torch.device("cpu")
        timed = [(describe(func, args), flops, 1 / _best_rate(partial(func, *args, **kwargs), 1.0, cpu, repeats))
                 for func, args, kwargs, flops in calls]  # best of `repeats` calls after 3 warm-ups
    per_kind = defaultdict(lambda: [0, 0.0, 0])  # description -> calls, seconds, flops
    for name, flops, seconds in timed:
        entry = per_kind[name]
        entry[0] += 1
        entry[1] += seconds
        entry[2] += flops
    top = sorted(per_kind.items(), key=lambda kv: -kv[1][1])[:8]
    flops = sum(f for _, f, _ in timed)
    kernel_seconds = sum(s for _, _, s in timed)
    return dict(config=config, level=level, batch=batch, kernels=len(timed), flops_per_frame=flops / batch,
                kernel_ms_per_frame=1000 * kernel_seconds / batch, step_ms_per_frame=1000 * step_seconds / batch,
                top=[dict(op=name, calls=n, ms=1000 * s, gflop_per_s=f / s / 1e9) for name, (n, s, f) in top])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few repetitions")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--target", type=float, default=0.4, help="fraction of peak to compare with")
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/kernel_bound.json")
    args = parser.parse_args(argv)

    import torch
    from model_speed import fp32_peak

    from loci_core.allocator import keep_freed_memory

    keep_freed_memory()  # as model_speed.py's measurements and the `loci` command run the model

    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 20
    peaks = fp32_peak(torch.device("cpu"))
    peak = peaks["peak"]
    rows = [measure(config, level, batch, repeats) for config, level, batch in CASES]

    print(f"\nKernel bound on the CPU ({torch.get_num_threads()} threads); measured fp32 peak "
          f"{peak / 1e9:.1f} GFLOP/s (matmul {peaks['matmul'] / 1e9:.1f}, 3x3 conv {peaks['conv3x3'] / 1e9:.1f})\n")
    print("| config | level | batch | counted kernels per step | GFLOP/frame | step ms/frame (best) "
          "| kernels alone ms/frame | kernels alone % of peak | step % of peak | "
          f"{100 * args.target:.0f} % of peak reachable |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        bound = r["flops_per_frame"] / (r["kernel_ms_per_frame"] / 1000) / peak
        actual = r["flops_per_frame"] / (r["step_ms_per_frame"] / 1000) / peak
        r.update(kernel_fraction_of_peak=bound, step_fraction_of_peak=actual)
        print(f"| {r['config']} | {r['level']} | {r['batch']} | {r['kernels']} | {r['flops_per_frame'] / 1e9:.2f} "
              f"| {r['step_ms_per_frame']:.1f} | {r['kernel_ms_per_frame']:.1f} | {100 * bound:.0f} "
              f"| {100 * actual:.0f} | {'yes' if bound >= args.target else 'no'} |")
    for r in rows:
        print(f"\n{r['config']} level {r['level']} batch {r['batch']}: the kernels that take the most time")
        for t in r["top"]:
            print(f"  {t['ms']:7.2f} ms  {t['gflop_per_s']:6.1f} GFLOP/s  {t['calls']} x {t['op']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(dict(threads=torch.get_num_threads(), peak_flops=peaks, rows=rows), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
