"""`loci readout`: train the temporal snitch read-out on the frozen slots of a checkpoint, in minutes.

The checkpoint's model runs once over whole videos (eval mode, as trackers run it) and what the read-out
reads of every call is kept: each slot's gestalt, position and size, visibility and priority, with the
snitch's projected position and whether the video had shown it by then. The read-out then learns on
those recordings with backpropagation through whole videos (the slots do not change, so nothing needs
re-running), and the epoch that picks the snitch's slot best on held-out videos is kept. The result is the
checkpoint with `model.readout: temporal` and the read-out's weights added.

Recorded per video (T' = frames 1..T-1, the calls that predict them): gestalt (T', O, G), position
(T', O, 3), visibility (T', O), priority (T', O), target (T', 2) (p_row, p_col), known (T',) bool.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import torch

from ..model.checkpoint import CheckpointError, load_model, save_checkpoint
from ..model.nn.temporal_readout import TemporalReadout
from .losses import snitch_slot_loss, snitch_slot_targets

FIELDS = ("gestalt", "position", "visibility", "priority", "target", "known")


class ReadoutError(RuntimeError):
    """A read-out training that cannot run; the message says why."""


def record(model, items: list[dict], warmup_calls: int, device) -> dict[str, torch.Tensor]:
    """Run a batch of equal-length whole videos (`evaluate.run_loci`); returns FIELDS as (B, T', ...) CPU tensors."""
    from ..evaluation.evaluate import run_loci

    kept = {key: [] for key in FIELDS[:4]}

    def keep(t, frame, out):
        for key, value in zip(FIELDS[:4], (out.gestalt, out.position, out.visibility, out.priority)):
            kept[key].append(value.float().cpu())

    run_loci(model, items, warmup_calls, device, on_step=keep)
    recorded = {key: torch.stack(values, 1) for key, values in kept.items()}
    recorded["target"] = torch.stack([it["snitch_screen"][1:] for it in items])
    recorded["known"] = torch.stack([it["snitch_known"][1:] for it in items])
    return recorded


def record_videos(model, dataset, indices: list[int], warmup_calls: int, device, batch: int,
                  desc: str, progress: bool = True) -> dict[str, torch.Tensor]:
    from tqdm import tqdm

    parts = []
    bar = tqdm(total=len(indices), unit="video", desc=desc, disable=not progress)
    for start in range(0, len(indices), batch):
        items = [dataset[i] for i in indices[start:start + batch]]
        if len({it["frames"].shape for it in items}) != 1:
            raise ReadoutError("videos of different lengths in one batch; use --batch 1")
        parts.append(record(model, items, warmup_calls, device))
        bar.update(len(items))
    bar.close()
    return {key: torch.cat([p[key] for p in parts]) for key in FIELDS}


def run_readout(readout: TemporalReadout, data: dict[str, torch.Tensor]) -> torch.Tensor:
    """Scores (N, T', O) of the read-out over recorded videos, frame by frame from an empty memory."""
    n, steps, slots = data["visibility"].shape
    hidden = readout.initial_hidden(n, slots)
    scores = []
    for t in range(steps):
        s, hidden = readout(data["gestalt"][:, t], data["position"][:, t], data["visibility"][:, t],
                            data["priority"][:, t], hidden)
        scores.append(s)
    return torch.stack(scores, 1)


def slot_accuracy(readout: TemporalReadout, data: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(share of knowable frames whose chosen slot is the target slot, mean loss) over recorded videos."""
    with torch.no_grad():
        scores = run_readout(readout, data)
        slot, counts = snitch_slot_targets(data["position"].flatten(0, 1), data["target"].flatten(0, 1),
                                           data["known"].flatten())
        flat = scores.flatten(0, 1)
        loss = float(snitch_slot_loss(flat, slot, counts))
        hits = (flat.argmax(1) == slot)[counts]
    return (float(hits.float().mean()) if len(hits) else float("nan")), loss


def train_readout(train: dict, val: dict, width: int, epochs: int, batch: int, lr: float, seed: int,
                  progress: bool = True) -> tuple[TemporalReadout, list[dict]]:
    """Train on whole recorded videos (backpropagation through time); keep the best epoch on `val`."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    readout = TemporalReadout(train["gestalt"].shape[-1], width)
    optimiser = torch.optim.Adam(readout.parameters(), lr=lr)
    order = np.random.default_rng(seed)
    best, best_accuracy, history = copy.deepcopy(readout.state_dict()), -1.0, []
    n = len(train["known"])
    for epoch in tqdm(range(epochs), unit="epoch", desc="readout", disable=not progress):
        losses = []
        permutation = order.permutation(n)
        for start in range(0, n, batch):
            pick = torch.from_numpy(permutation[start:start + batch])
            part = {key: value[pick] for key, value in train.items()}
            scores = run_readout(readout, part).flatten(0, 1)
            slot, counts = snitch_slot_targets(part["position"].flatten(0, 1), part["target"].flatten(0, 1),
                                               part["known"].flatten())
            loss = snitch_slot_loss(scores, slot, counts)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(readout.parameters(), 1.0)
            optimiser.step()
            losses.append(float(loss.detach()))
        accuracy, val_loss = slot_accuracy(readout, val)
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                        "val_slot_accuracy": accuracy})
        if accuracy > best_accuracy:
            best, best_accuracy = copy.deepcopy(readout.state_dict()), accuracy
    readout.load_state_dict(best)
    return readout.eval(), history


