"""rclpy node `loci_tracker`: camera images in, tracked entities out.

Subscribes `image` (sensor_msgs/Image), `scene_reset` (std_msgs/Header) and, with camera_model
'camera_info', `camera_info`; publishes `detections` (vision_msgs/Detection2DArray), `masks` (mono8
labels), `debug_image` (rgb8 overlay) and `markers` (MarkerArray), each with the input image's header;
serves `reset` (std_srvs/Trigger). All names are relative: under `__ns:=/loci` they are /loci/image etc.
Once the model is loaded and the subscriptions exist it logs one line "loci_tracker ready: ...".

It is a managed (lifecycle) node: configure loads the checkpoint and creates the publishers and the reset
service, activate subscribes and enables the publishers, deactivate unsubscribes (the model and its tracking
state stay), cleanup frees the model. With the `autostart` parameter (default true) it configures and
activates itself at start; `autostart:=false` leaves the transitions to a lifecycle manager (get_state,
change_state). The model's CPU threads and OpenMP wait policy are chosen at configure (torch_threads,
omp_wait_policy; loci_core/cpu_threads.py).

Scene resets: a message on `scene_reset` says a new scene (video) starts at its header stamp; the tracking
state is cleared before the first frame stamped at or after it (a zero stamp: before the next frame).
Bags made by `loci bag make` publish /loci/scene_reset (frame_id = the video name) before each video's
first frame, so replaying one into the node in namespace /loci tracks each video from a fresh state, as
`loci bag track` does offline. The `reset` service clears the state at once.

Frames are tracked in the image callback, one thread in all. Real time (queue_frames = 0): the subscription
keeps only the newest frame in the DDS history while the model runs, so a slow model skips stale frames
inside the middleware, at no cost to Python, instead of building a backlog; gaps in the publisher's sequence
numbers count them for the rate log line. Parameters, services and scene resets are served between frames.
An output nobody subscribes to is not built (the debug overlay is the costliest).

The parameters, the tracker construction, the output settings and the input checks live in
loci_ros/tracker_setup.py, shared with `loci bag track`.

Run: `tracker_node --ros-args -r __ns:=/loci --params-file config/tracker.yaml -p checkpoint:=model.pt`
(or `python -m loci_ros.tracker_node ...`); a bag replay: add `-r image:=/camera/image_raw`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from loci_core.allocator import keep_freed_memory
from loci_core.cpu_threads import apply_wait_policy, available_cores, plan_threads
from loci_ros.tracker_setup import (
    NODE_NAME,
    OUTPUTS,
    PARAMETERS,
    FrameRejected,
    Range,
    StartupError,
    make_tracker,
    output_settings,
    pinhole_camera,
    rgb_frame,
    value_problem,
)
from loci_ros.vision_types import stamp_ns

RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE,
               "system_default": ReliabilityPolicy.SYSTEM_DEFAULT}
# The same problem is reported at most once per this many seconds (a 30 Hz camera would flood the log).
ERROR_THROTTLE_SEC = 5.0
# Outputs are reliable with a short queue: consumers get every result, and a slow one cannot hold many.
OUTPUT_DEPTH = 5
# Longest time the executor waits before it checks for shutdown (Ctrl-C, SIGTERM via rclpy).
SPIN_TIMEOUT_S = 0.25
# Fast DDS's default shared-memory segment (512 KiB) cannot carry a 640x480 rgb8 frame; over UDP a best-effort
# frame of many fragments is lost whole when one fragment is.
LOST_HINT = ("best-effort transport loses large frames; run the camera's and this node's process with "
             "FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds_shm.xml (shared memory, frames up to ~25 MB) or set "
             "input_reliability:=reliable")
# Scene resets must not be lost, and a few may queue while the executor is busy.
RESET_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)


@dataclass(frozen=True)
class Settings:
    """Snapshot of the runtime-changeable parameters; replaced as a whole when parameters change."""

    visibility_threshold: float
    publish: dict
    output: object  # loci_ros.messages.OutputSettings
    ground_plane_height: float
    max_aspect_error: float
    log_period: float


class TrackerNode(LifecycleNode):
    """A managed node: configure loads the model, activate subscribes (and enables the publishers), deactivate
    stops tracking and keeps the model, cleanup frees it. With `autostart` (the default) main() runs configure
    and activate at once, so it starts like a plain node."""

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
        self._settings = None  # read at configure (building the output settings loads torch)
        self.tracker = None
        self._outputs: dict = {}
        self._inputs: list = []
        self._reset_service = None

    # ------------------------------------------------------------------------------------------ lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        threads = self._plan_threads()
        try:
            self.tracker = make_tracker(self._values())
        except StartupError as err:
            self.get_logger().error(str(err))
            return TransitionCallbackReturn.FAILURE
        import torch  # loaded by make_tracker, after the wait policy was set

        torch.set_num_threads(threads)
        self._settings = self._read_settings()
        self._camera_k = None
        self._camera_info_key = None
        self._outputs = self._create_publishers()
        self._reset_service = self.create_service(Trigger, "reset", self._on_reset)
        # Stamps (ns) of scene resets not yet applied: the state is cleared before the first frame stamped at
        # or after one (several may wait while queued frames of earlier scenes are tracked).
        self._reset_stamps: list[int] = []
        self._error_times: dict[str, float] = {}
        # Last publication sequence number seen per image publisher: a gap is frames skipped as stale.
        self._last_sequence: dict[bytes, int] = {}
        self._input_shape = None
        h, w = self.tracker.resolution
        self.get_logger().info(f"configured: model {self._param('checkpoint')} ({self.tracker.num_slots} slots) "
                               f"loaded at {w}x{h} on {self.tracker.device}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        # The reset subscription first: when a reset and a frame are both waiting, the executor takes the
        # reset first.
        reset_sub = self.create_subscription(Header, "scene_reset", self._on_scene_reset, RESET_QOS)
        image_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(1, self._param("queue_frames")),
                               reliability=RELIABILITY[self._param("input_reliability")])
        image_sub = self.create_subscription(
            Image, "image", self._on_image, image_qos,
            event_callbacks=SubscriptionEventCallbacks(message_lost=self._on_images_lost))
        self._inputs = [reset_sub, image_sub]
        if self._param("camera_model") == "camera_info":
            self._inputs.append(self.create_subscription(CameraInfo, "camera_info", self._on_camera_info,
                                                         qos_profile_sensor_data))
        self._stats = _fresh_stats()
        self._last_sequence.clear()  # publishers' sequence gaps while inactive are not stale frames
        h, w = self.tracker.resolution
        outputs = [o for o in OUTPUTS if self._settings.publish[o] and self._outputs[o] is not None]
        self.get_logger().info(
            f"{NODE_NAME} ready: model {self._param('checkpoint')} ({self.tracker.num_slots} slots) at "
            f"{w}x{h} on {self.tracker.device} ({self._threads_text}), camera model "
            f"{self._param('camera_model')}; waiting for images on {image_sub.topic_name} (scene resets on "
            f"{reset_sub.topic_name}); outputs: {', '.join(outputs) or 'none'}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_inputs()
        self.get_logger().info("deactivated: tracking stopped, the model stays loaded")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: model released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_inputs()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _destroy_inputs(self) -> None:
        for sub in self._inputs:
            self.destroy_subscription(sub)
        self._inputs = []

    def _release(self) -> None:
        for pub in self._outputs.values():
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._outputs = {}
        if self._reset_service is not None:
            self.destroy_service(self._reset_service)
            self._reset_service = None
        self.tracker = None

    def _plan_threads(self) -> int:
        """Threads and OpenMP wait policy for the model, before torch is loaded (loci_core.cpu_threads)."""
        plan = plan_threads(self._param("torch_threads"), self._param("omp_wait_policy"), available_cores())
        policy = apply_wait_policy(plan.wait_policy)
        self._threads_text = (f"{plan.threads} torch thread{'s' * (plan.threads > 1)} on {plan.cores} "
                              f"cores, OpenMP wait policy {policy}")
        return plan.threads

    # ------------------------------------------------------------------------------------------ setup

    def _param(self, name):
        return self.get_parameter(name).value

    def _values(self) -> dict:
        return {name: self._param(name) for name in PARAMETERS}

    def _create_publishers(self) -> dict:
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=OUTPUT_DEPTH,
                         reliability=ReliabilityPolicy.RELIABLE)
        pubs = {"masks": self.create_lifecycle_publisher(Image, "masks", qos),
                "debug_image": self.create_lifecycle_publisher(Image, "debug_image", qos),
                "markers": self.create_lifecycle_publisher(MarkerArray, "markers", qos)}
        try:
            from vision_msgs.msg import Detection2DArray
        except ImportError:
            # Keep the other outputs working on a ROS install without vision_msgs.
            self.get_logger().error("vision_msgs is not installed: 'detections' will not be published "
                                    "(build it with scripts/build_interfaces.sh)")
            pubs["detections"] = None
        else:
            pubs["detections"] = self.create_lifecycle_publisher(Detection2DArray, "detections", qos)
        return pubs

    # ------------------------------------------------------------------------------------------ parameters

    def _validate_parameters(self, params) -> SetParametersResult:
        """Reject what tracker_setup.value_problem finds (the rules `loci bag track` applies too); rclpy also
        checks types, ranges and read-only from the descriptors."""
        for p in params:
            problem = value_problem(p.name, p.value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params) -> None:
        if self.tracker is not None:
            self._settings = self._read_settings()
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

    def _on_image(self, msg: Image, info: dict) -> None:
        self._count_skipped(info)
        stamp = stamp_ns(msg.header)
        new_scene = any(r <= stamp for r in self._reset_stamps)
        if new_scene:
            self._reset_stamps = [r for r in self._reset_stamps if r > stamp]
        try:
            self._process(msg, new_scene)
        except Exception as err:  # noqa: BLE001 - one bad frame must not kill the node
            self._throttled_error("processing", f"tracking failed on a frame: {type(err).__name__}: {err}")

    def _count_skipped(self, info: dict) -> None:
        """Frames the middleware dropped as stale: gaps in the sending publisher's sequence numbers."""
        sequence = info.get("publication_sequence_number")
        publisher = info.get("publisher_gid", {}).get("data")
        if not sequence or publisher is None:  # an RMW without sequence numbers: nothing to count
            return
        last = self._last_sequence.get(publisher)
        if last is not None and sequence > last + 1:
            self._stats["dropped"] += sequence - last - 1
        self._last_sequence[publisher] = sequence

    def _on_images_lost(self, info) -> None:
        """Frames the middleware saw sent but never got whole. Over best effort that is the transport losing
        them (a large frame); a reliable publisher reports frames its own full queue dropped, which are stale
        frames like the others."""
        if self._param("input_reliability") != "best_effort":
            return
        self._stats["lost"] += info.total_count_change
        self._throttled_error("lost", f"{info.total_count} image messages lost in transport so far (never "
                                      f"arrived whole): {LOST_HINT}")

    def _on_camera_info(self, msg: CameraInfo) -> None:
        key = (tuple(msg.k), msg.width, msg.height)
        if key == self._camera_info_key:
            return
        try:
            camera = pinhole_camera(msg.k, msg.width, msg.height, self._values())
        except ValueError as err:
            self._throttled_error("camera_info", f"{err}; ground positions unavailable")
            return
        self.tracker.camera = camera
        self._camera_k = tuple(msg.k)
        self._camera_info_key = key

    def _on_scene_reset(self, msg: Header) -> None:
        self._reset_stamps.append(stamp_ns(msg))
        self.get_logger().info(f"scene reset ({msg.frame_id or 'unnamed'}): tracking restarts with the frame "
                               f"stamped {msg.stamp.sec}.{msg.stamp.nanosec:09d}")

    def _on_reset(self, request, response):
        self.tracker.reset()
        response.success = True
        response.message = "tracking state cleared; the next frame starts a new sequence"
        self.get_logger().info("reset: tracking state cleared")
        return response

    # ------------------------------------------------------------------------------------------ tracking

    def _process(self, msg: Image, new_scene: bool) -> None:
        start = time.perf_counter()
        settings = self._settings
        if new_scene:  # before the frame is checked, as `loci bag track` resets at the reset message
            self.tracker.reset()
        try:
            image = rgb_frame(msg, self.tracker.resolution, settings.max_aspect_error)
        except FrameRejected as err:
            self._throttled_error(err.key, f"dropping {err}")
            return
        if self._input_shape is not None and image.shape[:2] != self._input_shape:
            self.get_logger().info(f"input size changed {self._input_shape} -> {image.shape[:2]}: reset")
            self.tracker.reset()
        self._input_shape = image.shape[:2]
        t0 = time.perf_counter()
        tracked = self.tracker.step(image)
        track_s = time.perf_counter() - t0
        wanted = {name: settings.publish[name] and self._outputs[name] is not None
                  and self._outputs[name].get_subscription_count() > 0 for name in OUTPUTS}
        build_outputs = messages().build_outputs
        build_outputs(image, tracked, msg.header, settings.output, camera_k=self._camera_k,
                      detections=wanted["detections"], masks=wanted["masks"], debug=wanted["debug_image"],
                      markers=wanted["markers"], emit=lambda name, message: self._outputs[name].publish(message))
        self._count(track_s, time.perf_counter() - start, settings.log_period)

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
            self._stats = _fresh_stats()
            n = s["frames"]
            # Sequence gaps count every frame sent and not tracked, lost ones included.
            stale = max(0, s["dropped"] - s["lost"])
            lost = f", {s['lost']} lost in transport" if s["lost"] else ""
            self.get_logger().info(
                f"tracking at {n / elapsed:.1f} Hz: {1000 * s['track_s'] / n:.1f} ms model, "
                f"{1000 * s['total_s'] / n:.1f} ms per frame in all; {stale} stale frames dropped{lost}")


