"""Updates per second of `loci train`'s update with 32-frame clips, whole videos, and whole videos mixed with
containment windows, alternating in one process (same config, data and thread count).

    python bench/train_sequences.py --data DATA [--config config/models/cater-small.yaml] [--updates 60]

One update is one frame of a batch (one optimiser step); the sequence regime changes only which frames a
batch holds and how often a fresh state starts, so the rates should agree.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from loci_core.config import load_config
from loci_core.training.run_dir import RunDir
from loci_core.training.trainer import Dist, Trainer

REGIMES = {"clips of 32": dict(clip_len=32, window_share=0.0),
           "whole videos": dict(clip_len=None, window_share=0.0),
           "whole videos + windows": dict(clip_len=None, window_share=0.25)}


def rate(config: Path, data: Path, regime: dict, updates: int, window_len: int) -> float:
    cfg = load_config(config, stage=1)
    cfg.train.clip_len, cfg.train.window_share = regime["clip_len"], regime["window_share"]
    cfg.train.window_len = window_len
    cfg.train.entity_pretraining_steps = 0
    with tempfile.TemporaryDirectory() as run:
        trainer = Trainer(cfg, data, RunDir(Path(run)), torch.device("cpu"), Dist(), split="all", progress=False)
        for _ in range(5):  # first batch loaded, allocator warm
            trainer.update()
        start = time.perf_counter()
        for _ in range(updates):
            trainer.update()
        return updates / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="CATER-format data set")
    p.add_argument("--config", type=Path, default=Path("config/models/cater-small.yaml"))
    p.add_argument("--updates", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--window-len", type=int, default=48)
    args = p.parse_args()
    rates = {name: [] for name in REGIMES}
    for _ in range(args.repeats):
        for name, regime in REGIMES.items():
            rates[name].append(rate(args.config, args.data, regime, args.updates, args.window_len))
    for name, values in rates.items():
        print(f"{name:24s} updates/s {' '.join(f'{v:.2f}' for v in values)}  (mean {np.mean(values):.2f})")


if __name__ == "__main__":
    main()
