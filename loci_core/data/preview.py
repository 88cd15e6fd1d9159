"""Look at a generated video: a contact sheet PNG and an animated GIF with instance masks overlaid.

Each object gets a fixed colour; its visible pixels are tinted and outlined, the snitch gets a white cross
at its projected position (also while hidden, drawn dashed-grey then), and each panel is labelled with the
frame index and the snitch's state.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from loci_core.data.camera import ProjectiveCamera, screen_to_pixel
from loci_core.data.reader import read_ground_truth, read_scene, read_video
from loci_core.data.scene import STATE_NAMES

PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
    ],
    dtype=np.float32,
)
OVERLAY_ALPHA = 0.45
SHEET_FRAMES = 8
GIF_STRIDE = 3  # every third frame, at 8 fps the GIF runs at real speed
SMALL_WIDTH = 160  # renders narrower than this are shown enlarged 2x


def overlay(rgb: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Tint and outline each object's visible pixels; (H, W, 3) uint8 + (H, W) ids -> (H, W, 3) uint8."""
    out = rgb.astype(np.float32)
    for k in np.unique(ids):
        if k == 0:
            continue
        mask = ids == k
        colour = PALETTE[(k - 1) % len(PALETTE)]
        out[mask] = (1 - OVERLAY_ALPHA) * out[mask] + OVERLAY_ALPHA * colour
        edge = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        out[edge] = colour
    return out.astype(np.uint8)


def annotated_frames(root: Path, name: str, frames: list[int] | None = None) -> list[np.ndarray]:
    """Overlaid, enlarged, labelled RGB frames of one video."""
    root = Path(root)
    scene = read_scene(root / "scenes" / f"{name}.json")
    video = read_video(root / "videos" / f"{name}.avi", scene.num_frames)
    gt = read_ground_truth(root / "ground_truth" / f"{name}.npz", scene.num_frames, len(scene.objects))
    frames = list(range(scene.num_frames)) if frames is None else frames
    s = scene.snitch_index
    h, w = video.shape[1:3]
    scale = 2 if w < SMALL_WIDTH else 1
    out = []
    for t in frames:
        img = overlay(video[t], gt["ids"][t]) if gt is not None else video[t].copy()
        img = cv2.resize(img, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
        row, col = screen_to_pixel(
            ProjectiveCamera(scene.cameras[t]).world_to_screen(scene.locations[s, t]), (h, w)
        )
        centre = (int(round((col + 0.5) * scale)), int(round((row + 0.5) * scale)))
        state = STATE_NAMES[gt["states"][t, s]] if gt is not None else ""
        cross = (255, 255, 255) if state in ("", "visible") else (160, 160, 160)
        cv2.drawMarker(img, centre, cross, cv2.MARKER_CROSS, 12, 1)
        cv2.putText(
            img, f"{t} snitch {state}", (3, 11), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1, cv2.LINE_AA
        )
        out.append(img)
    return out


def contact_sheet(root: Path, name: str, out_png: Path, columns: int = 4) -> Path:
    scene = read_scene(Path(root) / "scenes" / f"{name}.json")
    picks = np.linspace(0, scene.num_frames - 1, SHEET_FRAMES).round().astype(int).tolist()
    panels = annotated_frames(root, name, picks)
    rows = [np.concatenate(panels[i : i + columns], axis=1) for i in range(0, len(panels), columns)]
    sheet = np.concatenate(rows, axis=0)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return out_png


def animated_gif(root: Path, name: str, out_gif: Path) -> Path:
    from PIL import Image

    scene = read_scene(Path(root) / "scenes" / f"{name}.json")
    panels = annotated_frames(root, name, list(range(0, scene.num_frames, GIF_STRIDE)))
    images = [Image.fromarray(p) for p in panels]
    out_gif = Path(out_gif)
    out_gif.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(
        out_gif, save_all=True, append_images=images[1:], duration=int(1000 * GIF_STRIDE / 24), loop=0
    )
    return out_gif


def footage_preview(dataset, name: str, out_png: Path, gif: bool = True, columns: int = 4) -> list[Path]:
    """Contact sheet (SHEET_FRAMES frames and, last, the background training uses, labelled with where it
    comes from) and optionally a GIF of one footage sequence (a FootageVideos item)."""
    frames = np.array(dataset.frames(name)).transpose(0, 2, 3, 1)      # (T, H, W, 3)
    picks = np.linspace(0, len(frames) - 1, SHEET_FRAMES - 1).round().astype(int)
    panels = [_label(frames[t].copy(), f"{name} frame {t}") for t in picks]
    what = "background: " + ("given image" if dataset.background_path is not None else "median of frames")
    panels.append(_label(dataset.background(name).copy(), what))
    rows = [np.concatenate(panels[i:i + columns], axis=1) for i in range(0, len(panels), columns)]
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    written = [out_png]
    if gif:
        from PIL import Image

        images = [Image.fromarray(f) for f in frames[::GIF_STRIDE]]
        path = out_png.with_suffix(".gif")
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 * GIF_STRIDE / 24), loop=0)
        written.append(path)
    return written


def _label(img: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(img, text, (3, 11), cv2.FONT_HERSHEY_PLAIN, 0.8, (255, 255, 255), 1, cv2.LINE_AA)
    return img
