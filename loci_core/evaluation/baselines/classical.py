"""A classical multi-object tracker, the kind a ROS user builds without learning anything.

Per frame: foreground = pixels that differ from the known empty-scene background; connected
components of the foreground are the detections; each track is a constant-velocity Kalman
filter on the detection centroid; detections are assigned to the tracks' predictions by the
Hungarian algorithm with a distance gate; unmatched tracks coast on their prediction for a
while and are then dropped; unmatched detections start new tracks. The snitch is the track of
the detection with the largest share of gold pixels; when its track is gone, the gold detection
nearest to where it was last seen.
When the snitch disappears (occluded, under a cone) its track coasts and dies, and the
tracker's answer stays where it last saw it — no object
permanence, which is exactly what Loci is compared against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from loci_core.data.camera import pixel_to_screen


@dataclass
class ClassicalConfig:
    foreground_threshold: float = 0.1
    """a pixel is foreground where the RMS over channels of (frame - background) exceeds this
    (the same threshold Loci's entity pre-training uses for its foreground target)"""
    min_area_fraction: float = 2e-4
    """components smaller than this fraction of the image are noise (a few pixels at 80x60)"""
    gate_fraction: float = 0.15
    """a detection may only be assigned to a track predicted within this fraction of the image
    diagonal"""
    max_coast: int = 12
    """frames a track survives without a detection (0.5 s at 24 fps) before it is dropped"""
    process_noise: float = 1.0
    """Kalman process noise (pixels^2 per frame^2 of unmodelled acceleration)"""
    measurement_noise: float = 4.0
    """Kalman measurement noise of a centroid (pixels^2)"""
    snitch_hue: tuple[float, float] = (40.0, 58.0)
    """hue range (degrees) of the gold snitch as it renders; yellow objects sit at 54-62 degrees, so
    the ranges overlap and a yellow object can be mistaken for the snitch (as with real colour picking)"""
    snitch_min_saturation: float = 0.3
    """pixels paler than this (HSV saturation in [0, 1]) have no reliable hue and are never gold"""
    snitch_min_value: float = 0.25
    """darker pixels (HSV value in [0, 1]) are never gold either"""
    snitch_min_fraction: float = 0.3
    """a detection is a snitch candidate when at least this fraction of its pixels is gold ..."""
    snitch_min_pixels: int = 2
    """... and at least this many; among candidates the one with the largest gold fraction wins"""


@dataclass
class _Track:
    ident: int
    x: np.ndarray          # (4,) state: row, col, d row, d col in pixels
    P: np.ndarray          # (4, 4) covariance
    misses: int = 0


@dataclass
class ClassicalResult:
    """labels (T, H, W) int32: 0 background, k + 1 = track k (only where it was detected);
    positions (T, E, 2) float: (p_row, p_col) in [-1, 1] of each track while it is alive, NaN otherwise;
    snitch (T, 2) float: the tracker's snitch screen position per frame (the snitch track's estimate,
    held at its last value once the track is gone; NaN before the snitch is first found)."""
    labels: np.ndarray
    positions: np.ndarray
    snitch: np.ndarray
    tracks: int = 0
    meta: dict = field(default_factory=dict)


_F = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]], np.float64)
_H = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], np.float64)