def train_from_checkpoint(checkpoint: Path, data: Path, out: Path, videos: int | None = None,
                          val_videos: int = 50, epochs: int = 30, width: int = 32, batch: int = 16,
                          lr: float = 3e-3, seed: int = 0, device: str | torch.device = "cpu",
                          progress: bool = True) -> dict:
    from ..data.dataset import CaterVideos

    model, cfg, ckpt = load_model(checkpoint, device=device)
    if cfg.model.snitch == "off":
        raise ReadoutError(f"{checkpoint}: model.snitch is 'off'; the read-out needs a snitch-supervised data set "
                           "and a model with snitch: probe or joint")
    torch.manual_seed(cfg.train.seed)
    train_set = CaterVideos(data, split="train", size=model.resolution)
    val_set = CaterVideos(data, split="test", size=model.resolution)
    if len(train_set) == 0 or len(val_set) == 0:
        raise ReadoutError(f"{data}: needs videos in both the train and the test split")
    n_train = len(train_set) if videos is None else min(videos, len(train_set))
    n_val = min(val_videos, len(val_set))
    train = record_videos(model, train_set, list(range(n_train)), cfg.train.warmup_calls, device, batch,
                          "record train", progress)
    val = record_videos(model, val_set, list(range(n_val)), cfg.train.warmup_calls, device, batch,
                        "record val", progress)
    readout, history = train_readout(train, val, width, epochs, batch, lr, seed, progress)

    cfg.model.readout, cfg.model.readout_width = "temporal", width
    from ..model.loci import Loci

    new = Loci(cfg.model)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("predictor.readout.")}
    state.update({f"temporal_readout.{k}": v for k, v in readout.state_dict().items()})
    new.load_state_dict(state)
    extra = {key: ckpt[key] for key in ("background", "resolution", "provenance") if key in ckpt}
    save_checkpoint(out, new, cfg, int(ckpt["global_step"]), **extra,
                    readout_training={"source": Path(checkpoint).name, "train_videos": n_train,
                                      "val_videos": n_val, "history": history})
    return {"out": out, "history": history, "train_videos": n_train, "val_videos": n_val}


def register(subparsers) -> None:
    from ..device import add_device_argument

    p = subparsers.add_parser("readout", help="train the temporal snitch read-out on a checkpoint's frozen slots",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--data", required=True, type=Path, help="CATER-format data set (train split: training, "
                                                             "test split: choosing the epoch)")
    p.add_argument("--out", required=True, type=Path, help="the new checkpoint")
    p.add_argument("--videos", type=int, help="train on the first N videos of the train split (default: all)")
    p.add_argument("--val-videos", type=int, default=50, help="held-out videos that choose the epoch")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--width", type=int, default=32, help="memory width per slot")
    p.add_argument("--batch", type=int, default=16, help="videos per batch (recording and training)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    add_device_argument(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.reader import CaterFormatError
    from ..device import DeviceError, resolve_device

    if args.out.exists() and args.out.resolve() == args.checkpoint.resolve():
        print("loci readout: error: --out is the input checkpoint; choose another file", file=sys.stderr)
        return 2
    try:
        result = train_from_checkpoint(args.checkpoint, args.data, args.out, args.videos, args.val_videos,
                                       args.epochs, args.width, args.batch, args.lr, args.seed,
                                       resolve_device(args.device),
                                       not args.no_progress)
    except (ReadoutError, CheckpointError, CaterFormatError, DeviceError, OSError) as err:
        print(f"loci readout: error: {err}", file=sys.stderr)
        return 2
    best = max(result["history"], key=lambda h: h["val_slot_accuracy"])
    print(f"loci readout: {result['train_videos']} training videos, epoch {best['epoch']} kept "
          f"(held-out slot accuracy {best['val_slot_accuracy']:.3f} on {result['val_videos']} videos); "
          f"wrote {result['out']}", file=sys.stderr)
    return 0
