"""OnlineTracker: one camera stream in, tracked entities out (the engine behind the ROS node).

A Loci checkpoint runs frame by frame with its state carried between calls. Each slot that has bound to
something becomes an `Entity` with a stable id (the slot index), its position and extent in the pixels of
the *input* image, its mask, and whether it is currently hidden (visible before, not now): Loci keeps
tracking objects behind or inside others, so hidden entities still have a position.

Background: the model renders the static background from an image. We take, in this order, the
`background` given to the constructor, the training background stored in the checkpoint, and else the first
frame after each `reset()`. The first-frame fallback is what a static robot camera has without a recorded
empty scene; objects standing still in that first frame then count as background until they move.

Hidden entities can follow their carrier (`follow_carriers`, off by default; loci_core/tracking/carrier.py): when an
entity goes hidden next to a visible one (a cone lowered over it, an object passing in front), its published
position moves with that entity until it is seen again. Off, a hidden entity is where the model's slot is,
which for the released model stays nearer a carried object (`loci eval` measures both).

Timing: Loci predicts the next frame, so the masks and positions reported for frame t are the model's
estimates produced while processing frame t (its prediction for t+1). That is what the original uses for
read-outs too, and it is one frame ahead of the image rather than one frame behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from loci_core.data.camera import CATER_Z0, PinholeCamera, ProjectiveCamera, pixel_to_screen
from loci_core.device import resolve_device
from loci_core.tracking import carrier

# A gestalt code entry counts as bit 1 above this (the bottleneck pushes entries towards 0 or 1).
GESTALT_BIT_THRESHOLD = 0.5
# While an entity is hidden and has never had a mask box, its box spans this many Gaussian sigmas each way.
HIDDEN_BOX_SIGMAS = 2.0


@dataclass
class Entity:
    """One tracked slot, in the pixel frame of the input image (x right, y down, like sensor_msgs/Image)."""

    id: int
    """the slot index: stable for the whole stream (until `reset`), also while hidden"""
    position_px: tuple[float, float]
    """(x, y) centre of the slot's position in input pixels, pixel (col j, row i) centred at (j, i)"""
    size_px: float
    """the slot's size as the standard deviation of its Gaussian position map, in input pixels"""
    bbox: tuple[float, float, float, float]
    """(x_min, y_min, x_max, y_max) in input pixels, max exclusive (pixel j spans [j, j + 1), so a box's
    centre lies half a pixel right of and below `position_px` of the same point): the mask's extent when
    visible; when hidden, the last visible box size (or +-HIDDEN_BOX_SIGMAS sigma) around the tracked
    position"""
    visibility: float
    """0..1, the slot's largest mask value in the model's current masks: near 1 where it clearly owns pixels,
    near 0 when it is occluded or inside another object"""
    hidden: bool
    """visible (visibility >= visibility_threshold) in an earlier frame of this stream, not now"""
    priority: float
    """depth order: larger is in front"""
    gestalt: np.ndarray
    """(G,) bool: the binarised "what" code"""
    mask: np.ndarray
    """(H, W) bool at input resolution; all False while hidden"""
    ground_xy: tuple[float, float] | None = None
    """(x, y) on the ground plane of the camera model, if the tracker has one (None also where the slot's
    ray misses the plane, e.g. above a pinhole camera's horizon)"""
    position_norm: tuple[float, float] = field(default=(0.0, 0.0))
    """(p_row, p_col) in [-1, 1] of `position_px` in the model's screen coordinates (-1 = top / left)"""
    carrier: int | None = None
    """while hidden: the id of the entity it moves with (see `OnlineTracker`), else None"""

    @property
    def bbox_center_size(self) -> tuple[float, float, float, float]:
        """(centre x, centre y, width, height) of `bbox`, as vision_msgs/BoundingBox2D wants it."""
        x0, y0, x1, y1 = self.bbox
        return (x0 + x1) / 2.0, (y0 + y1) / 2.0, x1 - x0, y1 - y0


@dataclass
class TrackedFrame:
    """What `OnlineTracker.step` returns for one frame."""

    entities: list[Entity]
    """the slots that have bound to something, visible or hidden"""
    labels: np.ndarray
    """(H, W) uint8 label image at input resolution: 0 = background, k+1 = entity k (`label_image` of
    `entities`, built once by the tracker)"""


