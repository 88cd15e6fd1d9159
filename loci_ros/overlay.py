"""rgb8 debug overlay of tracked entities, for people to look at (the node's `debug_image`).

Visible entities: their mask tinted in the entity's colour, a solid box, a dot at the tracked position and
the id. Hidden entities (visible before, not now): nothing to tint, so a dashed circle and a dashed box at
the position the model still tracks, plus the id in brackets. Pure numpy/cv2, no ROS, so `loci bag track`
and tests draw exactly what the live node publishes.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

from loci_core.tracking.tracker import Entity, label_image

# Weight of the entity colour where a mask is tinted; the rest stays the camera image so objects stay visible.
MASK_ALPHA = 0.45
# Golden-ratio hue steps give neighbouring ids clearly different colours for any number of slots.
_GOLDEN = 0.618033988749895
# Dash pattern of hidden entities: number of arcs on a circle, and dash length in pixels on a box edge.
_CIRCLE_DASHES = 8
_BOX_DASH_PX = 4
# Text and marks are sized relative to the image so 80x60 and 640x480 overlays are both legible.
_REFERENCE_SIZE = 320.0


def entity_color(entity_id: int) -> tuple[int, int, int]:
    """A fixed, saturated RGB colour (0..255) for an entity id; the same in the overlay and the markers."""
    hue = (entity_id * _GOLDEN) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_overlay(image: np.ndarray, entities: Sequence[Entity],
                 labels: np.ndarray | None = None) -> np.ndarray:
    """Return a new (H, W, 3) uint8 RGB image: `image` with `entities` drawn on it.

    `labels` (H, W) uint8 may be passed when the caller has it already (`OnlineTracker.step` returns it).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"overlay needs an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    if labels is None:
        labels = label_image(entities, (height, width))

    # Tint all masks in one vectorised pass: colour each pixel by its label through a lookup table, blend
    # the whole image with it, and keep the blend where there is an entity.
    lut = np.zeros((256, 3), np.uint8)
    for e in entities:
        lut[e.id + 1] = entity_color(e.id)
    # (cv2 versions of numpy's lut[labels] and copyto(where=...): several times faster on full frames)
    tint = cv2.LUT(cv2.cvtColor(labels, cv2.COLOR_GRAY2RGB), lut[None])
    blend = cv2.addWeighted(image, 1.0 - MASK_ALPHA, tint, MASK_ALPHA, 0.0)
    out = cv2.copyTo(blend, (labels > 0).view(np.uint8), image.copy())

    scale = max(height, width) / _REFERENCE_SIZE
    thickness = max(1, round(scale))
    font_scale = 0.35 * max(scale, 0.6)
    for e in entities:
        color = entity_color(e.id)
        cx, cy = e.position_px
        centre = (round(cx), round(cy))
        x0, y0, x1, y1 = (round(v) for v in e.bbox)
        if e.hidden:
            radius = max(3, round(max(e.size_px, 2.0 * scale)))
            _dashed_circle(out, centre, radius, color, thickness)
            dash = max(2, round(_BOX_DASH_PX * scale))
            _dashed_box(out, (x0, y0), (x1 - 1, y1 - 1), color, thickness, dash)
            text = f"({e.id})"
        else:
            cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), color, thickness)
            cv2.circle(out, centre, max(1, round(2 * scale)), color, -1)
            text = str(e.id)
        _label(out, text, (x0, y0), color, font_scale, thickness)
    return out


def _label(img: np.ndarray, text: str, corner: tuple[int, int], color, font_scale: float, thickness: int):
    """Id text just above the box (inside the image), on a dark backing so it reads on any scene."""
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    x = min(max(corner[0], 0), max(img.shape[1] - tw, 0))
    y = corner[1] - 2 if corner[1] - th - 2 >= 0 else corner[1] + th + 2
    y = min(max(y, th), img.shape[0] - 1)
    cv2.rectangle(img, (x, y - th - 1), (x + tw, y + base - 1), (0, 0, 0), -1)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, color, thickness, cv2.LINE_AA)


def _dashed_circle(img: np.ndarray, centre, radius: int, color, thickness: int):
    step = 360.0 / _CIRCLE_DASHES
    for k in range(_CIRCLE_DASHES):
        start = k * step
        end = start + step / 2
        cv2.ellipse(img, centre, (radius, radius), 0.0, start, end, color, thickness, cv2.LINE_AA)


def _dashed_box(img: np.ndarray, p0, p1, color, thickness: int, dash: int):
    (x0, y0), (x1, y1) = p0, p1
    for a, b in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        for s in range(0, length + 1, 2 * dash):
            e = min(s + dash, length)
            t0, t1 = s / max(length, 1), e / max(length, 1)
            q0 = (round(a[0] + (b[0] - a[0]) * t0), round(a[1] + (b[1] - a[1]) * t0))
            q1 = (round(a[0] + (b[0] - a[0]) * t1), round(a[1] + (b[1] - a[1]) * t1))
            cv2.line(img, q0, q1, color, thickness)
