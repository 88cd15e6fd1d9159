"""rclpy node `loci_tracker`: camera images in, tracked entities out.

Subscribes `image` (sensor_msgs/Image) and, with camera_model 'camera_info', `camera_info`; publishes
`detections` (vision_msgs/Detection2DArray), `masks` (mono8 labels), `debug_image` (rgb8 overlay) and
`markers` (MarkerArray), each with the input image's header; serves `reset` (std_srvs/Trigger).

Only the newest frame is tracked: the subscription keeps one message and a worker thread takes whatever is
newest when it is free, so a slow model drops stale frames instead of building a backlog. The executor
thread stays free for parameters, services and camera_info meanwhile.

Run: `tracker_node --ros-args --params-file config/tracker.yaml -p checkpoint:=model.pt`
(or `python -m loci_ros.tracker_node ...`).
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from loci_ros.image_conversion import ImageLayoutError, UnsupportedEncodingError, image_to_rgb8
from loci_ros.messages import OutputSettings, build_outputs

NODE_NAME = "loci_tracker"
RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE,
               "system_default": ReliabilityPolicy.SYSTEM_DEFAULT}
CAMERA_MODELS = ("none", "cater", "camera_info")
OUTPUTS = ("detections", "masks", "debug_image", "markers")
# The same problem is reported at most once per this many seconds (a 30 Hz camera would flood the log).
ERROR_THROTTLE_SEC = 5.0
# Outputs are reliable with a short queue: consumers get every result, and a slow one cannot hold many.
OUTPUT_DEPTH = 5


class StartupError(RuntimeError):
    """The node cannot start (bad checkpoint, device, ...); main() prints it and exits non-zero."""


@dataclass(frozen=True)
class Settings:
    """Snapshot of the runtime-changeable parameters; replaced as a whole when parameters change."""

    visibility_threshold: float
    publish: dict
    output: OutputSettings
    ground_plane_height: float
    max_aspect_error: float
    log_period: float


def _range(lo, hi, step=0.0):
    return FloatingPointRange(from_value=float(lo), to_value=float(hi), step=float(step))


_INT_LEVEL = IntegerRange(from_value=0, to_value=2, step=1)
_INT_SEED = IntegerRange(from_value=0, to_value=2**31 - 1, step=1)

# name -> (default, description, read_only, range or choices)
PARAMETERS = {
    "checkpoint": ("", "path of the Loci checkpoint (.pt) to track with", True, None),
    "model_level": (0, "resolution level to run the model at (1: latent x4, 2: latent x16); 0 = the level "
                       "stored in the checkpoint", True, _INT_LEVEL),
    "device": ("cpu", "torch device of the model, e.g. cpu, cuda, cuda:1", True, None),
    "background": ("", "background image file (PNG/JPG of the empty scene); '' = the checkpoint's training "
                       "background, or the first frame after start/reset if it has none", True, None),
    "seed": (0, "seed of the model's random slot spawning (tracking is deterministic for a seed)", True,
             _INT_SEED),
    "visibility_threshold": (0.5, "an entity counts as visible at or above this visibility (0..1); below "
                                  "it, an entity seen before is reported as hidden", False, _range(0, 1)),
    "publish_detections": (True, "publish vision_msgs/Detection2DArray on 'detections'", False, None),
    "publish_masks": (True, "publish the mono8 label image (0 = background, k+1 = entity k) on 'masks'",
                      False, None),
    "publish_debug_image": (True, "publish the rgb8 overlay on 'debug_image'", False, None),
    "publish_markers": (True, "publish the RViz MarkerArray on 'markers'", False, None),
    "input_reliability": ("best_effort", "QoS reliability of the image subscription: best_effort (sensor "
                                         "data; matches any publisher), reliable, or system_default", True,
                          tuple(RELIABILITY)),
    "camera_model": ("none", "where ground-plane positions come from: 'cater' (the static CATER camera), "
                             "'camera_info' (pinhole K from the camera_info topic, posed by camera_height "
                             "and camera_pitch_deg over the ground), or 'none' (image positions only)", True,
                     CAMERA_MODELS),
    "ground_plane_height": (0.0, "height (z, world units) of the plane entities move on; CATER's "
                                 "snitch-centre plane is 0.3421497941017151", False, _range(-1000, 1000)),
    "camera_height": (1.0, "camera_info model: height (m) of the camera's optical centre above z = 0",
                      False, _range(0.0, 1000)),
    "camera_pitch_deg": (30.0, "camera_info model: downward tilt (degrees) of the optical axis from "
                               "horizontal", False, _range(-90, 90)),
    "frame_id": ("", "frame_id of the outputs and of camera-frame markers; '' = the input image's frame",
                 False, None),
    "ground_frame_id": ("world", "frame of markers on the ground plane (when a camera model is known)",
                        False, None),
    "marker_depth": (2.0, "distance (m) along the camera ray of markers when no ground position is known",
                     False, _range(0.01, 1000)),
    "marker_scale": (0.2, "diameter (m) of the marker spheres", False, _range(0.001, 100)),
    "marker_lifetime": (1.0, "seconds a marker stays in RViz without an update (0 = forever)", False,
                        _range(0, 3600)),
    "max_aspect_error": (0.1, "largest relative difference between the input's and the model's aspect "
                              "ratio (W/H) that is accepted; other sizes are rejected with an error", False,
                         _range(0, 10)),
    "log_period": (10.0, "seconds between log lines reporting the tracking rate", False, _range(0.5, 3600)),
}


class TrackerNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        for name, (default, description, read_only, limits) in PARAMETERS.items():
            try:
                self.declare_parameter(name, default, _descriptor(description, read_only, limits))
            except ParameterException as err:  # a value from the params file / -p out of range or mistyped
                raise StartupError(f"invalid parameter {name}: {err}") from None
        initial = self._validate_parameters([self.get_parameter(n) for n in PARAMETERS])
        if not initial.successful:
            raise StartupError(f"invalid parameter: {initial.reason}")
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._settings = self._read_settings()

        self._tracker_lock = threading.Lock()
        self.tracker = make_tracker(self._values())
        self._camera_k = None
        self._camera_info_key = None

        self._outputs = self._create_publishers()
        image_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                               reliability=RELIABILITY[self._param("input_reliability")])
        self.create_subscription(Image, "image", self._on_image, image_qos)
        if self._param("camera_model") == "camera_info":
            self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos_profile_sensor_data)
        self.create_service(Trigger, "reset", self._on_reset)

        # The newest unprocessed frame, handed from the executor thread to the worker thread.
        self._pending: Image | None = None
        self._wake = threading.Condition()
        self._stopping = False
        self._error_times: dict[str, float] = {}
        self._stats = _fresh_stats()
        self._input_shape = None
        self._worker = threading.Thread(target=self._work, name="loci_tracker_worker", daemon=True)
        self._worker.start()
        h, w = self.tracker.resolution
        self.get_logger().info(
            f"tracking with {self._param('checkpoint')} ({self.tracker.num_slots} slots, {w}x{h}, "
            f"{self.tracker.device}); camera model {self._param('camera_model')}; outputs: "
            f"{', '.join(o for o in OUTPUTS if self._settings.publish[o]) or 'none'}")

    # ------------------------------------------------------------------------------------------ setup

    def _param(self, name):
        return self.get_parameter(name).value

    def _values(self) -> dict:
        return {name: self._param(name) for name in PARAMETERS}

    def _create_publishers(self) -> dict:
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=OUTPUT_DEPTH,
                         reliability=ReliabilityPolicy.RELIABLE)
        pubs = {"masks": self.create_publisher(Image, "masks", qos),
                "debug_image": self.create_publisher(Image, "debug_image", qos),
                "markers": self.create_publisher(MarkerArray, "markers", qos)}
        try:
            from vision_msgs.msg import Detection2DArray
        except ImportError:
            # Keep the other outputs working on a ROS install without vision_msgs (ros2.md §4).
            self.get_logger().error("vision_msgs is not installed: 'detections' will not be published "
                                    "(build it with scripts/build_interfaces.sh)")
            pubs["detections"] = None
        else:
            pubs["detections"] = self.create_publisher(Detection2DArray, "detections", qos)
        return pubs

    # ------------------------------------------------------------------------------------------ parameters

    def _validate_parameters(self, params) -> SetParametersResult:
        """Reject values the descriptors cannot express (ranges and read-only are checked by rclpy)."""
        for p in params:
            if p.name in ("frame_id", "ground_frame_id") and (p.value != p.value.strip() or p.value == "/"):
                return SetParametersResult(successful=False,
                                           reason=f"{p.name}: {p.value!r} is not a frame id")
            if p.name == "ground_frame_id" and not p.value:
                return SetParametersResult(successful=False, reason="ground_frame_id must not be empty")
            if p.name in ("input_reliability", "camera_model"):
                choices = RELIABILITY if p.name == "input_reliability" else CAMERA_MODELS
                if p.value not in choices:
                    return SetParametersResult(successful=False,
                                               reason=f"{p.name} must be one of {', '.join(choices)}, "
                                                      f"got {p.value!r}")
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params) -> None:
        self._settings = self._read_settings()
        with self._tracker_lock:
            self.tracker.visibility_threshold = self._settings.visibility_threshold
            self.tracker.ground_height = self._settings.ground_plane_height
            self._camera_info_key = None  # rebuild the pinhole camera's pose on the next CameraInfo
        self.get_logger().info("parameters changed: " + ", ".join(f"{p.name}={p.value!r}" for p in params))

    def _read_settings(self) -> Settings:
        values = self._values()
        return Settings(
            visibility_threshold=values["visibility_threshold"],
            publish={o: values[f"publish_{o}"] for o in OUTPUTS},
            output=output_settings(values), ground_plane_height=values["ground_plane_height"],
            max_aspect_error=values["max_aspect_error"], log_period=values["log_period"])

    # ------------------------------------------------------------------------------------------ callbacks

    def _on_image(self, msg: Image) -> None:
        with self._wake:
            if self._pending is not None:
                self._stats["dropped"] += 1
            self._pending = msg
            self._wake.notify()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        from loci_core.camera import PinholeCamera

        key = (tuple(msg.k), msg.width, msg.height)
        if key == self._camera_info_key:
            return
        if msg.k[0] <= 0 or msg.k[4] <= 0 or msg.width == 0 or msg.height == 0:
            self._throttled_error("camera_info", f"camera_info without a usable K ({list(msg.k)}) or size "
                                                 f"({msg.width}x{msg.height}); ground positions unavailable")
            return
        camera = PinholeCamera.from_height_pitch(
            list(msg.k), msg.width, msg.height, self._param("camera_height"), self._param("camera_pitch_deg"))
        with self._tracker_lock:
            self.tracker.camera = camera
            self._camera_k = tuple(msg.k)
            self._camera_info_key = key

    def _on_reset(self, request, response):
        with self._tracker_lock:
            self.tracker.reset()
        response.success = True
        response.message = "tracking state cleared; the next frame starts a new sequence"
        self.get_logger().info("reset: tracking state cleared")
        return response

    # ------------------------------------------------------------------------------------------ worker

    def _work(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                msg, self._pending = self._pending, None
            try:
                self._process(msg)
            except Exception as err:  # noqa: BLE001 - one bad frame must not kill the node
                self._throttled_error("processing",
                                      f"tracking failed on a frame: {type(err).__name__}: {err}")

    def _process(self, msg: Image) -> None:
        start = time.perf_counter()
        settings = self._settings
        image = self._to_rgb(msg, settings)
        if image is None:
            return
        with self._tracker_lock:
            if self._input_shape is not None and image.shape[:2] != self._input_shape:
                self.get_logger().info(f"input size changed {self._input_shape} -> {image.shape[:2]}: reset")
                self.tracker.reset()
            self._input_shape = image.shape[:2]
            t0 = time.perf_counter()
            entities = self.tracker.step(image)
            track_s = time.perf_counter() - t0
            camera_k = self._camera_k
        publish = settings.publish
        build_outputs(image, entities, msg.header, settings.output, camera_k=camera_k,
                      detections=publish["detections"] and self._outputs["detections"] is not None,
                      masks=publish["masks"], debug=publish["debug_image"], markers=publish["markers"],
                      emit=lambda name, message: self._outputs[name].publish(message))
        self._count(track_s, time.perf_counter() - start, settings.log_period)

    def _to_rgb(self, msg: Image, settings: Settings):
        """The message as (H, W, 3) uint8 RGB, or None (after a throttled error) if it cannot be tracked."""
        try:
            image = image_to_rgb8(msg)
        except UnsupportedEncodingError as err:
            self._throttled_error(f"encoding {msg.encoding}", f"dropping image: {err}")
            return None
        except ImageLayoutError as err:
            self._throttled_error("layout", f"dropping malformed image: {err}")
            return None
        height, width = image.shape[:2]
        problem = size_problem(width, height, self.tracker.resolution, settings.max_aspect_error)
        if problem:
            self._throttled_error(f"size {width}x{height}", f"dropping image: {problem}")
            return None
        return image

    def _throttled_error(self, key: str, text: str) -> None:
        """Log `text` unless the problem `key` was reported less than ERROR_THROTTLE_SEC ago."""
        now = time.monotonic()
        if now - self._error_times.get(key, -float("inf")) >= ERROR_THROTTLE_SEC:
            self._error_times[key] = now
            self.get_logger().error(text)

    def _count(self, track_s: float, total_s: float, period: float) -> None:
        s = self._stats
        s["frames"] += 1
        s["track_s"] += track_s
        s["total_s"] += total_s
        elapsed = time.monotonic() - s["since"]
        if elapsed >= period:
            with self._wake:  # the executor thread counts dropped frames into the same dict
                self._stats = _fresh_stats()
            n = s["frames"]
            self.get_logger().info(
                f"tracking at {n / elapsed:.1f} Hz: {1000 * s['track_s'] / n:.1f} ms model, "
                f"{1000 * s['total_s'] / n:.1f} ms per frame in all; {s['dropped']} stale frames dropped")

    # ------------------------------------------------------------------------------------------ teardown

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._worker.join(timeout=5.0)


def make_tracker(values: dict):
    """The OnlineTracker the node runs for these parameter values (also used by `loci bag track`).

    Raises StartupError naming the parameter when the checkpoint or background cannot be used."""
    from loci_core.camera import ProjectiveCamera
    from loci_core.tracker import OnlineTracker

    if not values["checkpoint"]:
        raise StartupError("parameter 'checkpoint' is empty: give the path of a Loci checkpoint (.pt)")
    path = Path(values["checkpoint"]).expanduser()
    if not path.is_file():
        raise StartupError(f"checkpoint not found: {path} (parameter 'checkpoint')")
    background = None
    if values["background"]:
        background = _read_background(Path(values["background"]).expanduser())
    camera = ProjectiveCamera.cater() if values["camera_model"] == "cater" else None
    try:
        return OnlineTracker.from_checkpoint(
            path, device=values["device"], camera=camera, level=values["model_level"] or None,
            background=background, ground_height=values["ground_plane_height"],
            visibility_threshold=values["visibility_threshold"], seed=values["seed"])
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise StartupError(f"cannot load checkpoint {path}: {err}") from err


def output_settings(values: dict) -> OutputSettings:
    """How entities become messages, from the node's parameter values."""
    return OutputSettings(
        frame_id=values["frame_id"], ground_frame_id=values["ground_frame_id"],
        ground_plane_height=values["ground_plane_height"], marker_depth=values["marker_depth"],
        marker_scale=values["marker_scale"], marker_lifetime=values["marker_lifetime"])


