"""Speed of the Loci model: inference per frame, training per update, FLOPs, fraction of peak, memory.

    .venv/bin/python bench/model_speed.py              # default run (a few minutes on 2 CPU cores)
    .venv/bin/python bench/model_speed.py --full       # also the paper config's training at level 2
    .venv/bin/python bench/model_speed.py --quick      # smoke run: few repetitions

Each measurement runs in a fresh subprocess so its peak memory (max RSS on the CPU, max allocated on
CUDA) is its own. Inference runs at batch 1 (one stream, as the tracker node runs it) and at batch 16 (as
`loci eval` runs it), in inference mode, in 10 blocks of 10 steps (5 of 3 at B=16); both report ms per frame
as the median block (and frames/s from it). Both again with `Loci.compile_inference` (TorchInductor; the time
its first steps took, compiling included, is reported; `--no-compile` skips these runs). FLOPs per frame are
counted with torch.utils.flop_counter (convolutions and matrix products; element-wise work is not counted),
and the achieved FLOP/s of the best block is compared with this machine's fp32 peak (the better of a large
matmul and a large 3x3 convolution), probed again right before each block and taken as the best of those
probes: like with like, on VMs whose speed changes from second to second (a peak measured once, minutes
away from the blocks, can come from a faster or a slower minute). The peak measured at the start of the
run is printed and stored too. Workers keep freed memory for reuse (`loci_core.allocator`), as the `loci`
command and the node run the model.
Prints a Markdown table and writes JSON to bench/results/model_speed.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from loci_core.allocator import keep_freed_memory  # noqa: E402 (after the path set-up)

CONFIGS = {"cater-small": REPO / "config/models/cater-small.yaml", "cater": REPO / "config/models/cater.yaml"}


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _best_rate(run, flops: float, device, repeats: int) -> float:
    for _ in range(3):
        run()
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        run()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return flops / best


def fp32_peak(device, repeats: int = 10) -> dict[str, float]:
    """Best observed fp32 FLOP/s of a large matmul and of a large 3x3 convolution, and the larger of the
    two as the machine's peak. Both count: on some CPUs the BLAS behind matmul reaches only half of
    what the convolution library reaches, and a 'peak' below what the model achieves would be no peak."""
    import torch

    a, b = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
    matmul = _best_rate(lambda: a @ b, 2 * 2048 ** 3, device, repeats)
    x, w = torch.randn(8, 64, 60, 80, device=device), torch.randn(64, 64, 3, 3, device=device)
    conv = _best_rate(lambda: torch.conv2d(x, w, padding=1), 2 * 8 * 64 * 64 * 9 * 60 * 80, device, repeats)
    return {"matmul": matmul, "conv3x3": conv, "peak": max(matmul, conv)}


def _peak_memory_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def measure(config: str, level: int, kind: str, batch: int, repeats: int, blocks: int, device_name: str) -> dict:
    """One measurement (run inside a worker process)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from loci_core.config import load_config
    from loci_core.model.loci import Loci
    from loci_core.model.schedules import Ramps
    from loci_core.training.losses import loci_loss

    device = torch.device(device_name)
    cfg = load_config(CONFIGS[config])
    cfg.model.level = level
    torch.manual_seed(0)
    model = Loci(cfg.model).to(device)
    h, w = model.resolution
    frames = torch.rand(repeats + 4, batch, 3, h, w, device=device)
    background = torch.rand(1, 3, h, w, device=device)
    result = dict(config=config, level=level, kind=kind, batch=batch, resolution=f"{w}x{h}",
                  params=sum(p.numel() for p in model.parameters()))

    if kind in ("infer", "infer-compiled"):
        model.eval()
        with torch.no_grad():  # the FLOP counter's module hooks do not run under inference mode
            state = model.initial_state(batch, device)
            for t in range(3):  # warm-up (the first call also decodes the initial masks)
                _, state = model.step(frames[t], state, background)
            with FlopCounterMode(display=False) as counter:
                model.step(frames[3], state, background)
            flops = counter.get_total_flops() / batch
        compile_seconds = None
        if kind == "infer-compiled":
            model.compile_inference()
        with torch.inference_mode():  # timed as the tracker and `loci eval` run it
            state = model.initial_state(batch, device)
            start = time.perf_counter()
            for t in range(3):  # with compile_inference, the first step also compiles
                _, state = model.step(frames[t], state, background)
            if kind == "infer-compiled":
                compile_seconds = time.perf_counter() - start
            block_seconds, local_peak = [], 0.0
            for _ in range(blocks):
                # this VM's speed changes from second to second: the peak is probed again next to each block
                local_peak = max(local_peak, fp32_peak(device, repeats=2)["peak"])
                _, state = model.step(frames[3], state, background)  # caches warm again after the probe
                _sync(device)
                start = time.perf_counter()
                for t in range(repeats):
                    _, state = model.step(frames[t + 3], state, background)
                _sync(device)
                block_seconds.append((time.perf_counter() - start) / repeats / batch)
        typical, best = statistics.median(block_seconds), min(block_seconds)
        result.update(ms_per_frame=1000 * typical, best_ms_per_frame=1000 * best, frames_per_s=1 / typical,
                      flops_per_frame=flops, flops_per_s=flops / best, compile_seconds=compile_seconds,
                      local_peak_flops=local_peak)
    else:
        model.train()
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
        state = model.initial_state(batch, device)
        generator = torch.Generator(device).manual_seed(0)

        def update(t, state):
            out, state = model.step(frames[t], state, background, Ramps.full(), generator)
            losses = loci_loss(out, frames[t + 1], background, cfg.train, 1.0, cfg.model.colour_bias,
                               snitch_target=torch.zeros(batch, 2, device=device))
            optimiser.zero_grad(set_to_none=True)
            losses.total.backward()
            optimiser.step()
            return state

        for t in range(2):
            state = update(t, state)
        _sync(device)
        start = time.perf_counter()
        for t in range(repeats):
            state = update(t + 2, state)
        _sync(device)
        result.update(ms_per_update=1000 * (time.perf_counter() - start) / repeats)
    result["peak_memory_mb"] = _peak_memory_mb(device)
    return result


