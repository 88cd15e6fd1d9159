"""The tracker node as a real process over loopback DDS: outputs, parameters, reset, bad input, startup.

The node is started the way users start it (`--ros-args --params-file config/tracker.yaml -p ...`); this
test talks to it through an rclpy node of its own. Frames come from the CATER-style generator.
"""

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs.msg")

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from loci_core.data.renderer import Renderer  # noqa: E402
from loci_core.data.sampler import sample_scene, video_rng  # noqa: E402
from loci_core.tracking.tracker import OnlineTracker  # noqa: E402
from loci_ros.image_conversion import image_to_numpy, numpy_to_image  # noqa: E402
from tests.process_helpers import stop_process  # noqa: E402
from tests.test_bag_track import foreground_checkpoint  # noqa: E402

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]
NODE = "loci_tracker"
# The untrained tiny model reaches visibilities of ~0.2: report every slot it spawns.
THRESHOLD = 0.05
FRAMES = 8
SIZE = (120, 160)  # input at 2x the tiny model's 60x80, so results are mapped back through a resize
TIMEOUT = 20.0
OUTPUT_TYPES = {"detections": Detection2DArray, "masks": Image, "debug_image": Image, "markers": MarkerArray}
RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)


def start_node(checkpoint, log_path: Path, *extra: str, namespace: str = "/") -> subprocess.Popen:
    cmd = [sys.executable, "-m", "loci_ros.tracker_node", "--ros-args", "-r", f"__ns:={namespace}",
           "--params-file", str(REPO / "config" / "tracker.yaml"), "-p", f"checkpoint:={checkpoint}"]
    for item in extra:
        cmd += ["-p", item]
    log = open(log_path, "w")  # noqa: SIM115 - the process owns it until it exits
    return subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def frames():
    """A short generated CATER-style video (static camera), uint8 (T, H, W, 3) RGB."""
    scene = sample_scene(video_rng(7, 0), num_frames=FRAMES, jitter=False)
    return Renderer(SIZE).render(scene).rgb


class Client:
    """The test's own ROS node: publishes frames, collects the tracker's outputs by stamp."""

    def __init__(self, namespace: str = "/"):
        self.node = rclpy.create_node("loci_tracker_test", namespace=namespace)
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.pub = self.node.create_publisher(Image, "image", RELIABLE)
        self.received = {name: {} for name in OUTPUT_TYPES}  # name -> {(sec, nanosec): msg}
        for name, msg_type in OUTPUT_TYPES.items():
            self.node.create_subscription(msg_type, name, self._store(name), RELIABLE)
        self.params = AsyncParameterClient(self.node, NODE)

    def _store(self, name):
        def callback(msg):
            header = msg.markers[0].header if name == "markers" else msg.header  # a DELETEALL leads
            self.received[name][(header.stamp.sec, header.stamp.nanosec)] = msg
        return callback

    def spin_until(self, condition, timeout=TIMEOUT) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def wait_for_tracker(self, process):
        ok = self.spin_until(lambda: process.poll() is not None or (
            self.pub.get_subscription_count() > 0
            and all(self.node.count_publishers(n) > 0 for n in OUTPUT_TYPES)), timeout=60.0)
        assert ok and process.poll() is None, "tracker node did not come up"

    def send(self, image: np.ndarray, stamp: int, encoding="rgb8", expect=OUTPUT_TYPES, attempts=1) -> dict:
        """Publish a frame and wait for its outputs; `attempts` > 1 re-sends it (best-effort input)."""
        header = Header(frame_id="camera_optical")
        header.stamp.sec, header.stamp.nanosec = stamp, 500
        msg = numpy_to_image(image, encoding, header=header)
        key = (stamp, 500)
        for _ in range(attempts):
            self.pub.publish(msg)
            if self.spin_until(lambda: all(key in self.received[n] for n in expect), TIMEOUT / attempts):
                break
        else:
            pytest.fail(f"no outputs for stamp {stamp}")
        return {n: self.received[n].get(key) for n in OUTPUT_TYPES}

    def call(self, future):
        assert self.spin_until(future.done), "no answer from the tracker node"
        return future.result()

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.shutdown()


