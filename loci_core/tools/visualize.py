"""Pictures of what the model does, shared by training logs, `loci eval` and `loci save`.

All functions take float arrays in [0, 1] laid out like the model's tensors (channels first,
RGB) and return uint8 (H, W, 3) RGB images, so they work on numpy arrays from any source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Distinct slot colours (RGB in [0, 1]); slot k uses SLOT_COLOURS[k % len]. Background is black.
SLOT_COLOURS = np.array([
    (0.90, 0.10, 0.10), (0.10, 0.60, 0.95), (0.10, 0.80, 0.20), (0.95, 0.75, 0.05),
    (0.75, 0.20, 0.85), (0.05, 0.85, 0.80), (0.95, 0.45, 0.05), (0.55, 0.35, 0.20),
    (0.95, 0.50, 0.70), (0.50, 0.50, 0.50), (0.60, 0.85, 0.30), (0.25, 0.25, 0.70),
])
# How much of the slot colour covers the grey-scale frame in an overlay.
OVERLAY_ALPHA = 0.55
# Width of the grey separator between tiles of a sheet, in pixels.
GAP = 2


def slot_colour(k: int) -> np.ndarray:
    return SLOT_COLOURS[k % len(SLOT_COLOURS)]


def to_uint8(img: np.ndarray) -> np.ndarray:
    """(3, H, W) or (H, W, 3) float in [0, 1] -> (H, W, 3) uint8."""
    img = np.asarray(img, np.float32)
    if img.ndim == 3 and img.shape[0] == 3 and img.shape[-1] != 3:
        img = img.transpose(1, 2, 0)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def colour_masks(masks: np.ndarray) -> np.ndarray:
    """Soft masks (O + 1, H, W), last channel background -> (3, H, W): each slot in its colour."""
    slots = masks[:-1]                                               # (O, H, W)
    colours = np.stack([slot_colour(k) for k in range(len(slots))])  # (O, 3)
    return np.einsum("ohw,oc->chw", slots, colours)


def overlay(frame: np.ndarray, masks: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The frame in grey with the slots' masks painted over it: (3, H, W) float."""
    grey = np.repeat(frame.mean(0, keepdims=True), 3, axis=0)
    fg = masks[:-1].sum(0, keepdims=True)                             # (1, H, W) slot coverage
    return grey * (1 - alpha * fg) + alpha * colour_masks(masks)


def _grid(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    """Tiles (H, W, 3) uint8 of equal size laid out row-major with GAP pixel grey separators."""
    H, W, _ = tiles[0].shape
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (H + GAP) - GAP, columns * (W + GAP) - GAP, 3), 128, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * (H + GAP): r * (H + GAP) + H, c * (W + GAP): c * (W + GAP) + W] = tile
    return sheet


def step_sheet(frame: np.ndarray, prediction: np.ndarray, masks: np.ndarray, slot_rgb: np.ndarray,
               target: np.ndarray | None = None) -> np.ndarray:
    """One step at a glance, (H', W', 3) uint8.

    Row 1: input, prediction (and the true next frame if given), overlay, coloured masks.
    Row 2: each slot's un-occluded appearance, framed in the slot's colour.
    Row 3: each slot's mask.
    frame, prediction, target (3, H, W); masks (O + 1, H, W) with the background last;
    slot_rgb (O, 3, H, W).
    """
    O = slot_rgb.shape[0]
    first = [frame, prediction] + ([target] if target is not None else []) + [overlay(frame, masks),
                                                                               colour_masks(masks)]
    columns = max(len(first), O)
    blank = np.zeros_like(frame)
    tiles = [to_uint8(x) for x in first] + [to_uint8(blank)] * (columns - len(first))
    for k in range(O):
        tile = to_uint8(slot_rgb[k])
        tile[:1], tile[-1:], tile[:, :1], tile[:, -1:] = [(slot_colour(k) * 255).astype(np.uint8)] * 4
        tiles.append(tile)
    tiles += [to_uint8(blank)] * (columns - O)
    for k in range(O):
        tiles.append(to_uint8(masks[k][None] * slot_colour(k)[:, None, None]))
    tiles += [to_uint8(blank)] * (columns - O)
    return _grid(tiles, columns)


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image (PNG or JPEG by suffix)."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(image[..., ::-1])):
        raise OSError(f"could not write image {path}")
    return path


def write_video(path: str | Path, frames: list[np.ndarray], fps: float = 12.0) -> Path:
    """Frames (H, W, 3) uint8 RGB -> .mp4 (OpenCV, mp4v) or .gif (Pillow), by the path's suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not frames:
        raise ValueError(f"{path}: no frames to write")
    suffix = path.suffix.lower()
    if suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    elif suffix == ".mp4":
        import cv2

        H, W, _ = frames[0].shape
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
        if not writer.isOpened():
            raise OSError(f"{path}: OpenCV cannot open an mp4v video writer")
        for f in frames:
            writer.write(np.ascontiguousarray(f[..., ::-1]))
        writer.release()
    else:
        raise ValueError(f"{path}: unsupported video format '{suffix}' (use .mp4 or .gif)")
    return path


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of an (H, W, 3) image, so small frames stay readable."""
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
