"""What the live tracker node and `loci bag track` share: parameters, tracker, outputs, accepted frames.

loci_ros/tracker_node.py declares these parameters and `loci bag track` reads the same ones from a params
file; both then build the OnlineTracker, the output settings, the pinhole camera and the frames to track
with the functions below, so a bag tracked offline holds what the node would have published. Nothing
here imports rclpy (the offline tool runs without a ROS graph); torch is imported only by `make_tracker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loci_core.cpu_threads import WAIT_POLICIES
from loci_ros.image_conversion import ImageLayoutError, UnsupportedEncodingError, image_to_rgb8

NODE_NAME = "loci_tracker"
RELIABILITY_CHOICES = ("best_effort", "reliable", "system_default")
CAMERA_MODELS = ("none", "cater", "camera_info")
OUTPUTS = ("detections", "masks", "debug_image", "markers")


class StartupError(RuntimeError):
    """The tracker cannot be set up (bad checkpoint, background, ...); the message names the parameter."""


class FrameRejected(ValueError):
    """An input image the tracker cannot use; `key` names the kind of problem (to throttle repeats)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric parameter (the node turns it into its ParameterDescriptor range)."""

    low: float
    high: float
    step: float = 0.0
    integer: bool = False


# name -> (default, description, read_only, Range or tuple of choices or None)
PARAMETERS = {
    "autostart": (True, "configure and activate at start, as a plain node; false = a managed node that waits "
                        "in 'unconfigured' for lifecycle transitions (change_state)", True, None),
    "checkpoint": ("", "path of the Loci checkpoint (.pt) to track with", True, None),
    "model_level": (0, "resolution level to run the model at (1: latent x4, 2: latent x16); 0 = the level "
                       "stored in the checkpoint", True, Range(0, 2, 1, integer=True)),
    "device": ("cpu", "torch device of the model: cpu, cuda, cuda:N or auto (a GPU if torch sees one)", True,
               None),
    "background": ("", "background image file (PNG/JPG of the empty scene); '' = the checkpoint's training "
                       "background, or the first frame after start/reset if it has none", True, None),
    "seed": (0, "seed of the model's random slot spawning (tracking is deterministic for a seed)", True,
             Range(0, 2**31 - 1, 1, integer=True)),
    "compile_model": (False, "compile the model's step with TorchInductor (Loci.compile_inference): about "
                             "1.4x faster on a CPU, after about two minutes of compiling at start (seconds "
                             "when TorchInductor's cache has it); needs a C++ compiler", True, None),
    "torch_threads": (0, "intra-op threads of the model's CPU step; 0 = one per core this process may run on "
                         "(its CPU affinity)", True, Range(0, 1024, 1, integer=True)),
    "omp_wait_policy": ("auto", "how idle OpenMP threads wait between operators: passive (sleep, leaving the "
                                "cores to other processes), active (spin: lowest latency on cores of its own), "
                                "default (libgomp's: spin a while, then sleep), auto (passive with more than one "
                                "thread); set before torch loads, OMP_WAIT_POLICY in the environment wins", True,
                        WAIT_POLICIES),
    "visibility_threshold": (0.5, "an entity counts as visible at or above this visibility (0..1); below "
                                  "it, an entity seen before is reported as hidden", False, Range(0, 1)),
    "follow_carriers": (False, "a hidden entity is published moving with the visible entity nearest to where it "
                              "went hidden (its carrier: a cone over it, an object in front), until it is seen "
                              "again; false = the model's own position of the hidden slot", True, None),
    "carrier_radius": (0.25, "how near (model screen units: the image spans [-1, 1] each way) a visible entity "
                             "must be to carry an entity that goes hidden", True, Range(0, 2)),
    "publish_detections": (True, "publish vision_msgs/Detection2DArray on 'detections'", False, None),
    "publish_masks": (True, "publish the mono8 label image (0 = background, k+1 = entity k) on 'masks'",
                      False, None),
    "publish_debug_image": (True, "publish the rgb8 overlay on 'debug_image'", False, None),
    "publish_markers": (True, "publish the RViz MarkerArray on 'markers'", False, None),
    "input_reliability": ("best_effort", "QoS reliability of the image subscription: best_effort (sensor "
                                         "data; matches any publisher), reliable, or system_default", True,
                          RELIABILITY_CHOICES),
    "queue_frames": (0, "0 = real time: only the newest unprocessed frame is kept, older ones are dropped; "
                        "N > 0 = up to N frames wait and every one is tracked in order (replaying a bag "
                        "faster than the model runs, exact comparisons with `loci bag track`)", True,
                     Range(0, 10000, 1, integer=True)),
    "camera_model": ("none", "where ground-plane positions come from: 'cater' (the static CATER camera), "
                             "'camera_info' (pinhole K from the camera_info topic, posed by camera_height "
                             "and camera_pitch_deg over the ground), or 'none' (image positions only)", True,
                     CAMERA_MODELS),
    "ground_plane_height": (0.0, "height (z, world units) of the plane entities move on; CATER's "
                                 "snitch-centre plane is 0.3421497941017151", False, Range(-1000, 1000)),
    "camera_height": (1.0, "camera_info model: height (m) of the camera's optical centre above z = 0",
                      False, Range(0.0, 1000)),
    "camera_pitch_deg": (30.0, "camera_info model: downward tilt (degrees) of the optical axis from "
                               "horizontal", False, Range(-90, 90)),
    "frame_id": ("", "frame_id of the outputs and of camera-frame markers; '' = the input image's frame",
                 False, None),
    "ground_frame_id": ("world", "frame of markers on the ground plane (when a camera model is known)",
                        False, None),
    "marker_depth": (2.0, "distance (m) along the camera ray of markers when no ground position is known",
                     False, Range(0.01, 1000)),
    "marker_scale": (0.2, "diameter (m) of the marker spheres", False, Range(0.001, 100)),
    "marker_lifetime": (1.0, "seconds a marker stays in RViz without an update (0 = forever)", False,
                        Range(0, 3600)),
    "max_aspect_error": (0.1, "largest relative difference between the input's and the model's aspect "
                              "ratio (W/H) that is accepted; other sizes are rejected with an error", False,
                         Range(0, 10)),
    "log_period": (10.0, "seconds between log lines reporting the tracking rate", False, Range(0.5, 3600)),
}


def default_values() -> dict:
    """{name: default} of every tracker parameter."""
    return {name: spec[0] for name, spec in PARAMETERS.items()}


def value_problem(name: str, value) -> str | None:
    """Why `value` is not acceptable for the tracker parameter `name`, or None (unknown names pass).

    The node gets types and ranges checked by rclpy from its descriptors as well; the offline tool relies
    on this function alone."""
    if name not in PARAMETERS:
        return None
    default, _, _, limits = PARAMETERS[name]
    if type(value) is not type(default):
        return f"{name} must be a {type(default).__name__}, got {value!r}"
    if isinstance(limits, Range) and not limits.low <= value <= limits.high:
        return f"{name} must be within [{limits.low}, {limits.high}], got {value!r}"
    if isinstance(limits, tuple) and value not in limits:
        return f"{name} must be one of {', '.join(limits)}, got {value!r}"
    if name in ("frame_id", "ground_frame_id") and (value != value.strip() or value == "/"):
        return f"{name}: {value!r} is not a frame id"
    if name == "ground_frame_id" and not value:
        return "ground_frame_id must not be empty"
    return None


def make_tracker(values: dict):
    """The OnlineTracker for these parameter values.

    Raises StartupError naming the parameter when the checkpoint or background cannot be used."""
    from loci_core.data.camera import ProjectiveCamera
    from loci_core.data.reader import CaterFormatError, read_background
    from loci_core.device import DeviceError, resolve_device
    from loci_core.tracking.tracker import OnlineTracker

    if not values["checkpoint"]:
        raise StartupError("parameter 'checkpoint' is empty: give the path of a Loci checkpoint (.pt)")
    path = Path(values["checkpoint"]).expanduser()
    if not path.is_file():
        raise StartupError(f"checkpoint not found: {path} (parameter 'checkpoint')")
    try:
        device = resolve_device(values["device"], flag="device")
    except DeviceError as err:
        raise StartupError(f"{err} (parameter 'device')") from None
    background = None
    if values["background"]:
        try:
            background = read_background(Path(values["background"]).expanduser())
        except CaterFormatError as err:
            raise StartupError(f"{err} (parameter 'background')") from None
    camera = ProjectiveCamera.cater() if values["camera_model"] == "cater" else None
    try:
        return OnlineTracker.from_checkpoint(
            path, device=device, camera=camera, level=values["model_level"] or None,
            background=background, ground_height=values["ground_plane_height"],
            visibility_threshold=values["visibility_threshold"], seed=values["seed"],
            compile_model=values["compile_model"], follow_carriers=values["follow_carriers"],
            carrier_radius=values["carrier_radius"])
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise StartupError(f"cannot load checkpoint {path}: {err}") from err


def output_settings(values: dict):
    """How entities become messages (loci_ros.messages.OutputSettings), from the parameter values."""
    from loci_ros.messages import OutputSettings

    return OutputSettings(
        frame_id=values["frame_id"], ground_frame_id=values["ground_frame_id"],
        ground_plane_height=values["ground_plane_height"], marker_depth=values["marker_depth"],
        marker_scale=values["marker_scale"], marker_lifetime=values["marker_lifetime"])


def pinhole_camera(k, width: int, height: int, values: dict):
    """The camera_info model's PinholeCamera for a CameraInfo's K (row-major 3x3) and image size, posed by
    the camera_height and camera_pitch_deg parameters. Raises ValueError for an unusable K or size."""
    from loci_core.data.camera import PinholeCamera

    if k[0] <= 0 or k[4] <= 0 or width == 0 or height == 0:
        raise ValueError(f"camera_info without a usable K ({list(k)}) or size ({width}x{height})")
    return PinholeCamera.from_height_pitch(list(k), width, height, values["camera_height"],
                                           values["camera_pitch_deg"])


def size_problem(width: int, height: int, resolution: tuple[int, int], max_aspect_error: float) -> str | None:
    """Why an input of width x height cannot be tracked by a model of `resolution` (H, W), or None."""
    if height == 0 or width == 0:
        return f"unsupported size {width}x{height} (empty)"
    (mh, mw), aspect = resolution, width / height
    if abs(aspect / (mw / mh) - 1.0) > max_aspect_error:
        return (f"unsupported size {width}x{height} (aspect {aspect:.3f}); the model expects aspect "
                f"{mw / mh:.3f} ({mw}x{mh}) within max_aspect_error {max_aspect_error}")
    return None


def rgb_frame(msg, resolution: tuple[int, int], max_aspect_error: float) -> np.ndarray:
    """A sensor_msgs/Image (rclpy or rosbags) as the (H, W, 3) uint8 RGB frame to track.

    Raises FrameRejected for encodings, layouts and sizes the tracker cannot use; its message reads
    after "dropping " (e.g. "dropping malformed image: ...")."""
    try:
        image = image_to_rgb8(msg)
    except UnsupportedEncodingError as err:
        raise FrameRejected(f"encoding {msg.encoding}", f"image: {err}") from None
    except ImageLayoutError as err:
        raise FrameRejected("layout", f"malformed image: {err}") from None
    height, width = image.shape[:2]
    problem = size_problem(width, height, resolution, max_aspect_error)
    if problem:
        raise FrameRejected(f"size {width}x{height}", f"image: {problem}")
    return image

