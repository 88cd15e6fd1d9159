"""Training: the loop behind `loci train` (its command line is training/command.py).

The paper's loop (docs/model.md, Training): for each batch of clips, a fresh model state, then
`warmup_calls` calls on the first frame (target = that frame, regularisers off), then one call
per frame (target = the next frame). Every call is one optimiser update (optim.py says which
optimiser steps when), so `updates` count frames. The schedules (size ramp, background fade-in)
are functions of the global update count, which checkpoints carry across stages.

Resumption is exact: a checkpoint holds, besides the weights and optimiser states, where the run
is in the data (epoch, batch, call within the sequence), the model state of the sequence in
progress and every random generator, so `--resume` continues with bit-identical parameters.

Several processes (`torchrun --nproc_per_node N -m loci_core.cli train ...`): each process trains on
its own share of every epoch (DistributedSampler) with `train.batch_size` clips; after each
backward pass the gradients are averaged over the processes with one all-reduce, so all
processes take identical optimiser steps. Only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..config import LociConfig
from ..device import resolve_device
from ..model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..model.loci import Loci
from ..model.precision import training_dtype
from ..model.schedules import lr_factor, ramps_at
from ..model.state import LociState
from .losses import loci_loss
from .optim import LociOptimisers
from .run_dir import RunDir

# Exit codes besides 0 (done): bad input, a non-finite loss, stopped by a signal (128 + SIGINT).
EXIT_ERROR, EXIT_NONFINITE, EXIT_INTERRUPTED = 2, 1, 130


class TrainError(RuntimeError):
    """A training run that cannot start or go on; the message says why."""


# --------------------------------------------------------------------------------------------
# Processes and devices


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), resolve_device(device_name)
    d = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_name, d.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return d, device


def _all_reduce_gradients(model: torch.nn.Module, world: int, device: torch.device) -> None:
    """Average the gradients over all processes in one flat all-reduce.

    A parameter that got a gradient in any process gets the average (zeros stand in for processes
    where it got none); one that got none anywhere keeps None, so the optimisers skip it exactly
    as in a single process.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    used = [p for p, h in zip(params, has.tolist()) if h > 0]
    if not used:
        return
    for p in used:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in used])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in used:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


# --------------------------------------------------------------------------------------------
# Random state and the sequence state as plain checkpoint data (checkpoints load weights-only)


