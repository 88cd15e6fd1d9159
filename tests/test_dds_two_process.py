"""vision_msgs/Detection2DArray and sensor_msgs/Image between two processes over real DDS (loopback).

A subprocess of the venv's Python echoes what it receives on `in/*` to `out/*`; the test publishes,
receives the echo and checks content, and checks the type hash the other process announces.
DDS isolation (random domain, LOCALHOST discovery) comes from tests/conftest.py via the environment.
"""

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tests.process_helpers import stop_process

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
vision_msgs = pytest.importorskip("vision_msgs.msg")

UPSTREAM_DETECTION2DARRAY = "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968"
N = 5

ECHO = textwrap.dedent("""
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    rclpy.init()
    node = rclpy.create_node("loci_echo")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    # transient local: see the test's subscriptions
    kept = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pubs = {"dets": node.create_publisher(Detection2DArray, "out/dets", kept),
            "image": node.create_publisher(Image, "out/image", kept)}
    node.create_subscription(Detection2DArray, "in/dets", pubs["dets"].publish, qos)
    node.create_subscription(Image, "in/image", pubs["image"].publish, qos)
    print("ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
""")


def make_detections(k, header):
    msg = vision_msgs.Detection2DArray(header=header)
    for j in range(3):
        det = vision_msgs.Detection2D(header=header, id=f"{k}-{j}")
        det.bbox.center.position.x = 10.0 * j + k
        det.bbox.center.position.y = 5.0 * j
        det.bbox.size_x, det.bbox.size_y = 4.0, 6.5
        hyp = vision_msgs.ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = "entity", 0.25 * j
        det.results.append(hyp)
        msg.detections.append(det)
    return msg


def test_detections_and_images_cross_processes():
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from loci_ros.image_conversion import image_to_numpy, numpy_to_image

    echo = subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("loci_dds_test", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        got = {"dets": [], "image": []}
        pub_dets = node.create_publisher(vision_msgs.Detection2DArray, "in/dets", qos)
        pub_image = node.create_publisher(Image, "in/image", qos)
        # discovery is not symmetric: the echo's writers may match these readers only after it echoed the
        # first frames, so both ends keep them (transient local, depth 10 >= N)
        kept = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(vision_msgs.Detection2DArray, "out/dets", got["dets"].append, kept)
        node.create_subscription(Image, "out/image", got["image"].append, kept)

        def spin_until(cond, timeout):
            end = time.monotonic() + timeout
            while not cond() and time.monotonic() < end:
                assert echo.poll() is None, f"echo process died: {echo.stdout.read()}"
                executor.spin_once(timeout_sec=0.05)
            return cond()

        # both directions matched: our publishers see the echo's subscriptions and vice versa
        assert spin_until(lambda: pub_dets.get_subscription_count() and pub_image.get_subscription_count()
                          and node.count_publishers("out/dets") and node.count_publishers("out/image"), 20.0)

        # the other process announces upstream's type hash for Detection2DArray (rosidl type support)
        # (only the echo process publishes out/dets; its node name may not be known yet, so no name filter)
        remote = node.get_publishers_info_by_topic("out/dets")
        assert remote and {str(i.topic_type_hash) for i in remote} == {UPSTREAM_DETECTION2DARRAY}

        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(N)]
        for k in range(N):
            header = Header(frame_id="camera_optical_frame")
            header.stamp.sec, header.stamp.nanosec = 100 + k, 7
            pub_dets.publish(make_detections(k, header))
            pub_image.publish(numpy_to_image(frames[k], "rgb8", header=header))
            executor.spin_once(timeout_sec=0.01)
        assert spin_until(lambda: len(got["dets"]) >= N and len(got["image"]) >= N, 20.0), \
            f"received {len(got['dets'])} detection arrays and {len(got['image'])} images of {N}"
    finally:
        stop_process(echo)  # first, while this side's readers still answer its writers
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)

    for k, (dets, image) in enumerate(zip(got["dets"], got["image"])):
        assert dets.header.stamp.sec == 100 + k and dets.header.frame_id == "camera_optical_frame"
        assert [d.id for d in dets.detections] == [f"{k}-{j}" for j in range(3)]
        assert [d.bbox.center.position.x for d in dets.detections] == [k, 10.0 + k, 20.0 + k]
        assert dets.detections[2].results[0].hypothesis.score == 0.5
        assert image.header.stamp.sec == 100 + k and image.encoding == "rgb8"
        np.testing.assert_array_equal(image_to_numpy(image), frames[k])
