"""`loci save`: what a checkpoint sees in one video, as files people and the GUI can open.

    OUT/latents.npz        all slots over time (loci_core/tools/latents.py format; the GUI reads it)
    OUT/slot-<k>.npz       the same for slot k alone
    OUT/sheets/step-<t>.png  per step: input, prediction, true next frame, overlay, masks; each
                           slot's un-occluded appearance; each slot's mask (visualize.step_sheet)
    OUT/overlay.gif|.mp4   the input in grey with the slot masks painted over it

Step t is the call on frame t (after the warm-up calls on frame 0); its latents are the slot
states it predicts for frame t + 1, the state the GUI edits and decodes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .latents import Latents, save_latents

# Enlarge small frames in the overlay video so that 80x60 stays readable.
OVERLAY_MIN_WIDTH = 320
# Playback rate of the overlay video (CATER is 24 fps; slower makes slots easier to follow; GIF
# frame times are whole centiseconds, so 10 fps plays exactly).
OVERLAY_FPS = 10.0


def save_video_latents(checkpoint: Path, data: Path, video: str | int, out: Path, split: str = "all",
                       device: str = "cpu", resize: bool = False, sheets: bool = True,
                       video_format: str = "gif", data_options: dict | None = None) -> dict:
    """Run one whole video and write the files above; returns {name: path}. `data_options`: the footage
    keywords of open_video_data (topic, background, ...)."""
    from ..data.dataset import CaterVideos
    from ..data.sources import open_video_data
    from ..evaluation.evaluate import EvalError, check_resolution, run_loci
    from ..model.checkpoint import load_model
    from .visualize import overlay, step_sheet, to_uint8, upscale, write_image, write_video

    model, cfg, _ = load_model(checkpoint, device=device)
    dataset = open_video_data(data, split=split, size=model.resolution, seed=cfg.train.seed,
                              **(data_options or {}))
    names = dataset.names
    if isinstance(video, str) and not video.isdigit():
        if video not in names:
            raise EvalError(f"{data}: no video {video!r} in the {split} split")
        index = names.index(video)
    else:
        index = int(video)
        if not 0 <= index < len(names):
            raise EvalError(f"{data}: video index {index} out of range (the {split} split has {len(names)})")
    if isinstance(dataset, CaterVideos):  # footage is resized to the model, as the tracker node does
        check_resolution(checkpoint, model, data, names[index], resize)
    item = dataset[index]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frames = item["frames"]                                           # (T, 3, H, W) uint8
    per_step = {"gestalt": [], "position": [], "priority": [], "visibility": []}
    pictures = []
    scale = max(1, OVERLAY_MIN_WIDTH // frames.shape[-1])

    def on_step(t, frame, step_out):
        for key in per_step:
            per_step[key].append(getattr(step_out, key)[0].cpu().numpy())
        f = frame[0].cpu().numpy()
        masks = step_out.masks[0].cpu().numpy()
        pictures.append(upscale(to_uint8(overlay(f, masks)), scale))
        if sheets:
            target = frames[t + 1].float().numpy() / 255.0
            sheet = step_sheet(f, step_out.prediction[0].cpu().numpy(), masks,
                               step_out.slot_rgb[0].cpu().numpy(), target=target)
            write_image(out / "sheets" / f"step-{t:04d}.png", sheet)

    run_loci(model, [item], cfg.train.warmup_calls, device, on_step=on_step)
    meta = {"resolution": list(model.resolution), "checkpoint": str(checkpoint), "video": item["name"],
            "data": str(data), "steps": "step t = the call on frame t; slot states predicted for frame t + 1"}
    arrays = {k: np.stack(v) for k, v in per_step.items()}            # (T-1, O, ...)
    written = {"latents": save_latents(out / "latents.npz", Latents(meta=meta, **arrays))}
    for k in range(arrays["gestalt"].shape[1]):
        one = {name: a[:, k:k + 1] for name, a in arrays.items()}
        written[f"slot-{k}"] = save_latents(out / f"slot-{k}.npz", Latents(meta=dict(meta, slot=k), **one))
    written["overlay"] = write_video(out / f"overlay.{video_format}", pictures, fps=OVERLAY_FPS)
    if sheets:
        written["sheets"] = out / "sheets"
    return written


def register(subparsers) -> None:
    from ..data.sources import add_footage_arguments
    from ..device import add_device_argument

    p = subparsers.add_parser("save", help="save per-slot latents, step images and an overlay video",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--data", required=True, type=Path,
                   help="CATER-format directory, folder of video files or rosbag2 (with --topic)")
    add_footage_arguments(p)
    p.add_argument("--video", required=True, help="index in the split, or the video's name")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--split", default="all", help="split the index refers to: all (default), train or test")
    add_device_argument(p)
    p.add_argument("--resize", action="store_true", help="resize the video to the checkpoint's resolution")
    p.add_argument("--no-sheets", action="store_true", help="skip the per-step image sheets")
    p.add_argument("--format", default="gif", choices=("gif", "mp4"), help="overlay video format")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.reader import CaterFormatError
    from ..data.sources import data_options
    from ..device import DeviceError, resolve_device
    from ..evaluation.evaluate import EvalError
    from ..model.checkpoint import CheckpointError

    try:
        device = resolve_device(args.device)
        written = save_video_latents(args.checkpoint, args.data, args.video, args.out, args.split, device,
                                     args.resize, not args.no_sheets, args.format, data_options(args))
    except (EvalError, CheckpointError, CaterFormatError, DeviceError, OSError, ValueError) as err:
        print(f"loci save: error: {err}", file=sys.stderr)
        return 2
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0