@contextlib.contextmanager
def running_node(checkpoint, log: Path, first_frame: np.ndarray, *extra: str, namespace: str = "/"):
    """(process, client, log path) of a node that has answered one frame (reliable input)."""
    process = start_node(checkpoint, log, "input_reliability:=reliable", f"visibility_threshold:={THRESHOLD}",
                         *extra, namespace=namespace)
    try:
        client = Client(namespace=namespace)
        try:
            client.wait_for_tracker(process)
            # One frame through the whole pipeline proves every output is matched (discovery can lag)
            client.send(first_frame, stamp=1, attempts=5)
            yield process, client, log
        finally:
            client.close()
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def tracker(ros, tiny_checkpoint, tmp_path_factory, frames):
    """(process, client, log path) of a running node, shared by the tests of this module."""
    with running_node(tiny_checkpoint, tmp_path_factory.mktemp("node") / "node.log", frames[0],
                      "log_period:=1.0") as running:
        yield running


def detection_summary(msg: Detection2DArray):
    """Exact values: the untrained model moves little from frame to frame."""
    return [(d.id, d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y,
             d.results[0].hypothesis.score) for d in msg.detections]


def test_outputs_follow_the_input_and_match_the_tracker(tracker, frames, tiny_checkpoint):
    process, client, log = tracker
    client.call(client.node.create_client(Trigger, "reset").call_async(Trigger.Request()))  # a fresh stream
    reference = OnlineTracker.from_checkpoint(tiny_checkpoint, visibility_threshold=THRESHOLD,
                                              ground_height=0.3421497941017151)
    ids_so_far: set[str] = set()
    for t, frame in enumerate(frames):
        out = client.send(frame, stamp=100 + t)
        for name, msg in out.items():
            assert msg is not None, name
        det, masks, debug, markers = out["detections"], out["masks"], out["debug_image"], out["markers"]
        for msg in (det, masks, debug):
            assert msg.header.frame_id == "camera_optical" and msg.header.stamp.sec == 100 + t
        assert all(d.header == det.header for d in det.detections)
        assert all(d.results[0].hypothesis.class_id == "entity" for d in det.detections)
        # the node's results are OnlineTracker's on the same pixels
        tracked = reference.step(frame)
        entities = tracked.entities
        assert [d.id for d in det.detections] == [str(e.id) for e in entities]
        for d, e in zip(det.detections, entities):
            cx, cy, w, h = e.bbox_center_size
            assert (d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y) == \
                pytest.approx((cx, cy, w, h), abs=1e-6)
        # ids are stable: an entity once reported is reported in every later frame
        ids = {d.id for d in det.detections}
        assert ids >= ids_so_far and ids
        ids_so_far = ids
        labels = image_to_numpy(masks)
        assert masks.encoding == "mono8" and labels.shape == SIZE
        assert np.array_equal(labels, tracked.labels)  # the tracker's own label image, published as it is
        assert set(np.unique(labels)) <= {0} | {int(i) + 1 for i in ids}
        assert debug.encoding == "rgb8" and image_to_numpy(debug).shape == SIZE + (3,)
        assert markers.markers[0].action == Marker.DELETEALL and len(markers.markers) == 1 + 2 * len(ids)
        # config/tracker.yaml selects the CATER camera: spheres sit on the ground plane in the world frame
        spheres = [m for m in markers.markers[1:] if m.type == Marker.SPHERE]
        assert all(m.header.frame_id == "world" and m.header.stamp == det.header.stamp for m in spheres)
        assert all(m.pose.position.z == pytest.approx(0.3421497941017151) for m in spheres)
    assert process.poll() is None


def test_parameters_read_changed_and_validated(tracker, frames):
    process, client, log = tracker
    assert client.params.wait_for_services(timeout_sec=TIMEOUT)
    names = ["checkpoint", "visibility_threshold", "camera_model", "input_reliability", "publish_debug_image"]
    values = client.call(client.params.get_parameters(names)).values
    assert values[0].string_value.endswith("tiny.pt")
    assert values[1].double_value == pytest.approx(THRESHOLD)       # -p overrides the file
    assert values[2].string_value == "cater"                        # from config/tracker.yaml
    assert values[3].string_value == "reliable"
    assert values[4].bool_value is True
    described = client.call(client.params.describe_parameters(["visibility_threshold"])).descriptors[0]
    assert described.description and described.floating_point_range[0].to_value == 1.0

    def set_one(name, value):
        return client.call(client.params.set_parameters([Parameter(name, value=value)])).results[0]

    rejected = set_one("visibility_threshold", 1.5)
    assert not rejected.successful and "visibility_threshold" in rejected.reason
    rejected = set_one("camera_model", "none")
    assert not rejected.successful and "read-only" in rejected.reason
    rejected = set_one("ground_frame_id", "")
    assert not rejected.successful and "ground_frame_id" in rejected.reason
    rejected = set_one("publish_markers", "yes")  # wrong type
    assert not rejected.successful

    # A changed parameter takes effect on the next frame: no overlay, and everything seen is now hidden.
    assert set_one("publish_debug_image", False).successful
    assert set_one("visibility_threshold", 1.0).successful
    client.send(frames[0], stamp=300, expect=("detections", "masks", "markers"))
    out = client.send(frames[1], stamp=301, expect=("detections", "masks", "markers"))
    assert out["debug_image"] is None
    assert image_to_numpy(out["masks"]).max() == 0
    assert all(m.text.startswith("(") for m in out["markers"].markers if m.type == Marker.TEXT_VIEW_FACING)
    assert set_one("publish_debug_image", True).successful
    assert set_one("visibility_threshold", THRESHOLD).successful
    assert process.poll() is None


