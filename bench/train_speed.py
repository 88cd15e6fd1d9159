"""Speed and memory of Loci's training update, split into its parts, and `loci train`'s updates per second.

    .venv/bin/python bench/train_speed.py                           # this checkout: split + loci train
    .venv/bin/python bench/train_speed.py --compare ../other-checkout  # the same for both, alternating, 3 rounds
    .venv/bin/python bench/train_speed.py --quick                   # smoke run

Each measurement runs in a fresh process (its peak RSS is its own), with the loci_core of the checkout named by
`--code` / `--compare` (the interpreter is this one), one process at a time, alternating between the checkouts.

`split`: one update as `loci train` makes it (model.step with the config's training options, the losses,
backward, the optimisers of loci_core.optim), on random frames with untrained weights, stage 1 of the config at
level 1 and `--batch` (default 8), after the entity pre-training (all optimisers step). Reported: ms per update
and its parts: forward (step + losses), backward, optimiser step, and within forward and backward the time spent
in GateL0RD's eligibility cell (gates and trace update; backward: the trace products), timed around that
autograd function. Memory: peak RSS, RSS before the first update (interpreter, torch, model), and the bytes of
the weights, the optimiser states, the eligibility traces of the state, and the activations saved for backward
(unique storages, traces and weights not counted again).

`loci train`: `loci train --config config/models/cater-small.yaml` (stage 1: batch 4, whole videos and
containment windows) on 8 generated videos of 120 frames (80x60), data loading included; updates per second is
the median of the rates `loci train` logs every 50 updates, after the first.

Prints a Markdown table (and, with --compare, the ratios between the checkouts by round) and writes JSON to
bench/results/train_speed.json (or --json).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("cater-small", "cater")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _timed(cls, name: str, totals: dict) -> None:
    """Wrap cls.name (a staticmethod of an autograd function) to add its wall time to totals[name]."""
    inner = getattr(cls, name)

    def wrapper(*args):
        start = time.perf_counter()
        try:
            return inner(*args)
        finally:
            totals[name] += time.perf_counter() - start

    setattr(cls, name, staticmethod(wrapper))


def _from_either(module: str, old_module: str, name: str | None = None):
    """`module` (or `name` from it) in this layout, or `old_module` in a checkout from before
    loci_core was regrouped into packages. Imported by name so that the import sorter does not
    judge the old paths by the files of this checkout."""
    try:
        found = importlib.import_module(module)
    except ImportError:
        found = importlib.import_module(old_module)
    return found if name is None else getattr(found, name)


def split(code: Path, config: str, batch: int, level: int, updates: int) -> dict:
    """One `split` measurement (inside a worker process whose sys.path starts with `code`)."""
    import torch

    from loci_core.allocator import keep_freed_memory
    from loci_core.config import load_config

    Loci = _from_either("loci_core.model.loci", "loci_core.model", "Loci")
    gatel0rd = _from_either("loci_core.model.nn.gatel0rd", "loci_core.nn.gatel0rd")
    ramps_at = _from_either("loci_core.model.schedules", "loci_core.schedules", "ramps_at")
    loci_loss = _from_either("loci_core.training.losses", "loci_core.losses", "loci_loss")
    LociOptimisers = _from_either("loci_core.training.optim", "loci_core.optim", "LociOptimisers")

    keep_freed_memory()
    device = torch.device("cpu")
    cfg = load_config(code / f"config/models/{config}.yaml", stage=1)
    cfg.model.level = level
    torch.manual_seed(0)
    model = Loci(cfg.model).train()
    optimisers = LociOptimisers(model, cfg.train)
    options = {}
    if "consume_state" in inspect.signature(model.step).parameters:  # the training options of this checkout
        training_dtype = _from_either("loci_core.model.precision", "loci_core.precision", "training_dtype")
        options = dict(precision=training_dtype(cfg.train.precision, device), consume_state=True)
    h, w = model.resolution
    generator = torch.Generator().manual_seed(0)
    frames = torch.rand(updates + 4, batch, 3, h, w, generator=generator)
    background = torch.rand(1, 3, h, w, generator=generator)
    snitch = torch.rand(batch, 2, generator=generator) * 2 - 1
    step = cfg.train.entity_pretraining_steps + 1  # every optimiser steps
    cell_time = {"forward": 0.0, "backward": 0.0}
    _timed(gatel0rd._EligibilityGateL0RD, "forward", cell_time)
    _timed(gatel0rd._EligibilityGateL0RD, "backward", cell_time)
    saved: dict[int, int] = {}

    def remember(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    def update(t, state, record=False):
        ramps = ramps_at(step, cfg.train)
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(remember, lambda t: t) if record else _nothing():
            out, state = model.step(frames[t], state, background, ramps, generator, **options)
            terms = loci_loss(out, frames[t + 1], background, cfg.train, ramps.background, cfg.model.colour_bias,
                              snitch_target=snitch)
        t1 = time.perf_counter()
        terms.total.backward()
        t2 = time.perf_counter()
        optimisers.step(first_call=False, global_step=step)
        return state, (t1 - t0, t2 - t1, time.perf_counter() - t2)

    rss_start = _rss_mb()
    state = model.initial_state(batch, device)
    for t in range(2):  # a sequence's first calls (decode of the initial masks, traces made)
        state, _ = update(t, state)
    state, _ = update(2, state, record=True)
    parts, cell_time["forward"], cell_time["backward"] = [], 0.0, 0.0
    for t in range(updates):
        state, times = update(t + 3, state)
        parts.append(times)
    forward, backward, optimiser = (1000 * statistics.mean(p[i] for p in parts) for i in range(3))

    def nbytes(tensors):
        return sum(t.numel() * t.element_size() for t in tensors)

    params = list(model.parameters())
    traces = [t for pair in state.traces if pair is not None for t in pair]
    exclude = {t.untyped_storage().data_ptr() for t in params + traces}
    optimiser_tensors = [v for o in (optimisers.slot_init, optimisers.main, optimisers.background)
                         for s in o.state.values() for v in s.values() if torch.is_tensor(v)]
    return dict(config=config, level=level, batch=batch, resolution=f"{w}x{h}", options=str(options),
                ms_per_update=forward + backward + optimiser, forward_ms=forward, backward_ms=backward,
                optimiser_ms=optimiser, cell_forward_ms=1000 * cell_time["forward"] / updates,
                cell_backward_ms=1000 * cell_time["backward"] / updates,
                peak_rss_mb=_rss_mb(), rss_before_mb=rss_start,
                weights_mb=nbytes(params) / 2 ** 20, optimiser_mb=nbytes(optimiser_tensors) / 2 ** 20,
                traces_mb=nbytes(traces) / 2 ** 20,
                activations_mb=sum(n for p, n in saved.items() if p not in exclude) / 2 ** 20)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def loci_train(code: Path, data: Path, updates: int) -> dict:
    """`loci train` of `code` on `data` (a subprocess); the median of its logged rates after the first."""
    with tempfile.TemporaryDirectory() as run:
        env = {**os.environ, "PYTHONPATH": str(code)}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "loci_core.cli", "train", "--config",
                        str(code / "config/models/cater-small.yaml"), "--data", str(data), "--out", run,
                        "--updates", str(updates), "--split", "all", "--no-progress"],
                       cwd=code, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - start
        with open(Path(run) / "metrics.csv") as f:
            rates = [float(row["train/updates_per_s"]) for row in csv.DictReader(f)]
    return dict(updates_per_s=statistics.median(rates[1:]), rates=rates, wall_s=wall)


def _worker(spec: dict) -> dict:
    code = Path(spec["code"])
    sys.path.insert(0, str(code))
    import loci_core

    if Path(loci_core.__file__).resolve().parents[1] != code.resolve():
        raise RuntimeError(f"loci_core imported from {loci_core.__file__}, not from {code}")
    if spec["kind"] == "split":
        return split(code, spec["config"], spec["batch"], spec["level"], spec["updates"])
    return loci_train(code, Path(spec["data"]), spec["updates"])


def _run(spec: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": str(spec["threads"])})
    if done.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "code": spec["code"]}


def _generate(out: Path) -> None:
    subprocess.run([sys.executable, "-m", "loci_core.cli", "generate", "--out", str(out), "--videos", "8",
                    "--frames", "120", "--size", "80x60", "--seed", "0"], cwd=REPO, check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--code", type=Path, default=REPO, help="checkout whose loci_core is measured")
    p.add_argument("--compare", type=Path, help="a second checkout, measured alternately with --code")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--level", type=int, default=1)
    p.add_argument("--updates", type=int, default=5, help="timed updates per split measurement")
    p.add_argument("--train-updates", type=int, default=250, help="updates of each loci train run")
    p.add_argument("--repeats", type=int, default=None, help="rounds (default 3 with --compare, else 1)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--no-train", action="store_true", help="skip the loci train runs")
    p.add_argument("--no-split", action="store_true", help="skip the split measurements")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 updates, 110 loci train updates")
    p.add_argument("--json", type=Path, default=REPO / "bench/results/train_speed.json", help="where to write results")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0
    if args.quick:
        args.updates, args.train_updates = 2, 110
    codes = [args.code.resolve()] + ([args.compare.resolve()] if args.compare else [])
    repeats = args.repeats or (3 if args.compare else 1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        if not args.no_train:
            _generate(data)
        for _ in range(repeats):
            for config in [] if args.no_split else args.configs:
                for code in codes:
                    results.append(_run(dict(kind="split", code=str(code), config=config, batch=args.batch,
                                             level=args.level, updates=args.updates, threads=args.threads)))
            if not args.no_train:
                for code in codes:
                    results.append(_run(dict(kind="train", code=str(code), data=str(data),
                                             updates=args.train_updates, threads=args.threads)))
    _report(results, codes)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    return 0


def _report(results: list[dict], codes: list[Path]) -> None:
    def of(code, **match):
        return [r for r in results if r["code"] == str(code) and all(r.get(k) == v for k, v in match.items())]

    print("| checkout | config | B | ms/update | forward | (cell) | backward | (cell) | optimiser | peak RSS MB "
          "| RSS before | weights | optimiser state | traces | activations |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    configs = dict.fromkeys(r["config"] for r in results if "config" in r)
    for config in configs:
        for code in codes:
            rows = of(code, config=config)
            if not rows:
                continue

            def med(key, rows=rows):
                return statistics.median(r[key] for r in rows)

            print(f"| {code.name} | {config} | {rows[0]['batch']} | {med('ms_per_update'):.0f} "
                  f"| {med('forward_ms'):.0f} | {med('cell_forward_ms'):.0f} | {med('backward_ms'):.0f} "
                  f"| {med('cell_backward_ms'):.0f} | {med('optimiser_ms'):.0f} | {med('peak_rss_mb'):.0f} "
                  f"| {med('rss_before_mb'):.0f} | {med('weights_mb'):.1f} | {med('optimiser_mb'):.1f} "
                  f"| {med('traces_mb'):.0f} | {med('activations_mb'):.0f} |")
    for code in codes:
        trains = [r for r in of(code) if "updates_per_s" in r]
        if trains:
            print(f"loci train (cater-small, stage 1) {code.name}: updates/s "
                  + " ".join(f"{r['updates_per_s']:.2f}" for r in trains))
    if len(codes) == 2:
        new, base = codes
        for config in configs:
            a, b = of(new, config=config), of(base, config=config)
            ratios = [y["ms_per_update"] / x["ms_per_update"] for x, y in zip(a, b)]
            print(f"{config}: {base.name} / {new.name} time per update, by round: "
                  + " ".join(f"{r:.2f}" for r in ratios))
        a = [r for r in of(new) if "updates_per_s" in r]
        b = [r for r in of(base) if "updates_per_s" in r]
        if a and b:
            print("loci train updates/s, " + f"{new.name} / {base.name} by round: "
                  + " ".join(f"{x['updates_per_s'] / y['updates_per_s']:.2f}" for x, y in zip(a, b)))


if __name__ == "__main__":
    sys.exit(main())
