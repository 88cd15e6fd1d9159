"""`loci bag play` / `record` over real DDS on loopback: content, timing, /clock, loop, round trip."""

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from loci_ros.bags import IMAGE_TOPIC, SCENE_RESET_TOPIC, VIDEO_GAP_S
from loci_ros.bags.make import write_videos
from loci_ros.bags.storage import open_bag
from tests.test_bag_helpers import synthetic_video

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs.msg")

FPS = 24.0


@pytest.fixture(scope="module")
def videos():
    return [synthetic_video("video_a", 10, seed=1), synthetic_video("video_b", 4, seed=2)]


@pytest.fixture(scope="module")
def bag(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("play") / "bag"
    write_videos(videos, out, fps=FPS, progress=False)
    return out


@pytest.fixture
def node():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("loci_bag_test", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    node.spin_for = lambda cond, timeout: _spin(executor, cond, timeout)
    yield node
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)


def _spin(executor, cond, timeout):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        executor.spin_once(timeout_sec=0.02)
    return cond()


def play_cli(bag, *extra):
    """`loci bag play` through its fast entry point (the full `loci` command is tested in test_bag_make)."""
    return subprocess.Popen([sys.executable, "-m", "loci_ros.bag_commands", "play", str(bag), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_play_keeps_content_timing_and_publishes_clock(bag, videos, node):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from loci_ros.image_conversion import image_to_numpy

    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    images, resets, clocks = [], [], []
    node.create_subscription(Image, IMAGE_TOPIC, lambda m: images.append((time.monotonic(), m)), qos)
    node.create_subscription(Header, SCENE_RESET_TOPIC, resets.append, qos)
    node.create_subscription(Clock, "/clock", lambda m: clocks.append(m.clock.sec * 10**9 + m.clock.nanosec),
                             10)
    player = play_cli(bag, "--delay", "0.3", "--wait-for-subscribers",
                      "--topics", IMAGE_TOPIC, SCENE_RESET_TOPIC)
    node.spin_for(lambda: player.poll() is not None, 30)
    node.spin_for(lambda: len(images) >= 14, 2)
    out, err = player.communicate(timeout=10)
    assert player.returncode == 0, err

    frames = np.concatenate([v.frames for v in videos])
    assert len(images) == len(frames), err
    for (_, msg), frame in zip(images, frames):
        np.testing.assert_array_equal(image_to_numpy(msg), frame)
    assert [h.frame_id for h in resets] == ["video_a", "video_b"]

    # arrival times follow the stamps (within scheduling jitter of a loaded 2-core machine)
    arrival = np.array([a for a, _ in images])
    stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _, m in images])
    assert abs((arrival[-1] - arrival[0]) - (stamps[-1] - stamps[0])) < 0.3
    assert arrival[10] - arrival[9] > VIDEO_GAP_S * 0.8  # the gap between the videos is replayed

    # /clock runs in bag time, monotonically, across the bag
    assert len(clocks) > 10 and clocks == sorted(clocks)
    first = images[0][1].header.stamp
    assert clocks[0] >= first.sec * 10**9 + first.nanosec - 10**8
    assert clocks[-1] >= images[-1][1].header.stamp.sec * 10**9 + images[-1][1].header.stamp.nanosec


def test_record_round_trip_is_byte_identical(bag, tmp_path):
    from loci_ros.bags.player import play
    from loci_ros.bags.recorder import record

    topics = [IMAGE_TOPIC, "/ground_truth/detections"]
    out = tmp_path / "recorded"
    stop, ready, result = threading.Event(), threading.Event(), {}
    recorder = threading.Thread(
        target=lambda: result.update(stats=record(topics, out, stop=stop, ready=ready)))
    recorder.start()
    try:
        play(bag, rate=4.0, topics=topics, delay=0.2, wait_for_subscribers=True)
        assert ready.is_set(), "recorder never saw the topics"
    finally:
        time.sleep(0.3)  # the player waited for acks; let the recorder's executor run the last callbacks
        stop.set()
        recorder.join(20)
    assert result["stats"].recorded == {IMAGE_TOPIC: 14, "/ground_truth/detections": 14}

    def raw_by_topic(path):
        with open_bag(path) as reader:
            conns = {c.topic: c for c in reader.connections}
            data = {t: [bytes(raw) for c, _, raw in reader.messages([conns[t]])] for t in topics}
            return data, {t: c.digest for t, c in conns.items()}

    original, original_hashes = raw_by_topic(bag)
    recorded, recorded_hashes = raw_by_topic(out)
    # DDS pads a serialized message to a multiple of 4 bytes with zeros; ros2 bag record stores that too
    for t in topics:
        assert len(recorded[t]) == len(original[t])
        for sent, got in zip(original[t], recorded[t]):
            assert got[:len(sent)] == sent and set(got[len(sent):]) <= {0} and len(got) - len(sent) < 4
    assert recorded_hashes == {t: original_hashes[t] for t in topics}


def test_loop_replays_until_stopped(bag, node):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Header

    from loci_ros.bags.player import play

    resets = []
    node.create_subscription(Header, SCENE_RESET_TOPIC, resets.append,
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    stop, result = threading.Event(), {}
    player = threading.Thread(target=lambda: result.update(stats=play(
        bag, rate=8.0, loop=True, topics=[SCENE_RESET_TOPIC], delay=0.5, clock=False, stop=stop)))
    player.start()
    try:
        assert node.spin_for(lambda: len(resets) >= 5, 20), f"only {len(resets)} scene resets"
    finally:
        stop.set()
        player.join(10)
    assert result["stats"].loops >= 3
    assert [h.frame_id for h in resets[:4]] == ["video_a", "video_b"] * 2


def test_play_unknown_topic_is_an_error(bag):
    player = play_cli(bag, "--topics", "/nope")
    _, err = player.communicate(timeout=30)
    assert player.returncode == 1
    assert "no topic /nope" in err and IMAGE_TOPIC in err and "Traceback" not in err