class ClassicalTracker:
    def __init__(self, cfg: ClassicalConfig | None = None):
        self.cfg = cfg or ClassicalConfig()
        c = self.cfg
        # White-noise acceleration model: the velocity takes the full variance, the position a quarter.
        self._Q = c.process_noise * np.diag([0.25, 0.25, 1.0, 1.0])
        self._R = c.measurement_noise * np.eye(2)

    # ------------------------------------------------------------------ detection

    def detect(self, frame: np.ndarray, background: np.ndarray):
        """frame (H, W, 3) uint8 RGB, background (H, W, 3) float in [0, 1] -> (component map (H, W)
        int32 with 0 = background, centroids (D, 2) pixels (row, col), gold fraction per detection (D,))."""
        H, W, _ = frame.shape
        rms = np.sqrt(((frame / 255.0 - background) ** 2).mean(-1))
        fg = (rms > self.cfg.foreground_threshold).astype(np.uint8)
        n, comp, stats, cents = cv2.connectedComponentsWithStats(fg, connectivity=8)
        area = stats[1:, cv2.CC_STAT_AREA]
        keep = np.flatnonzero(area >= self.cfg.min_area_fraction * H * W) + 1
        remap = np.zeros(n, np.int32)
        remap[keep] = np.arange(1, len(keep) + 1)
        comp = remap[comp]
        gold = self._gold(frame) & (comp > 0)
        gold_count = np.bincount(comp[gold], minlength=len(keep) + 1)[1:]
        fraction = np.where(gold_count >= self.cfg.snitch_min_pixels,
                            gold_count / stats[keep, cv2.CC_STAT_AREA], 0.0)
        return comp, cents[keep][:, ::-1].astype(np.float64), fraction

    def _gold(self, frame: np.ndarray) -> np.ndarray:
        """(H, W) bool: pixels in the snitch's hue range, saturated and bright enough."""
        hsv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2HSV_FULL).astype(np.float64)
        hue = hsv[..., 0] * 360.0 / 256.0
        lo, hi = self.cfg.snitch_hue
        return ((hue >= lo) & (hue <= hi) & (hsv[..., 1] >= 255 * self.cfg.snitch_min_saturation)
                & (hsv[..., 2] >= 255 * self.cfg.snitch_min_value))

    # ------------------------------------------------------------------ tracking

    def run(self, frames: np.ndarray, background: np.ndarray) -> ClassicalResult:
        """frames uint8 (T, 3, H, W) RGB; background float (3, H, W) in [0, 1]."""
        T, _, H, W = frames.shape
        bg = np.asarray(background, np.float64).transpose(1, 2, 0)                # (H, W, 3)
        gate = self.cfg.gate_fraction * np.hypot(H, W)
        tracks: list[_Track] = []
        next_id = 0
        labels = np.zeros((T, H, W), np.int32)
        alive: list[dict[int, np.ndarray]] = []
        snitch = np.full((T, 2), np.nan)
        snitch_id, snitch_last = None, None

        for t in range(T):
            comp, cents, gold = self.detect(frames[t].transpose(1, 2, 0), bg)
            for tr in tracks:                                   # predict
                tr.x = _F @ tr.x
                tr.P = _F @ tr.P @ _F.T + self._Q
            pred = np.array([tr.x[:2] for tr in tracks]).reshape(-1, 2)
            dist = np.linalg.norm(pred[:, None] - cents[None], axis=-1)     # (tracks, detections)
            rows, cols = linear_sum_assignment(np.where(dist <= gate, dist, 1e9)) if dist.size else ([], [])
            matched_det = {}
            for r, c in zip(rows, cols):
                if dist[r, c] <= gate:
                    matched_det[c] = tracks[r]
            for tr in tracks:
                tr.misses += 1
            for d, tr in matched_det.items():                  # update
                y = cents[d] - _H @ tr.x
                S = _H @ tr.P @ _H.T + self._R
                K = tr.P @ _H.T @ np.linalg.inv(S)
                tr.x = tr.x + K @ y
                tr.P = (np.eye(4) - K @ _H) @ tr.P
                tr.misses = 0
            for d in range(len(cents)):                       # birth
                if d not in matched_det:
                    tr = _Track(next_id, np.array([*cents[d], 0.0, 0.0]), np.diag([4.0, 4.0, 25.0, 25.0]))
                    next_id += 1
                    tracks.append(tr)
                    matched_det[d] = tr
            tracks = [tr for tr in tracks if tr.misses <= self.cfg.max_coast]   # death
            for d, tr in matched_det.items():
                labels[t][comp == d + 1] = tr.ident + 1
            current = {tr.ident: pixel_to_screen(tr.x[:2], (H, W)) for tr in tracks}
            # The snitch is sticky: it is picked by colour only while it has no live track; first the
            # goldest detection, later the gold one nearest to where the snitch was last seen.
            candidates = np.flatnonzero(gold >= self.cfg.snitch_min_fraction)
            if (snitch_id is None or snitch_id not in current) and candidates.size:
                if snitch_last is None:
                    pick = candidates[np.argmax(gold[candidates])]
                else:
                    seen = pixel_to_screen(cents[candidates], (H, W))
                    pick = candidates[np.argmin(np.linalg.norm(seen - snitch_last, axis=1))]
                snitch_id = matched_det[int(pick)].ident
            alive.append(current)
            if snitch_id is not None and snitch_id in current:
                snitch_last = current[snitch_id]
            if snitch_last is not None:
                snitch[t] = snitch_last

        positions = np.full((T, next_id, 2), np.nan)
        for t, current in enumerate(alive):
            for ident, pos in current.items():
                positions[t, ident] = pos
        return ClassicalResult(labels=labels, positions=positions, snitch=snitch, tracks=next_id)