def messages():
    """loci_ros.messages, imported on first use: it loads torch, which must wait until configure has set the
    OpenMP wait policy."""
    from loci_ros import messages as module

    return module


def _descriptor(description: str, read_only: bool, limits) -> ParameterDescriptor:
    d = ParameterDescriptor(description=description, read_only=read_only)
    if isinstance(limits, Range) and limits.integer:
        d.integer_range = [IntegerRange(from_value=int(limits.low), to_value=int(limits.high),
                                        step=int(limits.step))]
    elif isinstance(limits, Range):
        d.floating_point_range = [FloatingPointRange(from_value=float(limits.low), to_value=float(limits.high),
                                                     step=float(limits.step))]
    elif isinstance(limits, tuple):
        d.additional_constraints = "one of: " + ", ".join(limits)
    return d


def _fresh_stats() -> dict:
    return {"frames": 0, "dropped": 0, "lost": 0, "track_s": 0.0, "total_s": 0.0, "since": time.monotonic()}


def main(args=None) -> int:
    keep_freed_memory()
    rclpy.init(args=args)
    try:
        node = TrackerNode()
    except StartupError as err:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(err))
        rclpy.try_shutdown()
        return 1
    if node.get_parameter("autostart").value and not _start(node):
        node.destroy_node()
        rclpy.try_shutdown()
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        # Short waits instead of executor.spin(): a SIGINT that lands while rcl_wait blocks with nothing
        # to wake it (seen: ~1 in 10 stops hung for good) is then handled within SPIN_TIMEOUT_S.
        while rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _start(node: TrackerNode) -> bool:
    """configure and activate (autostart); False, with the reason logged, when a transition fails."""
    for transition in (node.trigger_configure, node.trigger_activate):
        if transition() != TransitionCallbackReturn.SUCCESS:
            node.get_logger().fatal(f"autostart: {transition.__name__.removeprefix('trigger_')} failed")
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