def test_declared_parameters_are_the_parameter_table(tracker):
    """The node declares the table in loci_ros/tracker_setup.py and nothing else (tests/test_launch.py checks
    the launch file and config/tracker.yaml against that table)."""
    from loci_ros.tracker_setup import PARAMETERS

    process, client, log = tracker
    assert client.params.wait_for_services(timeout_sec=TIMEOUT)
    names = set(client.call(client.params.list_parameters()).result.names)
    assert names == set(PARAMETERS) | {"use_sim_time", "start_type_description_service"}


def test_reset_service_starts_a_new_stream(tracker, frames, tiny_checkpoint):
    process, client, log = tracker
    reset = client.node.create_client(Trigger, "reset")
    assert reset.wait_for_service(timeout_sec=TIMEOUT)
    client.send(frames[5], stamp=400)  # somewhere in a stream
    answer = client.call(reset.call_async(Trigger.Request()))
    assert answer.success and "cleared" in answer.message
    fresh = OnlineTracker.from_checkpoint(tiny_checkpoint, visibility_threshold=THRESHOLD)
    for t in (3, 4):  # after the reset the node behaves like a tracker that never saw a frame
        got = detection_summary(client.send(frames[t], stamp=401 + t)["detections"])
        expected = [(str(e.id), *e.bbox_center_size, e.visibility) for e in fresh.step(frames[t]).entities]
        assert [g[0] for g in got] == [e[0] for e in expected]
        assert [g[1:] for g in got] == [pytest.approx(e[1:], abs=1e-6) for e in expected]
    client.node.destroy_client(reset)


@pytest.fixture(scope="module")
def fg_checkpoint(tiny_checkpoint, tmp_path_factory):
    """A tiny model whose slots win pixels, so its results depend on the frames seen before."""
    return foreground_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("fg"))


@pytest.fixture(scope="module")
def namespaced(ros, fg_checkpoint, tmp_path_factory, frames):
    """(process, client, log path) of a node started as the launch file and `loci demo` start it: in the
    namespace /loci with config/tracker.yaml."""
    with running_node(fg_checkpoint, tmp_path_factory.mktemp("node_ns") / "node.log", frames[0],
                      namespace="/loci") as running:
        yield running


def test_params_file_applies_in_a_namespace(namespaced):
    """config/tracker.yaml's `/**/loci_tracker` section reaches /loci/loci_tracker (a plain `loci_tracker`
    section would not)."""
    process, client, log = namespaced
    assert client.params.wait_for_services(timeout_sec=TIMEOUT)
    names = ["camera_model", "marker_scale", "ground_plane_height", "visibility_threshold"]
    values = client.call(client.params.get_parameters(names)).values
    assert values[0].string_value == "cater"                            # file; default "none"
    assert values[1].double_value == pytest.approx(0.3)                 # file; default 0.2
    assert values[2].double_value == pytest.approx(0.3421497941017151)  # file; default 0.0
    assert values[3].double_value == pytest.approx(THRESHOLD)           # -p still overrides the file


def test_ready_line_names_the_resolved_topics(namespaced):
    process, client, log = namespaced
    ready = [line for line in log.read_text().splitlines() if "loci_tracker ready:" in line]
    assert len(ready) == 1, log.read_text()
    assert "waiting for images on /loci/image" in ready[0] and "/loci/scene_reset" in ready[0]
    assert "[INFO]" in ready[0]


