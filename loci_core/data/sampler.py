"""CATER's scene sampler: objects, placement, actions, containment and scheduling (docs/cater.md).

The rules, in short:
- N ~ U{5..10} objects: object 0 the gold metal snitch (0.3), object 1 a medium cone, object 2 a large
  cone, the rest uniform over shape x size x colour x material; placed uniformly in [-3, 3]^2 with a 0.25
  surface gap and CLEVR's 0.4 camera-axis margin (50 tries per object, then restart).
- Objects form stacks (a cone with what it covers); a stack slides as a unit or its top cone is
  pick-placed off. Single objects slide, pick-place, or rotate (cube, cylinder, snitch).
- The video is filled segment by segment while the segment start is <= last frame - 30. Each segment is,
  with probability 1/2, a contain attempt (up to 100 random stack pairs; an empty cone strictly larger than
  the covered stack's top, which must be a cone, sphere or snitch; the landing spot must be clear), after
  which every other stack acts; otherwise every stack acts. A failed attempt re-draws the segment type.
- Each action lasts U{20..30} frames, starts U{0..10} after the segment start, and is clipped to the last
  frame. Targets are re-sampled (up to 100 tries, else no-op) until the action's whole future trajectory
  keeps every other object 0.25 away (bounding spheres of radius `sized`, 3-D centre distance).
Randomness comes only from the numpy Generator passed in, so a seed fixes the scene.
"""

from __future__ import annotations

import numpy as np

from loci_core.data import scene as S
from loci_core.data.camera import CATER_MATRIX, ProjectiveCamera
from loci_core.data.trajectory import hold_path, pick_place_path, slide_path

# Approximate lamp positions of CLEVR's base scene (key, fill, back); each is jittered per video.
LAMP_POSITIONS = np.array([[6.45, -2.91, 4.26], [-4.67, -4.01, 3.01], [-1.17, 2.65, 5.82]])


def _camera_ground_axes() -> tuple[np.ndarray, np.ndarray]:
    """Unit ground vectors of the nominal camera's right and backward axes (CLEVR's margin directions)."""
    _, view = ProjectiveCamera(CATER_MATRIX).decompose()
    axes = []
    for row in (view[0, :3], view[2, :3]):
        v = np.array([row[0], row[1]])
        axes.append(v / np.linalg.norm(v))
    return axes[0], axes[1]


def _random_object(rng: np.random.Generator, index: int, counts: dict[str, int]):
    if index == 0:
        shape, size, radius, material = "spl", "small", S.SNITCH_SIZE, "metal"
        color, rgb = S.SNITCH_COLOR
    else:
        if index == 1:
            shape, size = "cone", "medium"
        elif index == 2:
            shape, size = "cone", "large"
        else:
            size = list(S.SIZES)[rng.integers(len(S.SIZES))]
            shape = S.SHAPES[rng.integers(len(S.SHAPES))]
        color = list(S.COLORS)[rng.integers(len(S.COLORS))]
        rgb = S.COLORS[color]
        material = S.MATERIALS[rng.integers(len(S.MATERIALS))]
        radius = S.SIZES[size]
    name = S.BLENDER_NAMES[shape]
    instance = f"{name}_{counts.get(name, 0)}"
    counts[name] = counts.get(name, 0) + 1
    return dict(
        shape=shape, size=size, radius=radius, material=material, color=color, rgb=rgb, instance=instance
    )