def label_image(entities, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 label image: 0 = background, k+1 = entity k (entity masks are disjoint)."""
    labels = np.zeros(shape, np.uint8)
    for e in entities:
        if e.id + 1 > 255:
            raise ValueError(f"entity id {e.id} does not fit a mono8 label image (ids 0..254)")
        if e.mask.shape != tuple(shape):
            raise ValueError(f"entity {e.id} mask has shape {e.mask.shape}, expected {tuple(shape)}")
        labels[e.mask] = e.id + 1
    return labels


class OnlineTracker:
    """Runs a Loci model over one stream of uint8 RGB frames of any size.

    `step(image)` resizes the frame to the model's resolution, advances the model state by one frame and
    returns the entities mapped back to the input's pixels, with their label image. `reset()` starts a new
    stream (a new scene).
    """

    def __init__(self, model, cfg, *, device: str | torch.device = "cpu",
                 background: np.ndarray | None = None, camera: ProjectiveCamera | PinholeCamera | None = None,
                 ground_height: float | None = None,
                 visibility_threshold: float = 0.5, warmup_calls: int | None = None, seed: int = 0,
                 compile_model: bool = False, follow_carriers: bool = False, carrier_radius: float = 0.25):
        device = resolve_device(device)
        self.model = model.to(device).eval()
        if compile_model:  # Loci.compile_inference: about a minute on a CPU (seconds from TorchInductor's cache)
            self.model.compile_inference(batch_size=1)
        self.cfg = cfg
        self.device = device
        self.camera = camera
        self.ground_height = default_ground_height(camera) if ground_height is None else float(ground_height)
        self.visibility_threshold = float(visibility_threshold)
        self.follow_carriers = bool(follow_carriers)
        self.carrier_radius = float(carrier_radius)  # screen units: the frame spans [-1, 1] each way
        self.warmup_calls = cfg.train.warmup_calls if warmup_calls is None else int(warmup_calls)
        self.seed = int(seed)
        self.resolution: tuple[int, int] = tuple(model.resolution)
        self.num_slots: int = model.num_slots
        self._fixed_background = None if background is None else self._to_model_tensor(background)
        self.reset()

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", camera=None, *,
                        level: int | None = None, background: np.ndarray | None = None, **kwargs):
        """Load a checkpoint (`loci_core.model.checkpoint.load_model`); its stored background is used if present."""
        from loci_core.model.checkpoint import load_model

        device = resolve_device(device)
        model, cfg, ckpt = load_model(path, device=device, level=level)
        if background is None and ckpt.get("background") is not None:
            background = ckpt["background"]
        return cls(model, cfg, device=device, background=background, camera=camera, **kwargs)

    @property
    def background(self) -> torch.Tensor | None:
        """(1, 3, h, w) background in use (model resolution); None before a first-frame background exists."""
        return self._background

    # ------------------------------------------------------------------------------------------ stream

    def reset(self) -> None:
        """Forget the stream: the next frame starts a new sequence (with warm-up calls)."""
        self._state = None
        self._background = self._fixed_background
        self._generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self._was_visible = np.zeros(self.num_slots, bool)
        self._carriers = carrier.CarrierState.initial(self.num_slots)
        self._last_box_size = np.full((self.num_slots, 2), np.nan)  # (width, height) in input pixels
        self._input_shape = None
        self.frames = 0

    @torch.inference_mode()
    def step(self, image: np.ndarray) -> TrackedFrame:
        """Track one (H, W, 3) uint8 RGB frame: the entities that have bound to something and their labels."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"OnlineTracker.step needs an (H, W, 3) uint8 RGB image, got "
                             f"{image.shape} {image.dtype}")
        frame = self._to_model_tensor(image)  # (1, 3, h, w)
        if self._state is None:
            if self._background is None:
                self._background = frame
            self._state = self.model.initial_state(1, self.device)
            for _ in range(self.warmup_calls):
                _, self._state = self._model_step(frame)
        out, self._state = self._model_step(frame)
        self.frames += 1
        return self._tracked(out, image.shape[:2])

    # ------------------------------------------------------------------------------------------ helpers

    def _model_step(self, frame: torch.Tensor):
        return self.model.step(frame, self._state, self._background, generator=self._generator)

    def _to_model_tensor(self, image) -> torch.Tensor:
        """uint8 (H, W, 3) RGB array or float (3, H, W) tensor in [0, 1] -> (1, 3, h, w) float on device."""
        h, w = self.resolution
        if isinstance(image, torch.Tensor):
            t = image.detach().to(self.device, torch.float32)
            t = t[None] if t.ndim == 3 else t
            if tuple(t.shape[-2:]) != (h, w):
                t = torch.nn.functional.interpolate(t, size=(h, w), mode="area")
            return t.contiguous()
        img = np.asarray(image)
        if img.shape[:2] != (h, w):
            shrink = img.shape[0] >= h and img.shape[1] >= w
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        t = torch.from_numpy(np.ascontiguousarray(img)).to(self.device)
        return (t.permute(2, 0, 1)[None].float() / 255.0).contiguous()

    def _tracked(self, out, input_shape: tuple[int, int]) -> TrackedFrame:
        H, W = input_shape
        h, w = self.resolution
        sx, sy = W / w, H / h
        position = out.position[0].float().cpu().numpy()          # (O, 3): p_row, p_col, s
        visibility = out.visibility[0].float().clamp(0, 1).cpu().numpy()  # (O,)
        priority = out.priority[0].float().cpu().numpy()          # (O,)
        gestalt = (out.gestalt[0] > GESTALT_BIT_THRESHOLD).cpu().numpy()  # (O, G)

        visible = visibility >= self.visibility_threshold          # (O,)
        hidden = ~visible & self._was_visible
        self._was_visible |= visible

        # Per-pixel winner among the slots and the background (index O), at input resolution: resizing the
        # soft masks first keeps edges smooth when the input is larger than the model. Invisible slots' pixels
        # go to the background, so labels, masks and the hidden flag agree.
        winner = _upsampled_argmax(out.masks[0].float().cpu().numpy(), (H, W))  # (H, W) uint8
        to_label = np.zeros(256, np.uint8)
        to_label[:self.num_slots] = np.where(visible, np.arange(1, self.num_slots + 1), 0)
        labels = cv2.LUT(winner, to_label)                                     # (H, W) uint8
        boxes, has_pixels = _label_boxes(labels, self.num_slots)   # (O, 4), (O,)

        # Slot centre: model pixel coordinate of the Gaussian's grid, mapped through the resize.
        p_row, p_col, s = position[:, 0].clip(-1, 1), position[:, 1].clip(-1, 1), position[:, 2].clip(0, 1)
        carried_by = np.full(self.num_slots, carrier.NO_CARRIER)
        if self.follow_carriers:
            followed, self._carriers = carrier.follow(self._carriers, np.stack([p_row, p_col], 1), visible,
                                                      self.carrier_radius)
            p_row, p_col = followed[:, 0].clip(-1, 1), followed[:, 1].clip(-1, 1)
            carried_by = self._carriers.carrier
        x = ((p_col + 1) / 2 * (w - 1) + 0.5) * sx - 0.5
        y = ((p_row + 1) / 2 * (h - 1) + 0.5) * sy - 0.5
        sigma_model = (1 + max(h, w) * s) / 2                      # Gaussian std in model pixels
        sigma_x, sigma_y = sigma_model * sx, sigma_model * sy

        if self._input_shape != (H, W):  # remembered box sizes are in the pixels of another input size
            self._last_box_size[:] = np.nan
            self._input_shape = (H, W)
        box_size = boxes[:, 2:] - boxes[:, :2]
        self._last_box_size[has_pixels] = box_size[has_pixels]
        fallback = np.stack([2 * HIDDEN_BOX_SIGMAS * sigma_x, 2 * HIDDEN_BOX_SIGMAS * sigma_y], axis=1)
        half = np.where(np.isnan(self._last_box_size), fallback, self._last_box_size) / 2
        cx, cy = x + 0.5, y + 0.5  # box edges count pixel j as [j, j + 1), positions put its centre at j
        tracked_boxes = np.stack([cx - half[:, 0], cy - half[:, 1], cx + half[:, 0], cy + half[:, 1]], axis=1)
        boxes = np.where(has_pixels[:, None], boxes, tracked_boxes)

        ground = self._ground_points(x, y, input_shape)

        entities = []
        for k in np.flatnonzero(self._was_visible):  # bound slots only; cheap per-slot bookkeeping
            entities.append(Entity(
                id=int(k), position_px=(float(x[k]), float(y[k])),
                size_px=float(np.sqrt(sigma_x[k] * sigma_y[k])),
                bbox=tuple(float(v) for v in boxes[k]), visibility=float(visibility[k]),
                hidden=bool(hidden[k]), priority=float(priority[k]), gestalt=gestalt[k],
                mask=labels == k + 1,
                ground_xy=tuple(map(float, ground[k])) if ground is not None and np.isfinite(ground[k]).all()
                else None,
                position_norm=(float(p_row[k]), float(p_col[k])),
                carrier=int(carried_by[k]) if carried_by[k] != carrier.NO_CARRIER else None))
        return TrackedFrame(entities, labels)

    def _ground_points(self, x: np.ndarray, y: np.ndarray, input_shape: tuple[int, int]) -> np.ndarray | None:
        """(O, 2) ground-plane (x, y) of the slot centres at input pixels (x, y), or None without a camera."""
        camera = self.camera
        if camera is None:
            return None
        if isinstance(camera, PinholeCamera):
            # K belongs to the camera's own image size; the input may have been scaled since.
            u = (x + 0.5) * camera.width / input_shape[1] - 0.5
            v = (y + 0.5) * camera.height / input_shape[0] - 0.5
            points = camera.pixel_to_ground(np.stack([u, v], axis=1), self.ground_height)
        elif isinstance(camera, ProjectiveCamera):
            screen = pixel_to_screen(np.stack([y, x], axis=1), input_shape)
            points = camera.screen_to_ground(screen, self.ground_height)
        else:
            raise TypeError(f"camera must be a loci_core.data.camera ProjectiveCamera or PinholeCamera, "
                            f"got {camera!r}")
        return points[:, :2]


