"""What a CATER scene is: objects, their movement log and per-frame locations, camera and lights.

The constants are CATER's (docs/cater.md; CATER's generate/data/properties.json and actions.py); the
field names follow CATER's scene JSON so the writer and reader map one to one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# ---- CATER generator constants -----------------------------------------------------------------------
FRAMES = 301  # frames 0..300 are rendered
FPS = 24
IMAGE_SIZE = (240, 320)  # (H, W) of CATER's videos
TABLE_HALF = 3.0  # object targets and initial positions are uniform in [-3, 3]^2
MIN_OBJECTS, MAX_OBJECTS = 5, 10
MIN_DIST = 0.25  # minimum surface gap between objects (bounding spheres of radius `sized`), at every frame
MARGIN = 0.4  # CLEVR's initial-placement margin along the camera-aligned ground axes
MAX_PLACEMENT_TRIES = 50  # per object, before the whole layout is restarted
MAX_TRIALS = 100  # target re-samplings per action (else no-op) and pair tries per contain attempt
PICK_HEIGHT = 2.0  # pick-place lifts by this much
PICK_LIFT_END, PICK_MOVE_END = 0.2, 0.8  # pick-place phases: lift 20 %, move 60 %, lower 20 %
MOVE_MIN, MOVE_MAX = 20, 30  # action duration in frames, uniform integer
START_JITTER = 10  # actions start U{0..10} frames after their segment's start
ROTATE_ANGLE = np.pi / 2  # rotate: 90 degrees about the object's horizontal (local y) axis
CAMERA_JITTER = 0.5  # per-axis uniform jitter of the camera position (also in "static" CATER)
LIGHT_JITTER = 1.0  # per-axis uniform jitter of each lamp position
CAMERA_SHIFT_INTERVAL = 30  # moving camera: a new keyframe every 30 frames
CAMERA_MOVE_XY = 10.0  # ... where x or y (never both) jumps to +-10
CAMERA_MOVE_Z = (8.0, 10.0, 12.0)  # ... and z is one of these

SIZES = {"small": 0.25, "medium": 0.5, "large": 0.75}
SNITCH_SIZE = 0.3  # "slightly larger than small"
SHAPES = ("cube", "sphere", "cylinder", "cone")  # random objects; the snitch's shape is "spl"
ALL_SHAPES = SHAPES + ("spl",)
MATERIALS = ("rubber", "metal")
# Blender object names, used for the `instance` field (<name>_<count>) as in CATER.
BLENDER_NAMES = {
    "cube": "SmoothCube_v2",
    "sphere": "Sphere",
    "cylinder": "SmoothCylinder-Short",
    "cone": "Cone",
    "spl": "Spl",
}
COLORS = {  # CLEVR's 8 colours (0..255 RGB); yellow is a deliberate distractor for the gold snitch
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
SNITCH_COLOR = ("gold", (255, 215, 0))
CONTAINABLE = ("cone", "sphere", "spl")  # shapes that may be covered by a cone (cubes/cylinders never)
ROTATABLE = ("cube", "cylinder", "spl")

# Movement log actions (CATER's function names)
SLIDE, PICK_PLACE, ROTATE, CONTAIN, NO_OP = "_slide", "_pick_place", "_rotate", "_contain", "_no_op"
ACTIONS = (SLIDE, PICK_PLACE, ROTATE, CONTAIN, NO_OP)

# Per-frame object states (ground_truth/<name>.npz `states`)
VISIBLE, OCCLUDED, CONTAINED, CARRIED = 0, 1, 2, 3
STATE_NAMES = ("visible", "occluded", "contained", "carried")
# An object that is not contained counts as occluded when less than this fraction of its unoccluded pixels
# is visible (the fraction itself is stored too, so users can re-threshold).
OCCLUDED_BELOW = 0.25


@dataclass
class SceneObject:
    shape: str  # one of ALL_SHAPES
    size: str  # small | medium | large
    sized: float  # CATER's radius (cubes: size / sqrt(2)); rest height of the centre and collision radius
    material: str  # rubber | metal
    color: str
    rgb: tuple[int, int, int]  # 0..255
    instance: str  # e.g. "Spl_0", "Cone_1"
    rotation: float  # initial yaw in degrees


@dataclass
class Movement:
    action: str  # one of ACTIONS
    other: str | None  # the covered instance for _contain
    start: int
    end: int

    def as_list(self) -> list:
        return [self.action, self.other, self.start, self.end]


@dataclass
class Lights:
    """Directions *towards* three lamps (unit vectors) and their intensities."""

    key: np.ndarray
    fill: np.ndarray
    back: np.ndarray
    intensities: tuple[float, float, float] = (1.0, 0.35, 0.3)


@dataclass
class Scene:
    objects: list[SceneObject]
    movements: dict[str, list[Movement]]
    locations: np.ndarray  # (K, T, 3) object centres per frame
    cameras: np.ndarray  # (T, 4, 4) camera matrix per frame (all equal for a static camera)
    lights: Lights | None = None
    moving_camera: bool = False
    extras: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return self.locations.shape[1]

    @property
    def snitch_index(self) -> int:
        return next(k for k, o in enumerate(self.objects) if o.shape == "spl")

    def index_of(self, instance: str) -> int:
        for k, o in enumerate(self.objects):
            if o.instance == instance:
                return k
        raise KeyError(instance)
