"""Per-frame motion of the CATER actions, and what the movement log implies per frame.

Positions are interpolated linearly between keyframes as CATER records them in `locations`:
slide = start -> target; pick-place = lift by 2 (first 20 % of the frames), move (next 60 %), lower (last
20 %), with CATER's integer phase boundaries; rotate = 90 degrees about the object's local y axis.

Containment is derived from the log the same way for real CATER and generated scenes. It is *physical*:
an object counts as contained from the frame its cone has come down (end of `_contain`) until the frame
that cone starts to lift again (start of its next `_pick_place`), because only then is it hidden. (CATER's
own log marks containment from the start of the contain action.)
"""

from __future__ import annotations

import numpy as np

from loci_core.data.scene import (
    CONTAIN,
    PICK_HEIGHT,
    PICK_LIFT_END,
    PICK_MOVE_END,
    PICK_PLACE,
    ROTATE,
    ROTATE_ANGLE,
    Movement,
    Scene,
)


def _lerp(p0: np.ndarray, p1: np.ndarray, n: int) -> np.ndarray:
    """(n, 3) points from p0 to p1 inclusive; a single point is the destination p1."""
    if n == 1:
        return p1[None].copy()
    u = np.linspace(0.0, 1.0, n)[:, None]
    return p0[None] * (1 - u) + p1[None] * u


def slide_path(p0: np.ndarray, target_xy, start: int, end: int) -> np.ndarray:
    """(end - start + 1, 3) positions of a slide to target_xy at constant height."""
    p1 = np.array([target_xy[0], target_xy[1], p0[2]])
    return _lerp(np.asarray(p0, dtype=np.float64), p1, end - start + 1)


def pick_place_path(p0: np.ndarray, target_xy, start: int, end: int) -> np.ndarray:
    """(end - start + 1, 3) positions of a pick-place: lift, move at height, lower."""
    p0 = np.asarray(p0, dtype=np.float64)
    total = end - start + 1
    lift_end = start + int(PICK_LIFT_END * total)
    move_end = start + int(PICK_MOVE_END * total)
    up = p0 + np.array([0.0, 0.0, PICK_HEIGHT])
    lift = _lerp(p0, up, lift_end - start + 1)
    over = np.array([target_xy[0], target_xy[1], up[2]])
    move = _lerp(lift[-1], over, move_end - lift_end)
    down = _lerp(move[-1] if len(move) else lift[-1], np.array([over[0], over[1], p0[2]]), end - move_end)
    return np.concatenate([lift, move, down])[:total]


def hold_path(p0: np.ndarray, start: int, end: int) -> np.ndarray:
    return np.repeat(np.asarray(p0, dtype=np.float64)[None], end - start + 1, axis=0)


# --------------------------------------------------------------------------------------------------
def _yaw(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _pitch(angle: np.ndarray) -> np.ndarray:
    """(N,) angles -> (N, 3, 3) rotations about the y axis."""
    c, s = np.cos(angle), np.sin(angle)
    z, o = np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rotation_angles(movements: list[Movement], num_frames: int) -> np.ndarray:
    """(T,) accumulated rotate-action angle of one object per frame."""
    angle = np.zeros(num_frames)
    for m in movements:
        if m.action != ROTATE or m.start >= num_frames:
            continue
        frames = np.arange(num_frames)
        span = max(m.end - m.start, 1)
        angle += ROTATE_ANGLE * np.clip((frames - m.start) / span, 0.0, 1.0)
    return angle


def rotations(scene: Scene) -> np.ndarray:
    """(K, T, 3, 3) object-to-world rotations: initial yaw, then the rotate actions about local y."""
    out = np.empty((len(scene.objects), scene.num_frames, 3, 3))
    for k, obj in enumerate(scene.objects):
        angles = rotation_angles(scene.movements.get(obj.instance, []), scene.num_frames)
        out[k] = _yaw(obj.rotation)[None] @ _pitch(angles)
    return out


# --------------------------------------------------------------------------------------------------
def containers(scene: Scene) -> np.ndarray:
    """(K, T) index of the cone directly covering each object per frame, -1 if none (physical containment)."""
    k_count, t_count = len(scene.objects), scene.num_frames
    parent = np.full((k_count, t_count), -1, dtype=np.int64)
    index = {o.instance: k for k, o in enumerate(scene.objects)}
    for cone_name, moves in scene.movements.items():
        if cone_name not in index:
            continue
        ordered = sorted(moves, key=lambda m: m.start)
        for i, m in enumerate(ordered):
            if m.action != CONTAIN or m.other not in index:
                continue
            release = next((n.start for n in ordered[i + 1 :] if n.action == PICK_PLACE), t_count - 1)
            parent[index[m.other], m.end : release + 1] = index[cone_name]
    return parent


def containment_depth(parent: np.ndarray) -> np.ndarray:
    """(K, T) number of cones above each object (0 = not contained)."""
    depth = np.zeros(parent.shape, dtype=np.int64)
    current = parent.copy()
    cols = np.arange(parent.shape[1])[None].repeat(parent.shape[0], 0)
    while (current >= 0).any():
        depth += current >= 0
        current = np.where(current >= 0, parent[np.maximum(current, 0), cols], -1)
    return depth


def carried(parent: np.ndarray, locations: np.ndarray) -> np.ndarray:
    """(K, T) contained and moving (its container carries it) between the previous frame and this one."""
    moved = np.zeros(parent.shape, dtype=bool)
    moved[:, 1:] = np.linalg.norm(np.diff(locations, axis=1), axis=-1) > 1e-9
    return (parent >= 0) & moved