def place_objects(rng: np.random.Generator, count: int) -> tuple[list[S.SceneObject], np.ndarray]:
    """CLEVR-style placement: returns the objects and their (K, 3) initial centres."""
    right, back = _camera_ground_axes()
    while True:
        objects, centres, counts = [], [], {}
        for i in range(count):
            spec = _random_object(rng, i, counts)
            r = spec["radius"]
            for _ in range(S.MAX_PLACEMENT_TRIES):
                x, y = rng.uniform(-S.TABLE_HALF, S.TABLE_HALF, size=2)
                ok = True
                for (xx, yy, _), other in zip(centres, objects):
                    d = np.array([x - xx, y - yy])
                    if np.linalg.norm(d) - r - other.sized < S.MIN_DIST:
                        ok = False
                        break
                    # CLEVR rejects 0 < margin < 0.4 along left/right/front/behind, i.e. |margin| in (0, 0.4)
                    if any(0 < abs(d @ axis) < S.MARGIN for axis in (right, back)):
                        ok = False
                        break
                if ok:
                    break
            else:
                break  # restart the whole layout
            sized = r / np.sqrt(2) if spec["shape"] == "cube" else r
            yaw = 360.0 * rng.random()
            objects.append(
                S.SceneObject(
                    shape=spec["shape"],
                    size=spec["size"],
                    sized=float(sized),
                    material=spec["material"],
                    color=spec["color"],
                    rgb=tuple(spec["rgb"]),
                    instance=spec["instance"],
                    rotation=float(yaw),
                )
            )
            centres.append((float(x), float(y), float(sized)))
        if len(objects) == count:
            return objects, np.array(centres)