def _rng_state(generator: torch.Generator) -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "generator": generator.get_state(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                       *map(float, np_state[2:])],
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), cached))
    random.setstate(_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value):
    """random.setstate needs tuples where a serialiser may hand back lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _state_to_data(state: LociState | None):
    if state is None:
        return None
    cpu = state.to("cpu")
    return {f.name: getattr(cpu, f.name) for f in dataclasses.fields(cpu)}


def _state_from_data(data, device) -> LociState | None:
    if data is None:
        return None
    data = dict(data)
    data["traces"] = [None if t is None else tuple(t) for t in data["traces"]]
    return LociState(**data).to(device)


# --------------------------------------------------------------------------------------------
# Data


def _collate(items: list[dict]) -> dict:
    """Only what training needs: frames (B, T, 3, H, W) uint8, background (B, 3, H, W), and where the data
    has one (footage has no ground truth) the snitch (B, T, 2) with snitch_known (B, T) bool (the snitch was
    seen in the sequence by then)."""
    keys = ["frames", "background"] + [k for k in ("snitch_screen", "snitch_known") if all(k in it for it in items)]
    return {k: torch.stack([it[k] for it in items]) for k in keys}


# --------------------------------------------------------------------------------------------
# The trainer


@dataclass
class Position:
    """Where the run is: the next call to make is `call` of batch `batch` of epoch `epoch`."""
    epoch: int = 0
    batch: int = 0
    call: int = 0


class Trainer:
    def __init__(self, cfg: LociConfig, data_root: Path, run: RunDir, device: torch.device, ddp: Dist,
                 split: str = "train", progress: bool = True, data_options: dict | None = None):
        from ..data.sources import open_video_data

        self.cfg, self.run, self.device, self.dist = cfg, run, device, ddp
        self.data_root, self.split, self.progress = Path(data_root), split, progress
        tc = cfg.train
        if cfg.model.predictor.exact_bptt:
            raise TrainError("model.predictor.exact_bptt is for checking the eligibility traces only; "
                             "train with exact_bptt: false")
        torch.manual_seed(tc.seed)  # the same initial weights in every process (and every run)
        self.model = Loci(cfg.model).to(device).train()
        self.optimisers = LociOptimisers(self.model, tc)
        self.precision = training_dtype(tc.precision, device)
        self.data_options = dict(data_options or {})  # --topic, --background, ... (footage_arguments)
        self.dataset = open_video_data(self.data_root, split=split, size=self.model.resolution,
                                       clip_len=tc.clip_len, seed=tc.seed, min_frames=tc.clip_len or 2,
                                       **self.data_options)
        lengths = {s.num_frames for s in getattr(self.dataset, "sequences", [])}
        if tc.clip_len is None and tc.batch_size > 1 and len(lengths) > 1:
            raise TrainError(f"{self.data_root}: sequences of {min(lengths)} to {max(lengths)} frames do not "
                             "stack into whole-video batches; set train.clip_len or train.batch_size 1")
        # windows start shortly before the snitch goes under a cone (random ones in footage, which has none)
        self.windows = open_video_data(self.data_root, split=split, size=self.model.resolution,
                                       clip_len=tc.window_len, clip_start="containment", seed=tc.seed,
                                       lead=tc.window_lead, min_frames=tc.window_len, **self.data_options) \
            if tc.window_share > 0 else None
        per_epoch = len(self.dataset) // (tc.batch_size * ddp.world)
        if per_epoch == 0:
            raise TrainError(f"{self.data_root}: the {split} split has {len(self.dataset)} videos, "
                             f"fewer than batch_size {tc.batch_size} x {ddp.world} process(es)")
        self.background = torch.from_numpy(self.dataset.nominal_background().transpose(2, 0, 1)
                                           .astype(np.float32) / 255.0)
        self.generator = torch.Generator(device).manual_seed(tc.seed + ddp.rank)
        torch.manual_seed(tc.seed + ddp.rank)
        np.random.seed(tc.seed + ddp.rank)
        random.seed(tc.seed + ddp.rank)
        self.global_step = 0
        self.stage_start = 0
        self.pos = Position()
        self.state: LociState | None = None
        self.log_sums: dict[str, float] = {}
        self.log_count = 0
        self.stop_signal: int | None = None
        self.deadline: float | None = None  # time.monotonic() at which a time-boxed run checkpoints and ends
        self._batch: dict | None = None
        self._batch_key: tuple[int, int] | None = None

    # ---------------------------------------------------------------- starting points

    def init_from(self, path: Path) -> None:
        """Weights (and the global step, so the schedules go on) of an earlier stage; fresh optimisers."""
        ckpt = load_checkpoint(path)
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise CheckpointError(f"{path}: its weights do not fit this config: {err}") from None
        self.global_step = self.stage_start = int(ckpt["global_step"])

    def resume_from(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        ts = ckpt.get("train_state")
        if ts is None:
            raise CheckpointError(f"{path}: not a training checkpoint (no train_state); use --init")
        ranks = ckpt["ranks"]
        if len(ranks) != self.dist.world:
            raise TrainError(f"{path} was written by {len(ranks)} process(es); resume it with the same "
                             f"number (now {self.dist.world})")
        self.model.load_state_dict(ckpt["model"])
        self.optimisers.load_state_dict(ckpt["optimisers"])
        self.global_step, self.stage_start = int(ckpt["global_step"]), int(ts["stage_start"])
        self.pos = Position(int(ts["epoch"]), int(ts["batch"]), int(ts["call"]))
        self.log_sums, self.log_count = dict(ts["log_sums"]), int(ts["log_count"])
        mine = ranks[self.dist.rank]
        self.state = _state_from_data(mine["sequence"], self.device)
        _set_rng_state(mine["rng"], self.generator)
        if self.dist.main:  # logs written after this checkpoint by the run's earlier life go
            self.run.truncate_logs(self.global_step)
            self.run.tensorboard(self.global_step)

    # ---------------------------------------------------------------- data

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(self.dataset, num_replicas=self.dist.world, rank=self.dist.rank,
                                     shuffle=True, seed=self.cfg.train.seed, drop_last=True)
        sampler.set_epoch(epoch)
        order = list(sampler)
        b = self.cfg.train.batch_size
        return [order[i:i + b] for i in range(0, len(order) - b + 1, b)]

    def is_window_batch(self, epoch: int, batch: int) -> bool:
        """Whether a batch holds containment windows instead of clip_len sequences: a draw of its own per
        (seed, epoch, batch), so a resumed run makes the same choices."""
        share = self.cfg.train.window_share
        draw = np.random.default_rng(np.random.SeedSequence([self.cfg.train.seed, epoch, batch, 1])).random()
        return self.windows is not None and draw < share

    def _load_batch(self) -> dict:
        """The batch at the current position (kept while its sequence runs): B sequences of equal length,
        stepped in lockstep with one state each."""
        key = (self.pos.epoch, self.pos.batch)
        if self._batch_key != key:
            source = self.windows if self.is_window_batch(*key) else self.dataset
            source.set_epoch(self.pos.epoch)
            indices = self._epoch_batches(self.pos.epoch)[self.pos.batch]
            batch = _collate([source[i] for i in indices])
            self._batch = {k: v.to(self.device) for k, v in batch.items()}
            self._batch_key = key
        return self._batch

    def _advance_batch(self) -> None:
        self.pos = Position(self.pos.epoch, self.pos.batch + 1, 0)
        if self.pos.batch >= len(self._epoch_batches(self.pos.epoch)):
            self.pos = Position(self.pos.epoch + 1, 0, 0)
        self.state = None

    # ---------------------------------------------------------------- one update

    def update(self) -> dict[str, float] | None:
        """One call = one optimiser update. Returns the loss terms, or None if the loss is not finite
        (in any process); nothing is stepped then."""
        tc, model = self.cfg.train, self.model
        batch = self._load_batch()
        frames = batch["frames"]                                          # (B, T, 3, H, W) uint8
        calls = tc.warmup_calls + frames.shape[1] - 1
        c = self.pos.call
        if c == 0:
            self.state = model.initial_state(frames.shape[0], self.device)
        warm = c < tc.warmup_calls
        t_in = 0 if warm else c - tc.warmup_calls
        t_out = 0 if warm else t_in + 1
        frame = frames[:, t_in].float() / 255.0                           # (B, 3, H, W)
        target = frames[:, t_out].float() / 255.0
        ramps = ramps_at(self.global_step, tc)

        model.zero_grad(set_to_none=True)
        # the state is replaced by new_state below, so the step may update its traces in place
        out, new_state = model.step(frame, self.state, batch["background"], ramps, self.generator,
                                    precision=self.precision, consume_state=True)
        terms = None
        if bool(torch.isfinite(out.prediction).all()):  # the image loss rejects NaN inputs outright
            snitch_target = (batch["snitch_screen"][:, t_out]
                             if out.snitch is not None and "snitch_screen" in batch else None)
            terms = loci_loss(out, target, batch["background"], tc, ramps.background,
                              self.cfg.model.colour_bias, snitch_target=snitch_target,
                              snitch_known=batch["snitch_known"][:, t_out] if snitch_target is not None else None,
                              regularize=not warm)
        finite = torch.tensor(float(terms is not None and bool(torch.isfinite(terms.total.detach()))),
                              device=self.device)
        if self.dist.active:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if finite.item() < 1:
            return None
        terms.total.backward()
        if self.dist.active:
            _all_reduce_gradients(model, self.dist.world, self.device)
        self.optimisers.scale_learning_rates(lr_factor(self.stage_updates, tc))
        self.optimisers.step(first_call=c == 0, global_step=self.global_step)

        self.state = new_state
        self.global_step += 1
        self.pos.call = c + 1
        self._last = (frame, target, out)
        values = terms.items()
        values["gate_openings"] = float(out.gate_openings)
        values["visible_slots"] = float((out.visibility > self.cfg.model.slots.activity_threshold).float()
                                        .sum(1).mean())
        if self.pos.call >= calls:
            self._advance_batch()
        return values

    # ---------------------------------------------------------------- bookkeeping

    @property
    def stage_updates(self) -> int:
        return self.global_step - self.stage_start

    def _log(self, values: dict[str, float], rate: float) -> None:
        for k, v in values.items():
            self.log_sums[k] = self.log_sums.get(k, 0.0) + v
        self.log_count += 1
        tc = self.cfg.train
        if self.stage_updates % tc.log_every == 0:
            if self.dist.main:
                scalars = {f"loss/{k}" if k in ("total", "image", "position", "object", "time", "snitch")
                           else f"train/{k}": s / self.log_count for k, s in self.log_sums.items()}
                ramps = ramps_at(self.global_step, tc)
                scalars.update({"schedule/std_scale": ramps.std_scale,
                                "schedule/background": ramps.background,
                                "schedule/lr_factor": lr_factor(self.stage_updates, tc),
                                "train/updates_per_s": rate})
                self.run.log_scalars(self.global_step, scalars)
            self.log_sums, self.log_count = {}, 0
        if self.dist.main and self.stage_updates % tc.image_every == 0:
            from ..tools.visualize import step_sheet

            frame, target, out = self._last
            sheet = step_sheet(frame[0].cpu().numpy(), out.prediction[0].detach().cpu().numpy(),
                               out.masks[0].detach().cpu().numpy(), out.slot_rgb[0].detach().cpu().numpy(),
                               target=target[0].cpu().numpy())
            self.run.log_image(self.global_step, "train/input_prediction_target_masks_slots", sheet)

    def save(self) -> Path | None:
        """Checkpoint in all processes' name; rank 0 writes it. Returns its path on rank 0."""
        mine = {"sequence": _state_to_data(self.state), "rng": _rng_state(self.generator)}
        if self.dist.active:
            ranks = [None] * self.dist.world
            dist.all_gather_object(ranks, mine)
        else:
            ranks = [mine]
        if not self.dist.main:
            return None
        bad = [n for n, p in self.model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise TrainError(f"parameters became non-finite ({', '.join(bad[:3])}); not saving a checkpoint")
        path = save_checkpoint(
            self.run.checkpoint_path(self.global_step), self.model, self.cfg, self.global_step,
            optimisers=self.optimisers.state_dict(), background=self.background.cpu(),
            resolution=list(self.model.resolution), ranks=ranks,
            train_state={"stage_start": self.stage_start, "epoch": self.pos.epoch, "batch": self.pos.batch,
                         "call": self.pos.call, "log_sums": dict(self.log_sums), "log_count": self.log_count,
                         "data": str(self.data_root), "split": self.split, "world": self.dist.world,
                         "data_options": self.data_options})
        self.run.prune(self.cfg.train.keep_checkpoints)
        return path

    def _check_in_sync(self) -> None:
        """All processes must hold bit-identical parameters; compare digests of their bytes."""
        names = [n for n, _ in self.model.named_parameters()]
        mine = [hashlib.sha256(p.detach().cpu().numpy().tobytes()).hexdigest()
                for p in self.model.parameters()]
        everyone = [None] * self.dist.world
        dist.all_gather_object(everyone, mine)
        differ = [n for i, n in enumerate(names) if len({d[i] for d in everyone}) != 1]
        if differ:
            raise TrainError(f"processes hold different parameters: {', '.join(differ[:5])}"
                             f"{' ...' if len(differ) > 5 else ''}")
        if self.dist.main:
            total = hashlib.sha256("".join(mine).encode()).hexdigest()
            print(f"loci train: parameters identical on all {self.dist.world} processes "
                  f"(sha256 {total[:16]})", file=sys.stderr)

    def _stop_requested(self) -> float:
        """0: go on; 1: the time box is spent; 2: a signal asked to stop (the largest over processes)."""
        flag = 2.0 if self.stop_signal is not None else 0.0
        if flag == 0 and self.deadline is not None and time.monotonic() >= self.deadline:
            flag = 1.0
        flag = torch.tensor(flag, device=self.device)
        if self.dist.active:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return flag.item()

    def _on_signal(self, signum, frame) -> None:
        self.stop_signal = signum

    # ---------------------------------------------------------------- the loop

    def train(self) -> int:
        from tqdm import tqdm

        tc = self.cfg.train
        total = tc.updates
        if self.dist.active:  # start from rank 0's weights whatever each process built or loaded
            for p in self.model.parameters():
                dist.broadcast(p.data, src=0)
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        bar = tqdm(total=total, initial=min(self.stage_updates, total), unit="upd", dynamic_ncols=True,
                   disable=not (self.progress and self.dist.main), desc="train")
        last_time, last_step = time.perf_counter(), self.global_step
        rate = 0.0
        try:
            while self.stage_updates < total:
                stop = self._stop_requested()
                if stop:
                    path = self.save()
                    if self.dist.main:
                        bar.close()
                        why = "by signal" if stop > 1 else "at the end of its time box (--max-minutes)"
                        print(f"loci train: stopped {why} at update {self.global_step}; checkpoint "
                              f"{path}; continue with: loci train --resume {self.run.path}", file=sys.stderr)
                    return EXIT_INTERRUPTED if stop > 1 else 0
                values = self.update()
                if values is None:
                    if self.dist.main:
                        bar.close()
                        last = self.run.latest_checkpoint()
                        print(f"loci train: error: the loss is not finite at update {self.global_step + 1}; "
                              f"stopped without saving. Last good checkpoint: {last or 'none'}",
                              file=sys.stderr)
                    return EXIT_NONFINITE
                now = time.perf_counter()
                if now - last_time > 1.0:
                    rate = (self.global_step - last_step) / (now - last_time)
                    last_time, last_step = now, self.global_step
                self._log(values, rate)
                bar.update(1)
                bar.set_postfix(loss=f"{values['total']:.4f}", refresh=False)
                if self.stage_updates % tc.checkpoint_every == 0 and self.stage_updates < total:
                    self.save()
            path = self.save()
            if self.dist.active:
                self._check_in_sync()
            if self.dist.main:
                bar.close()
                print(f"loci train: done, {self.stage_updates} updates in this stage (global step "
                      f"{self.global_step}); checkpoint {path}", file=sys.stderr)
            return 0
        finally:
            bar.close()
            for s, h in handlers.items():
                signal.signal(s, h)
            if self.dist.main:
                self.run.close()