def _plan(args) -> list[tuple]:
    plan = []
    for config in args.configs:
        levels = (1,) if config == "cater-small" else (1, 2)
        for level in levels:
            plan.append((config, level, "infer", 1))  # tracking one stream (the node)
            plan.append((config, level, "infer", 16))  # batched, as `loci eval` runs
            if not args.no_compile:
                plan.append((config, level, "infer-compiled", 1))  # Loci.compile_inference
                plan.append((config, level, "infer-compiled", 16))
            for batch in (8, 16):
                heavy = config == "cater" and (level == 2 or batch == 16)
                if args.full or not heavy:
                    plan.append((config, level, "train", batch))
    return plan


def _percent_of_peak(row) -> float:
    return 100 * row["flops_per_s"] / row["local_peak_flops"]


def _fmt(value, spec):
    return format(value, spec) if value is not None else "–"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--full", action="store_true", help="also the slow paper-config training runs")
    parser.add_argument("--quick", action="store_true", help="smoke run: few repetitions")
    parser.add_argument("--no-compile", action="store_true", help="skip the compile_inference runs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/model_speed.json")
    parser.add_argument("--worker", nargs=4, metavar=("CONFIG", "LEVEL", "KIND", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        keep_freed_memory()  # as the `loci` command and the tracker node run the model
        config, level, kind, batch = args.worker
        # steps per inference block: 10 at B=1, 3 at B=16 (48 frames; a level-2 step takes seconds on a CPU)
        infer_steps = 10 if int(batch) == 1 else 3
        repeats = (3 if args.quick else infer_steps) if kind.startswith("infer") else (2 if args.quick else 5)
        blocks = 2 if args.quick else (10 if int(batch) == 1 else 5)
        print(json.dumps(measure(config, int(level), kind, int(batch), repeats, blocks, args.device)))
        return 0

    device = torch.device(args.device)
    peaks = fp32_peak(device)
    peak = peaks["peak"]
    rows = []
    for config, level, kind, batch in _plan(args):
        command = [sys.executable, __file__, "--worker", config, str(level), kind, str(batch),
                   "--device", args.device] + (["--quick"] if args.quick else []) \
            + (["--threads", str(args.threads)] if args.threads else [])
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            print(f"{config} level {level} {kind} batch {batch} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  measured {config} level {level} {kind} batch {batch}", file=sys.stderr)

    print(f"\nLoci model speed on {args.device} ({torch.get_num_threads()} threads); "
          f"fp32 peak at the start of the run {peak / 1e9:.1f} GFLOP/s (matmul {peaks['matmul'] / 1e9:.1f}, "
          f"3x3 conv {peaks['conv3x3'] / 1e9:.1f})\n")
    print("| config | level | frame | params | inference ms/frame (B=1), median / best block | frames/s "
          "| GFLOP/frame | GFLOP/s (best) | % of peak (best) | B=16: ms/frame, % of peak "
          "| compiled B=1: ms/frame (median / best), % of peak | compiled B=16: ms/frame, % of peak | compile s "
          "| train ms/update B=8 | train ms/update B=16 | peak memory MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for config, level in dict.fromkeys((r["config"], r["level"]) for r in rows):
        runs = {(r["kind"], r["batch"]): r for r in rows if (r["config"], r["level"]) == (config, level)}
        infer, batched = runs.get(("infer", 1)), runs.get(("infer", 16))
        fast, fast_batched = runs.get(("infer-compiled", 1)), runs.get(("infer-compiled", 16))
        train = {batch: r for (kind, batch), r in runs.items() if kind == "train"}
        memory = "/".join(f"{r['peak_memory_mb']:.0f}" for r in [infer, batched, *train.values()] if r)
        print(f"| {config} | {level} | {(infer or next(iter(train.values())))['resolution']} "
              f"| {(infer or next(iter(train.values())))['params'] / 1e6:.2f} M "
              f"| {_fmt(infer and infer['ms_per_frame'], '.1f')} / {_fmt(infer and infer['best_ms_per_frame'], '.1f')} "
              f"| {_fmt(infer and infer['frames_per_s'], '.1f')} "
              f"| {_fmt(infer and infer['flops_per_frame'] / 1e9, '.2f')} "
              f"| {_fmt(infer and infer['flops_per_s'] / 1e9, '.1f')} "
              f"| {_fmt(infer and _percent_of_peak(infer), '.0f')} "
              f"| {_fmt(batched and batched['ms_per_frame'], '.1f')}, "
              f"{_fmt(batched and _percent_of_peak(batched), '.0f')} "
              f"| {_fmt(fast and fast['ms_per_frame'], '.1f')} / {_fmt(fast and fast['best_ms_per_frame'], '.1f')}, "
              f"{_fmt(fast and _percent_of_peak(fast), '.0f')} "
              f"| {_fmt(fast_batched and fast_batched['ms_per_frame'], '.1f')}, "
              f"{_fmt(fast_batched and _percent_of_peak(fast_batched), '.0f')} "
              f"| {_fmt(fast and fast['compile_seconds'], '.0f')} "
              f"| {_fmt(train.get(8, {}).get('ms_per_update'), '.0f')} "
              f"| {_fmt(train.get(16, {}).get('ms_per_update'), '.0f')} | {memory} |")
    print("\n% of peak: the best block against the best fp32 peak probed right before each of its blocks ("
          + ", ".join(f"{r['config']} L{r['level']} {r['kind']} B={r['batch']}: {r['local_peak_flops'] / 1e9:.0f}"
                      for r in rows if "local_peak_flops" in r) + " GFLOP/s)")
    print("peak memory: inference B=1 / B=16 / train B=8 / train B=16 "
          "(max RSS of each measurement's process on the CPU)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(dict(device=args.device, threads=torch.get_num_threads(),
                                         peak_flops=peaks, rows=rows), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