class _Planner:
    """Mutable state of the action sampler: stacks (top first), per-frame locations and the movement log."""

    def __init__(self, rng, objects, centres, num_frames):
        self.rng = rng
        self.objects = objects
        self.sized = np.array([o.sized for o in objects])
        self.last = num_frames - 1
        self.loc = np.repeat(centres[:, None, :], num_frames, axis=1)  # (K, T, 3)
        self.stacks: list[list[int]] = [[k] for k in range(len(objects))]
        self.log: dict[str, list[S.Movement]] = {o.instance: [] for o in objects}

    # ---- helpers ------------------------------------------------------------------------------
    def _window(self, segment_start: int) -> tuple[int, int]:
        """(start, end) frames of one action in a segment: U{20..30} long, starting U{0..10} late."""
        duration = int(self.rng.integers(S.MOVE_MIN, S.MOVE_MAX + 1))
        start = segment_start + int(self.rng.integers(0, S.START_JITTER + 1))
        return start, min(start + duration, self.last)

    def _clear(self, k: int, path: np.ndarray, start: int, others: list[int]) -> bool:
        """Does object k following `path` from `start` (then holding its end) keep the gap to `others`?"""
        if not others:
            return True
        # Everything planned so far ends within this segment (by start + MOVE_MAX + START_JITTER) and then
        # holds still, so checking up to one frame past that horizon covers the whole future.
        stop = min(self.last + 1, start + S.MOVE_MAX + S.START_JITTER + 2)
        future = np.concatenate([path, np.repeat(path[-1:], max(stop - start - len(path), 0), axis=0)])
        future = future[: stop - start]
        other_loc = self.loc[others, start:stop]  # (n, F, 3)
        dist = np.linalg.norm(other_loc - future[None], axis=-1)  # (n, F)
        return bool((dist - self.sized[k] - self.sized[others][:, None] >= S.MIN_DIST).all())

    def _apply(self, k: int, path: np.ndarray, start: int, end: int) -> None:
        self.loc[k, start : end + 1] = path
        self.loc[k, end:] = path[-1]

    def _record(self, k: int, action: str, other: str | None, start: int, end: int) -> None:
        self.log[self.objects[k].instance].append(S.Movement(action, other, start, end))

    # ---- one stack acts ---------------------------------------------------------------------------
    def _act(self, stack: list[int], start: int, end: int) -> bool:
        """Give one stack an action; returns True when the stack splits (its top cone was lifted off)."""
        top = stack[0]
        if len(stack) > 1:
            choices = [S.SLIDE, "split"]
        elif self.objects[top].shape in S.ROTATABLE:
            choices = [S.SLIDE, S.PICK_PLACE, S.ROTATE]
        else:
            choices = [S.SLIDE, S.PICK_PLACE]
        members = set(stack)
        others = [k for k in range(len(self.objects)) if k not in members]
        for _ in range(S.MAX_TRIALS + 1):
            choice = choices[self.rng.integers(len(choices))]
            if choice == S.ROTATE:
                paths = {top: hold_path(self.loc[top, start], start, end)}
            else:
                target = self.rng.uniform(-S.TABLE_HALF, S.TABLE_HALF, size=2)
                if choice == S.SLIDE:
                    paths = {k: slide_path(self.loc[k, start], target, start, end) for k in stack}
                else:  # pick-place of a single object, or of the top cone of a stack ("split")
                    paths = {top: pick_place_path(self.loc[top, start], target, start, end)}
                    paths.update({k: hold_path(self.loc[k, start], start, end) for k in stack[1:]})
            clean = all(self._clear(k, p, start, others) for k, p in paths.items())
            if choice == "split":  # the lifted cone must also land clear of the stack it leaves
                rest = stack[1]
                gap = np.linalg.norm(paths[top][-1] - paths[rest][-1]) - self.sized[top] - self.sized[rest]
                clean = clean and gap >= S.MIN_DIST
            if clean:
                break
        else:
            for k in stack:
                self._record(k, S.NO_OP, None, start, end)
            return False
        for k, p in paths.items():
            self._apply(k, p, start, end)
        if choice == "split":
            self._record(top, S.PICK_PLACE, None, start, end)
            for k in stack[1:]:
                self._record(k, S.NO_OP, None, start, end)
            return True
        action = S.PICK_PLACE if choice == S.PICK_PLACE else choice
        for k in stack:
            self._record(k, action, None, start, end)
        return False

    def every_stack_acts(self, segment_start: int, skip: tuple[int, ...] = ()) -> int:
        """All stacks (but `skip`, indices into self.stacks) act; returns the last end frame."""
        order = [i for i in self.rng.permutation(len(self.stacks)) if i not in skip]
        last_end, split = -1, []
        for i in order:
            start, end = self._window(segment_start)
            last_end = max(last_end, end)
            if self._act(self.stacks[i], start, end):
                split.append(i)
        new_stacks = []
        for i, stack in enumerate(self.stacks):
            new_stacks.extend([[stack[0]], stack[1:]] if i in split else [stack])
        self.stacks = new_stacks
        return last_end

    def contain_attempt(self, segment_start: int) -> int | None:
        """Try to cover one stack with an empty, larger cone; on success every other stack acts too."""
        for _ in range(S.MAX_TRIALS):
            i1, i2 = (int(i) for i in self.rng.choice(len(self.stacks), size=2, replace=False))
            start, end = self._window(segment_start)
            cone, covered = self.stacks[i1][0], self.stacks[i2][0]
            if not (
                len(self.stacks[i1]) == 1
                and self.objects[cone].shape == "cone"
                and self.sized[cone] > self.sized[covered]
                and self.objects[covered].shape in S.CONTAINABLE
            ):
                continue
            landing = np.array([*self.loc[covered, start, :2], self.loc[cone, start, 2]])
            tops = [s[0] for j, s in enumerate(self.stacks) if j not in (i1, i2)]
            if tops:
                dist = np.linalg.norm(self.loc[tops, end] - landing[None], axis=-1)
                if (dist - self.sized[cone] - self.sized[tops] < S.MIN_DIST).any():
                    continue
            path = pick_place_path(self.loc[cone, start], landing[:2], start, end)
            self._apply(cone, path, start, end)
            self._record(cone, S.CONTAIN, self.objects[covered].instance, start, end)
            merged = self.stacks[i1] + self.stacks[i2]
            self.stacks = [s for j, s in enumerate(self.stacks) if j not in (i1, i2)] + [merged]
            others_end = self.every_stack_acts(segment_start, skip=(len(self.stacks) - 1,))
            return max(end, others_end)
        return None