def default_ground_height(camera) -> float:
    """The plane ground positions are reported on: CATER's snitch-centre plane for a projective (CATER-style)
    camera, where Loci's evaluation projects to; the floor (z = 0) for a pinhole camera."""
    return CATER_Z0 if isinstance(camera, ProjectiveCamera) else 0.0


def _upsampled_argmax(planes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Index of the largest of C (h, w) float planes after bilinear resizing to (H, W): (H, W) uint8.

    A running maximum over the C planes (C = slots + 1, a handful), in OpenCV's vectorised kernels: faster
    than numpy's comparisons, and numpy's argmax over a short last axis is slower still."""
    H, W = shape

    def resized(plane):
        return plane if plane.shape == (H, W) else cv2.resize(plane, (W, H), interpolation=cv2.INTER_LINEAR)

    best = resized(planes[0]).copy()
    winner = np.zeros((H, W), np.uint8)
    for k in range(1, len(planes)):
        plane = resized(planes[k])
        cv2.copyTo(np.full_like(winner, k), cv2.compare(plane, best, cv2.CMP_GT), winner)  # k where it wins
        cv2.max(best, plane, dst=best)
    return winner


def _label_boxes(labels: np.ndarray, num_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Bounding boxes (x0, y0, x1, y1) (max exclusive) of labels 1..num_slots, vectorised over slots.

    Returns boxes (O, 4) float64 and whether each label has any pixel (O,)."""
    onehot = labels[None] == np.arange(1, num_slots + 1, dtype=np.uint8)[:, None, None]  # (O, H, W)
    rows, cols = onehot.any(axis=2), onehot.any(axis=1)                                 # (O, H), (O, W)
    has = rows.any(axis=1)
    H, W = labels.shape
    y0 = rows.argmax(axis=1)
    y1 = H - rows[:, ::-1].argmax(axis=1)
    x0 = cols.argmax(axis=1)
    x1 = W - cols[:, ::-1].argmax(axis=1)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.float64), has