def test_scene_reset_topic_restarts_tracking(namespaced, frames, fg_checkpoint):
    """A Header on `scene_reset` stamped like the next scene's first frame, sent right before it (as
    `loci bag play` sends a made bag): the node tracks the new scene like a tracker that never saw a frame."""
    process, client, log = namespaced
    scene_reset = client.node.create_publisher(Header, "scene_reset", RELIABLE)
    assert client.spin_until(lambda: scene_reset.get_subscription_count() > 0)
    client.call(client.node.create_client(Trigger, "reset").call_async(Trigger.Request()))  # a fresh stream
    # The first scene: the video mirrored. A reset makes the next frame the background (the tiny model has
    # none), so the second scene is tracked differently with and without one.
    first_scene = [np.ascontiguousarray(frames[t][:, ::-1]) for t in range(3)]
    for t, frame in enumerate(first_scene):
        client.send(frame, stamp=10 + t)
    header = Header(frame_id="second_scene")
    header.stamp.sec, header.stamp.nanosec = 20, 500  # the stamp of the next frame sent
    scene_reset.publish(header)
    got = [detection_summary(client.send(frames[t], stamp=20 + i)["detections"]) for i, t in enumerate((3, 4))]

    fresh = OnlineTracker.from_checkpoint(fg_checkpoint, visibility_threshold=THRESHOLD)
    expected = [[(str(e.id), *e.bbox_center_size, e.visibility) for e in fresh.step(frames[t]).entities]
                for t in (3, 4)]
    continued = OnlineTracker.from_checkpoint(fg_checkpoint, visibility_threshold=THRESHOLD)
    for frame in first_scene:
        continued.step(frame)
    without_reset = [[(str(e.id), *e.bbox_center_size, e.visibility) for e in continued.step(frames[t]).entities]
                     for t in (3, 4)]
    assert without_reset != expected, "the frames cannot tell a reset from none"
    for g, e in zip(got, expected):
        assert [d[0] for d in g] == [d[0] for d in e]
        assert [d[1:] for d in g] == [pytest.approx(d[1:], abs=1e-6) for d in e]
    assert client.spin_until(lambda: "scene reset (second_scene)" in log.read_text())
    client.node.destroy_publisher(scene_reset)


