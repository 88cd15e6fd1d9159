"""What zeroing the far tails of the Gaussian position maps buys: the same model, side by side in one run.

    .venv/bin/python bench/subnormal_tails.py [--checkpoint models/loci-cater-small.pt] [--frames 80]
        [--repeats 3] [--threads 1] [--json bench/results/subnormal_tails.json]

The tails of exp(-d^2 / 2 sigma^2) underflow into subnormal floats far from a slot, and x86 CPUs compute
with subnormal operands many times slower than with normal ones. `loci_core.model.nn.gaussian` sets factors
below TAIL to exactly 0; here TAIL = 0 restores the plain tails. For both settings, alternating `--repeats`
times so machine load hits both alike, on one generated CATER-style video at the model's resolution:
  inference  OnlineTracker.step, median ms per frame (after 10 frames of warm-up);
  training   one optimiser update on a batch of 4 (the video at 4 offsets), median s per update;
  subnormal  the share of the first decoder convolution's inputs that are subnormal during inference.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from loci_core.data.dataset import CaterVideos
from loci_core.data.generate import GenerateOptions, generate_dataset
from loci_core.model.checkpoint import load_model
from loci_core.model.nn import gaussian
from loci_core.model.schedules import Ramps
from loci_core.tracking.tracker import OnlineTracker
from loci_core.training.losses import loci_loss

REPO = Path(__file__).resolve().parents[1]

WARMUP_FRAMES = 10
TRAIN_BATCH = 4
TRAIN_UPDATES = 12


def one_video(size: tuple[int, int], frames: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="loci-subnormal-"))
    generate_dataset(root, 1, seed=5, opts=GenerateOptions(size=size, frames=frames), progress=False)
    return CaterVideos(root, split="all", size=size, clip_len=None)[0]


def inference_ms(checkpoint: Path, frames: np.ndarray) -> tuple[float, float]:
    """Median ms per OnlineTracker step, and the share of subnormal inputs of the first decoder conv."""
    tracker = OnlineTracker.from_checkpoint(checkpoint)
    tiny = torch.finfo(torch.float32).tiny
    seen = {"subnormal": 0, "all": 0}

    def count(_module, inputs, _output):
        x = inputs[0]
        seen["subnormal"] += int(((x != 0) & (x.abs() < tiny)).sum())
        seen["all"] += x.numel()

    first_conv = next(m for m in tracker.model.decoder.modules() if isinstance(m, torch.nn.Conv2d))
    times = []
    for i, frame in enumerate(frames):
        hook = first_conv.register_forward_hook(count) if i == WARMUP_FRAMES else None
        start = time.perf_counter()
        tracker.step(np.ascontiguousarray(frame))
        if i > WARMUP_FRAMES:  # the counting frame is not timed
            times.append(time.perf_counter() - start)
        if hook is not None:
            hook.remove()
    return 1000 * float(np.median(times)), seen["subnormal"] / max(seen["all"], 1)


def training_s(checkpoint: Path, video: torch.Tensor, background: torch.Tensor) -> float:
    model, cfg, _ = load_model(checkpoint, device="cpu")
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-6)
    offsets = np.linspace(0, video.shape[0] - TRAIN_UPDATES - 2, TRAIN_BATCH).astype(int)
    clips = torch.stack([video[o:o + TRAIN_UPDATES + 2] for o in offsets]).float() / 255  # (B, T, 3, H, W)
    bg = background.expand(TRAIN_BATCH, -1, -1, -1)
    state = model.initial_state(TRAIN_BATCH)
    times = []
    for t in range(TRAIN_UPDATES + 1):
        start = time.perf_counter()
        out, state = model.step(clips[:, t], state, bg, Ramps.full())
        terms = loci_loss(out, clips[:, t + 1], bg, cfg.train, 1.0, cfg.model.colour_bias, regularize=t > 0)
        optimiser.zero_grad()
        terms.total.backward()
        optimiser.step()
        if t > 0:  # the first update allocates
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=REPO / "models" / "loci-cater-small.pt")
    p.add_argument("--frames", type=int, default=80)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model, _, _ = load_model(args.checkpoint, device="cpu")
    item = one_video(model.resolution, args.frames)
    frames = item["frames"].numpy().transpose(0, 2, 3, 1)
    settings = {"tails zeroed": gaussian.TAIL, "tails kept": 0.0}
    runs = {name: {"inference_ms": [], "train_s": [], "subnormal_share": []} for name in settings}
    for _ in range(args.repeats):
        for name, tail in settings.items():
            gaussian.TAIL = tail
            ms, share = inference_ms(args.checkpoint, frames)
            runs[name]["inference_ms"].append(ms)
            runs[name]["subnormal_share"].append(share)
            runs[name]["train_s"].append(training_s(args.checkpoint, item["frames"], item["background"][None]))
    gaussian.TAIL = settings["tails zeroed"]

    summary = {name: {k: float(np.median(v)) for k, v in r.items()} for name, r in runs.items()}
    zeroed, kept = summary["tails zeroed"], summary["tails kept"]
    print(f"checkpoint {args.checkpoint}, {model.resolution[1]}x{model.resolution[0]}, torch threads "
          f"{args.threads}, {args.repeats} repeats (medians)")
    print(f"{'':>14} {'inference ms':>13} {'train s/update':>15} {'subnormal inputs':>17}")
    for name, r in summary.items():
        print(f"{name:>14} {r['inference_ms']:13.2f} {r['train_s']:15.3f} {100 * r['subnormal_share']:16.2f}%")
    print(f"speed-up: inference {kept['inference_ms'] / zeroed['inference_ms']:.2f}x, "
          f"training {kept['train_s'] / zeroed['train_s']:.2f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"checkpoint": str(args.checkpoint), "threads": args.threads,
                                         "repeats": args.repeats, "runs": runs, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