def size_problem(width: int, height: int, resolution: tuple[int, int], max_aspect_error: float) -> str | None:
    """Why an input of width x height cannot be tracked by a model of `resolution` (H, W), or None."""
    if height == 0 or width == 0:
        return f"unsupported size {width}x{height} (empty)"
    (mh, mw), aspect = resolution, width / height
    if abs(aspect / (mw / mh) - 1.0) > max_aspect_error:
        return (f"unsupported size {width}x{height} (aspect {aspect:.3f}); the model expects aspect "
                f"{mw / mh:.3f} ({mw}x{mh}) within max_aspect_error {max_aspect_error}")
    return None


def _descriptor(description: str, read_only: bool, limits) -> ParameterDescriptor:
    d = ParameterDescriptor(description=description, read_only=read_only)
    if isinstance(limits, FloatingPointRange):
        d.floating_point_range = [limits]
    elif isinstance(limits, IntegerRange):
        d.integer_range = [limits]
    elif isinstance(limits, tuple):
        d.additional_constraints = "one of: " + ", ".join(limits)
    return d


def _fresh_stats() -> dict:
    return {"frames": 0, "dropped": 0, "track_s": 0.0, "total_s": 0.0, "since": time.monotonic()}


def _read_background(path: Path):
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise StartupError(f"cannot read background image {path} (parameter 'background')")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def main(args=None) -> int:
    rclpy.init(args=args)
    try:
        node = TrackerNode()
    except StartupError as err:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(err))
        rclpy.try_shutdown()
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