def test_bad_images_are_reported_and_the_node_survives(tracker, frames):
    process, client, log = tracker
    header = Header(frame_id="camera_optical")
    client.pub.publish(numpy_to_image(np.zeros(SIZE, np.float32), "32FC1", header=header))
    assert client.spin_until(lambda: "unsupported image encoding '32FC1'" in log.read_text())
    odd = Image(header=header, height=SIZE[0], width=SIZE[1], encoding="yuv422", step=SIZE[1] * 2,
                data=bytes(SIZE[0] * SIZE[1] * 2))
    client.pub.publish(odd)
    assert client.spin_until(lambda: "unsupported image encoding 'yuv422'" in log.read_text())
    client.pub.publish(numpy_to_image(np.zeros((40, 200, 3), np.uint8), "rgb8", header=header))
    assert client.spin_until(lambda: "unsupported size 200x40" in log.read_text())
    # same problem again within the throttle period: reported once
    client.pub.publish(numpy_to_image(np.zeros((40, 200, 3), np.uint8), "rgb8", header=header))
    client.spin_until(lambda: False, timeout=0.5)
    assert log.read_text().count("unsupported size 200x40") == 1
    short = numpy_to_image(frames[0], "rgb8", header=header)
    short.data = bytes(short.data)[: len(short.data) // 2]  # the fields promise twice the data there is
    client.pub.publish(short)
    assert client.spin_until(lambda: "dropping malformed image" in log.read_text())
    # still tracking, and logging its rate: once per log_period (1 s), written after the frame's outputs
    for stamp in range(500, 510):
        out = client.send(frames[2], stamp=stamp)
        assert out["detections"] is not None and process.poll() is None
        if client.spin_until(lambda: "tracking at" in log.read_text(), timeout=0.4):
            break
    assert "tracking at" in log.read_text(), log.read_text()[-2000:]


def test_a_burst_is_not_queued_the_newest_frame_wins(tracker, frames):
    process, client, log = tracker
    header = Header(frame_id="camera_optical")
    burst = list(range(600, 630))
    for stamp in burst:  # far faster than the model runs
        header.stamp.sec, header.stamp.nanosec = stamp, 0
        client.pub.publish(numpy_to_image(frames[stamp % FRAMES], "rgb8", header=header))
    assert client.spin_until(lambda: (burst[-1], 0) in client.received["detections"]), "newest frame lost"
    client.spin_until(lambda: False, timeout=0.5)  # anything still queued would arrive now
    tracked = [s for s in burst if (s, 0) in client.received["detections"]]
    assert len(tracked) < len(burst) / 2, f"tracked {len(tracked)} of a {len(burst)}-frame burst: a backlog"
    assert tracked == sorted(tracked)
    # the skipped frames are counted (publisher sequence gaps) in the next rate line (log_period 1 s)
    time.sleep(1.1)
    client.send(frames[0], stamp=640)
    dropped = lambda: sum(int(n) for n in re.findall(r"(\d+) stale frames dropped", log.read_text()))  # noqa: E731
    assert client.spin_until(lambda: dropped() >= len(burst) - len(tracked) - 1), log.read_text()[-2000:]


def test_camera_info_places_entities_on_the_ground(ros, tiny_checkpoint, frames, tmp_path):
    """camera_model camera_info with the default best-effort input: ground positions from K and the pose."""
    from sensor_msgs.msg import CameraInfo

    from loci_core.data.camera import PinholeCamera

    # Its own namespace: the module's node is still running on the default topics.
    process = start_node(tiny_checkpoint, tmp_path / "node.log", "camera_model:=camera_info",
                         f"visibility_threshold:={THRESHOLD}", "camera_height:=1.2", "camera_pitch_deg:=40.0",
                         "ground_plane_height:=0.0", "ground_frame_id:=base_footprint", "frame_id:=cam2",
                         namespace="/pinhole")
    client = None
    try:
        client = Client(namespace="/pinhole")
        client.wait_for_tracker(process)
        info_pub = client.node.create_publisher(CameraInfo, "camera_info", RELIABLE)
        k = [150.0, 0.0, 79.5, 0.0, 150.0, 59.5, 0.0, 0.0, 1.0]
        info = CameraInfo(width=SIZE[1], height=SIZE[0], k=k)
        assert client.spin_until(lambda: info_pub.get_subscription_count() > 0)
        info_pub.publish(info)
        camera = PinholeCamera.from_height_pitch(np.array(k), SIZE[1], SIZE[0], 1.2, 40.0)
        for attempt in range(20):  # the CameraInfo may arrive after the first frames
            out = client.send(frames[0], stamp=700 + attempt, attempts=10)  # best effort may drop one
            spheres = [m for m in out["markers"].markers if m.type == Marker.SPHERE]
            if spheres and all(m.header.frame_id == "base_footprint" for m in spheres):
                break
            info_pub.publish(info)
        else:
            pytest.fail("markers never moved to the ground frame")
        assert out["detections"].header.frame_id == "cam2"
        by_id = {int(d.id): d for d in out["detections"].detections}
        for m in spheres:
            assert m.pose.position.z == 0.0
            u, v = camera.world_to_pixel(np.array([m.pose.position.x, m.pose.position.y, 0.0]))
            # the sphere projects back to the entity's position (inside its box; the box centre is the
            # tracked position for an entity without mask pixels)
            box = by_id[m.id].bbox
            assert abs(u - box.center.position.x) <= box.size_x / 2 + 1e-6
            assert abs(v - box.center.position.y) <= box.size_y / 2 + 1e-6
    finally:
        if client is not None:
            client.close()
        stop_process(process)


def test_missing_checkpoint_fails_at_startup(tmp_path):
    missing = tmp_path / "no_such_model.pt"
    process = start_node(missing, tmp_path / "node.log")
    try:
        assert process.wait(timeout=60) != 0
    finally:
        stop_process(process)
    assert f"checkpoint not found: {missing}" in (tmp_path / "node.log").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch that sees no CUDA device")
def test_cuda_without_a_gpu_fails_at_startup_in_one_line(tiny_checkpoint, tmp_path):
    process = start_node(tiny_checkpoint, tmp_path / "node.log", "device:=cuda")
    try:
        assert process.wait(timeout=60) != 0
    finally:
        stop_process(process)
    log = (tmp_path / "node.log").read_text()
    assert "device cuda, but no CUDA device is available" in log and "(parameter 'device')" in log, log
    assert "Traceback" not in log, log


def _start_until_ready(checkpoint, log, namespace: str, env: dict, *params: str) -> subprocess.Popen:
    """The node started with config/tracker.yaml in its own environment, once it has said it is ready (or
    has ended, or 60 s have passed)."""
    cmd = [sys.executable, "-m", "loci_ros.tracker_node", "--ros-args", "-r", f"__ns:={namespace}",
           "--params-file", str(REPO / "config" / "tracker.yaml"), "-p", f"checkpoint:={checkpoint}"]
    for p in params:
        cmd += ["-p", p]
    with open(log, "w") as out:
        process = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    end = time.monotonic() + 60
    while "ready:" not in log.read_text() and process.poll() is None and time.monotonic() < end:
        time.sleep(0.2)
    return process


def test_without_vision_msgs_the_other_outputs_run(tiny_checkpoint, tmp_path):
    """On a ROS install without vision_msgs (a package on PYTHONPATH that fails to import stands for it) the node
    says so, leaves `detections` out of its ready line and starts with the other outputs."""
    missing = tmp_path / "no_vision_msgs" / "vision_msgs"
    missing.mkdir(parents=True)
    (missing / "__init__.py").write_text("raise ImportError('No module named vision_msgs')\n")
    log = tmp_path / "node.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(missing.parent), os.environ.get("PYTHONPATH", "")]))
    process = _start_until_ready(tiny_checkpoint, log, "/no_vision", env)
    stop_process(process)
    text = log.read_text()
    ready = [line for line in text.splitlines() if "loci_tracker ready:" in line]
    assert len(ready) == 1, text
    assert ready[0].endswith("outputs: masks, debug_image, markers"), ready[0]
    assert "vision_msgs is not installed: 'detections' will not be published" in text


BIG = (2400, 3200)  # a 23 MB rgb8 frame: beyond the default shared-memory segment, within config/fastdds_shm.xml's


def test_frames_lost_in_transport_are_named(ros, tiny_checkpoint, frames, tmp_path):
    """Best-effort input without the shared-memory profile: a 3200x2400 frame never arrives whole, and the node
    says so (with the remedy) instead of only counting a stale frame."""
    if os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE"):
        pytest.skip("a Fast DDS profile is set for this test run")
    log = tmp_path / "node.log"
    process = start_node(tiny_checkpoint, log, f"visibility_threshold:={THRESHOLD}", namespace="/lossy")
    client = None
    try:
        client = Client(namespace="/lossy")
        client.wait_for_tracker(process)
        big = numpy_to_image(np.zeros(BIG + (3,), np.uint8), "rgb8", header=Header(frame_id="camera_optical"))
        for _ in range(4):
            client.pub.publish(big)
            if client.spin_until(lambda: "lost in transport" in log.read_text(), timeout=0.5):
                break
        assert client.spin_until(lambda: "lost in transport" in log.read_text()), log.read_text()[-2000:]
        assert "FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds_shm.xml" in log.read_text()
        assert client.send(frames[0], stamp=800, attempts=5)["detections"] is not None  # small frames still work
    finally:
        if client is not None:
            client.close()
        stop_process(process)


PUBLISH_BIG = """
import sys, time
import numpy as np
import rclpy
from sensor_msgs.msg import Image
from loci_ros.image_conversion import numpy_to_image
rclpy.init()
node = rclpy.create_node("big_camera", namespace="/shm")
pub = node.create_publisher(Image, "image", 1)
while pub.get_subscription_count() == 0:
    rclpy.spin_once(node, timeout_sec=0.1)
time.sleep(0.5)
msg = numpy_to_image(np.full((%d, %d, 3), 100, np.uint8), "rgb8")
for i in range(8):
    msg.header.stamp.sec = i
    pub.publish(msg)
    time.sleep(0.5)
"""


def test_big_frames_arrive_with_the_shared_memory_profile(tiny_checkpoint, tmp_path):
    """config/fastdds_shm.xml in the camera's and the node's process: best-effort 3200x2400 frames are tracked,
    at most one of 8 lost, also while the node is busy with the one before."""
    env = dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(REPO / "config" / "fastdds_shm.xml"))
    log = tmp_path / "node.log"
    process = _start_until_ready(tiny_checkpoint, log, "/shm", env, "log_period:=1.0")
    try:
        camera = subprocess.run([sys.executable, "-c", PUBLISH_BIG % BIG], cwd=REPO, env=env, timeout=120,
                                capture_output=True, text=True)
        assert camera.returncode == 0, camera.stderr[-2000:]
        time.sleep(1.0)
    finally:
        stop_process(process)
    text = log.read_text()
    rates = re.findall(r"tracking at [\d.]+ Hz.*", text)
    assert rates, text[-2000:]
    # without the profile every such frame is lost; with it, one may be while the machine is loaded
    lost = [int(n) for n in re.findall(r"(\d+) image messages lost in transport", text)]
    assert max(lost, default=0) <= 1, text[-2000:]
