"""`loci eval` on footage without ground truth: what can be measured from the frames alone.

Per sequence, Loci runs as in the CATER evaluation (warm-up calls on frame 0, then the call on frame t
predicts frame t + 1), and we measure:
* image error: mean squared error of the predicted frame t + 1 against the real one (and its PSNR), next
  to the error of repeating frame t (a prediction that has learnt nothing about motion);
* slot usage: slots visible per frame (visibility above model.slots.activity_threshold);
* entities as the tracker reports them (a slot visible at least once is an entity, its id the slot):
  how many per sequence, their lifetime (first to last visible frame), the share of that lifetime they
  are visible and how many separate visible runs they have (1 = never lost and found again).
An overlay video per sequence (the frames in grey, slot masks painted over) shows what was tracked.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..tools.save_latents import OVERLAY_FPS, OVERLAY_MIN_WIDTH


def entity_stats(visible: np.ndarray) -> dict:
    """visible (T, O) bool -> entity count and per-entity lifetime, visible share and visible runs."""
    lifetimes, shares, runs = [], [], []
    for k in range(visible.shape[1]):
        frames = np.flatnonzero(visible[:, k])
        if not len(frames):
            continue
        span = frames[-1] - frames[0] + 1
        lifetimes.append(int(span))
        shares.append(len(frames) / span)
        runs.append(int(1 + np.count_nonzero(np.diff(frames) > 1)))
    return {"entities": len(lifetimes), "lifetimes": lifetimes, "visible_share": shares, "visible_runs": runs}


def evaluate_footage(model, cfg, dataset, count: int, out_dir: Path | None, device, checkpoint: Path,
                     data: Path, split: str, progress: bool = True, video_format: str = "mp4") -> dict:
    from tqdm import tqdm

    from ..tools.visualize import overlay, to_uint8, upscale, write_video
    from .evaluate import run_loci

    threshold = cfg.model.slots.activity_threshold
    per_sequence = []
    for index in tqdm(range(count), unit="sequence", desc="eval", disable=not progress):
        item = dataset[index]
        frames = item["frames"]                                         # (T, 3, H, W) uint8
        errors, visible, pictures = [], [], []
        scale = max(1, OVERLAY_MIN_WIDTH // frames.shape[-1])

        def on_step(t, frame, out, frames=frames, errors=errors, visible=visible, pictures=pictures, scale=scale):
            target = frames[t + 1].float().to(out.prediction.device) / 255.0
            errors.append(float(torch.mean((out.prediction[0] - target) ** 2)))
            visible.append(out.visibility[0].cpu().numpy() > threshold)
            if out_dir is not None:
                pictures.append(upscale(to_uint8(overlay(frame[0].cpu().numpy(), out.masks[0].cpu().numpy())),
                                        scale))

        run_loci(model, [item], cfg.train.warmup_calls, device, on_step=on_step)
        visible = np.stack(visible)
        mse = float(np.mean(errors))
        still = frames.float() / 255.0
        result = {"name": item["name"], "frames": int(frames.shape[0]), "image_mse": mse,
                  "repeat_frame_mse": float(torch.mean((still[1:] - still[:-1]) ** 2)),
                  "psnr_db": float(10 * np.log10(1.0 / max(mse, 1e-12))),
                  "visible_slots_per_frame": float(visible.sum(1).mean()), **entity_stats(visible)}
        if out_dir is not None:
            path = write_video(Path(out_dir) / "overlays" / f"{item['name']}.{video_format}", pictures,
                               fps=OVERLAY_FPS)
            result["overlay"] = str(path)
        per_sequence.append(result)

    def mean(key):
        values = [v for s in per_sequence for v in (s[key] if isinstance(s[key], list) else [s[key]])]
        return float(np.mean(values)) if values else None

    results = {"kind": "footage", "checkpoint": str(checkpoint), "data": str(data), "split": split,
               "videos": count, "resolution": list(model.resolution), "background": dataset.background_source(),
               "visibility_threshold": threshold, "summary": {
                   "image_mse": mean("image_mse"), "repeat_frame_mse": mean("repeat_frame_mse"),
                   "psnr_db": mean("psnr_db"),
                   "visible_slots_per_frame": mean("visible_slots_per_frame"),
                   "entities_per_sequence": mean("entities"), "lifetime_frames": mean("lifetimes"),
                   "visible_share": mean("visible_share"), "visible_runs": mean("visible_runs")},
               "sequences": per_sequence}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2))
        (out / "results.md").write_text(markdown(results) + "\n")
    return results


def _f(x, digits=3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def markdown(results: dict) -> str:
    s = results["summary"]
    lines = [f"Evaluation of `{results['checkpoint']}` on {results['videos']} sequences (split {results['split']}) of "
             f"`{results['data']}` at {results['resolution'][1]}x{results['resolution'][0]} (no ground truth: "
             f"image error, slot usage and entities only; background: {results['background']})", "",
             "| sequence | frames | image MSE | repeat-frame MSE | PSNR dB | visible slots / frame | entities | "
             "mean lifetime (frames) | visible share | visible runs |", "|---|---|---|---|---|---|---|---|---|---|"]
    for q in results["sequences"] + [dict(name="**mean**", frames=None, entities=s["entities_per_sequence"],
                                          **{k: s[k] for k in ("image_mse", "repeat_frame_mse", "psnr_db",
                                                               "visible_slots_per_frame")},
                                          lifetimes=s["lifetime_frames"], visible_share=s["visible_share"],
                                          visible_runs=s["visible_runs"])]:
        avg = {k: (float(np.mean(q[k])) if q[k] else None) if isinstance(q[k], list) else q[k]
               for k in ("lifetimes", "visible_share", "visible_runs")}
        lines.append(f"| {q['name']} | {q['frames'] if q['frames'] is not None else ''} | {_f(q['image_mse'], 5)} | "
                     f"{_f(q['repeat_frame_mse'], 5)} | "
                     f"{_f(q['psnr_db'], 1)} | {_f(q['visible_slots_per_frame'], 2)} | "
                     f"{q['entities'] if isinstance(q['entities'], int) else _f(q['entities'], 1)} | "
                     f"{_f(avg['lifetimes'], 1)} | "
                     f"{_f(avg['visible_share'], 2)} | {_f(avg['visible_runs'], 2)} |")
    return "\n".join(lines)