def sample_motion(
    rng: np.random.Generator, objects: list[S.SceneObject], centres: np.ndarray, num_frames: int
) -> tuple[np.ndarray, dict[str, list[S.Movement]]]:
    """Sample the movement log and per-frame locations ((K, T, 3)) for placed objects."""
    planner = _Planner(rng, objects, centres, num_frames)
    segment = 0
    while segment <= planner.last - S.MOVE_MAX:
        if rng.random() < 0.5:
            end = planner.contain_attempt(segment)
            if end is None:
                continue  # failed attempt: draw the segment type again
        else:
            end = planner.every_stack_acts(segment)
        segment = end + 1
    return planner.loc, planner.log


def sample_cameras(rng: np.random.Generator, num_frames: int, jitter: bool, moving: bool) -> np.ndarray:
    """(T, 4, 4) camera matrices: CATER's camera moved by the per-video jitter; optionally CATER's moving
    camera (keyframes every 30 frames: x or y jumps to +-10, z to 8/10/12, always looking at the origin;
    positions between keyframes are eased with a smoothstep, like Blender's default Bezier keyframes)."""
    base = ProjectiveCamera(CATER_MATRIX)
    delta = rng.uniform(-S.CAMERA_JITTER, S.CAMERA_JITTER, size=3) if jitter else np.zeros(3)
    start = base.translated(delta)
    if not moving:
        return np.repeat(start.matrix[None], num_frames, axis=0)
    intrinsics, _ = base.decompose()
    last = num_frames - 1
    keys = [(0, start.centre())]
    for frame in range(S.CAMERA_SHIFT_INTERVAL, last, S.CAMERA_SHIFT_INTERVAL):
        pos = keys[-1][1].copy()
        axis = 0 if rng.random() > 0.5 else 1
        pos[axis] = S.CAMERA_MOVE_XY * (1 if rng.random() < 0.5 else -1)
        pos[2] = S.CAMERA_MOVE_Z[rng.integers(len(S.CAMERA_MOVE_Z))]
        keys.append((frame, pos))
    keys.append((last, keys[-1][1]))
    cams = np.empty((num_frames, 4, 4))
    for (f0, p0), (f1, p1) in zip(keys[:-1], keys[1:]):
        for f in range(f0, f1 + 1):
            u = (f - f0) / max(f1 - f0, 1)
            u = u * u * (3 - 2 * u)
            cams[f] = ProjectiveCamera.look_at(p0 * (1 - u) + p1 * u, np.zeros(3), intrinsics).matrix
    if last == 0:
        cams[0] = ProjectiveCamera.look_at(start.centre(), np.zeros(3), intrinsics).matrix
    return cams


def sample_lights(rng: np.random.Generator) -> S.Lights:
    pos = LAMP_POSITIONS + rng.uniform(-S.LIGHT_JITTER, S.LIGHT_JITTER, size=LAMP_POSITIONS.shape)
    dirs = pos / np.linalg.norm(pos, axis=1, keepdims=True)
    return S.Lights(key=dirs[0], fill=dirs[1], back=dirs[2])


def sample_scene(
    rng: np.random.Generator,
    num_frames: int = S.FRAMES,
    jitter: bool = True,
    moving_camera: bool = False,
    motion: bool = True,
) -> S.Scene:
    """One CATER-style scene. `motion=False` skips the actions (a static layout)."""
    count = int(rng.integers(S.MIN_OBJECTS, S.MAX_OBJECTS + 1))
    objects, centres = place_objects(rng, count)
    cameras = sample_cameras(rng, num_frames, jitter, moving_camera)
    lights = sample_lights(rng)
    if motion:
        locations, movements = sample_motion(rng, objects, centres, num_frames)
    else:
        locations = np.repeat(centres[:, None, :], num_frames, axis=1)
        movements = {o.instance: [] for o in objects}
    return S.Scene(objects, movements, locations, cameras, lights, moving_camera)


def video_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of video `index` of a data set with seed `seed` (independent of worker count/order)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
