"""`loci bag track`: the node's outputs computed offline, equal to OnlineTracker and to the live node."""

import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from loci_ros.bags import IMAGE_TOPIC, SCENE_RESET_TOPIC
from loci_ros.bags.make import boxes_from_labels, write_videos
from loci_ros.bags.storage import BagError, open_bag
from tests.process_helpers import stop_process
from tests.test_bag_helpers import synthetic_video

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs.msg")

OUTPUTS = {"/loci/detections": "vision_msgs/msg/Detection2DArray", "/loci/masks": "sensor_msgs/msg/Image",
           "/loci/debug_image": "sensor_msgs/msg/Image",
           "/loci/markers": "visualization_msgs/msg/MarkerArray"}


@pytest.fixture(scope="module")
def videos():
    return [synthetic_video("video_a", 6, seed=1), synthetic_video("video_b", 4, seed=2)]


@pytest.fixture(scope="module")
def bag(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("track_in") / "bag"
    write_videos(videos, out, progress=False)
    return out


def foreground_checkpoint(tiny_checkpoint, out_dir):
    """The untrained tiny model with its background mask pushed down, so slots win pixels (masks and
    boxes to compare, and results that depend on the frames seen; the plain untrained model leaves every
    pixel to the background). Also used by tests/test_node.py."""
    import torch

    from loci_core.model.checkpoint import load_model, save_checkpoint

    model, cfg, _ = load_model(tiny_checkpoint)
    with torch.no_grad():
        model.background_mask.mask.fill_(-10.0)
    return save_checkpoint(out_dir / "fg.pt", model, cfg)


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint, tmp_path_factory):
    return foreground_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("fg"))


@pytest.fixture(scope="module")
def params_file(repo_root, tmp_path_factory):
    """config/tracker.yaml with every spawned slot reported (the untrained slots are barely visible)."""
    import yaml

    sections = yaml.safe_load((repo_root / "config" / "tracker.yaml").read_text())
    (params,) = [s["ros__parameters"] for s in sections.values()]
    params["visibility_threshold"] = 0.0
    path = tmp_path_factory.mktemp("params") / "tracker.yaml"
    # `/**/loci_tracker` also matches the node inside a namespace (a plain `loci_tracker` key does not)
    path.write_text(yaml.safe_dump({"/**/loci_tracker": {"ros__parameters": params}}))
    return path


@pytest.fixture(scope="module")
def tracked(bag, checkpoint, params_file, tmp_path_factory):
    from loci_ros.bag_commands import main

    out = tmp_path_factory.mktemp("track_out") / "bag"
    assert main(["track", str(bag), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--params-file", str(params_file)]) == 0
    return out


def messages(path, topic):
    """[(bag time, rclpy message)] of one topic."""
    from rclpy.serialization import deserialize_message

    from loci_ros.bags.rosnode import message_class

    with open_bag(path) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [(t, deserialize_message(bytes(raw), message_class(c.msgtype)))
                for c, t, raw in reader.messages(conns)]


def detections_summary(array):
    from loci_ros.vision_types import box_xyxy

    return [(d.id, tuple(round(v, 6) for v in box_xyxy(d)), round(d.results[0].hypothesis.score, 6))
            for d in array.detections]


def test_outputs_have_the_input_stamps_and_consistent_masks(tracked, bag):
    from loci_ros.image_conversion import image_to_numpy

    with open_bag(tracked) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
    with open_bag(bag) as reader:
        inputs = {c.topic: c.msgtype for c in reader.connections}
    assert types == {**inputs, **OUTPUTS}  # outputs plus a copy of the input
    images = messages(tracked, IMAGE_TOPIC)
    for topic in OUTPUTS:
        out = messages(tracked, topic)
        assert [t for t, _ in out] == [t for t, _ in images], topic
    for (_, image), (_, dets), (_, masks) in zip(images, messages(tracked, "/loci/detections"),
                                                 messages(tracked, "/loci/masks")):
        assert dets.header == image.header and masks.header == image.header
        labels = image_to_numpy(masks)
        ids = {int(d.id) for d in dets.detections}
        assert set(np.unique(labels)) - {0} <= {k + 1 for k in ids}
        boxes = boxes_from_labels(labels)
        for det in dets.detections:  # visible entities: the box is the mask's extent
            if int(det.id) in boxes:
                x0, y0, x1, y1 = boxes[int(det.id)]
                assert (det.bbox.size_x, det.bbox.size_y) == (x1 - x0, y1 - y0)
    markers = messages(tracked, "/loci/markers")[0][1]
    assert markers.markers[0].action == markers.markers[0].DELETEALL


def test_equals_online_tracker_with_scene_resets(tracked, videos, checkpoint, params_file):
    from rclpy.serialization import deserialize_message
    from vision_msgs.msg import Detection2DArray

    from loci_core.data.camera import ProjectiveCamera
    from loci_core.tracking.tracker import OnlineTracker
    from loci_ros.bags.track import node_parameters
    from loci_ros.messages import Stamped, detection_array

    params = node_parameters(params_file, {"checkpoint": str(checkpoint)})
    assert params["camera_model"] == "cater" and params["visibility_threshold"] == 0.0
    tracker = OnlineTracker.from_checkpoint(
        checkpoint, camera=ProjectiveCamera.cater(), ground_height=params["ground_plane_height"],
        visibility_threshold=params["visibility_threshold"], seed=params["seed"])
    expected = []
    for video in videos:
        tracker.reset()
        for frame in video.frames:
            data = detection_array(tracker.step(frame).entities, Stamped(0, 0, ""))
            expected.append(detections_summary(deserialize_message(data, Detection2DArray)))
    got = [detections_summary(m) for _, m in messages(tracked, "/loci/detections")]
    assert got == expected
    assert sum(map(len, expected)) >= len(expected), "too few entities for a meaningful comparison"


def test_track_is_deterministic_and_errors_are_clear(tracked, bag, checkpoint, params_file, tmp_path,
                                                     capsys):
    from loci_ros.bag_commands import main

    again = tmp_path / "again"
    assert main(["track", str(bag), "--checkpoint", str(checkpoint), "--out", str(again), "--no-copy",
                 "--params-file", str(params_file)]) == 0
    first = [detections_summary(m) for _, m in messages(tracked, "/loci/detections")]
    assert [detections_summary(m) for _, m in messages(again, "/loci/detections")] == first
    with open_bag(again) as reader:
        assert {c.topic for c in reader.connections} == set(OUTPUTS)

    missing = tmp_path / "none.pt"
    assert main(["track", str(bag), "--checkpoint", str(missing), "--out", str(tmp_path / "x")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["track", str(bag), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "y"),
                 "--image-topic", "/nope"]) == 1
    assert "has no topic /nope (it has: /camera/camera_info, /camera/image_raw" in capsys.readouterr().err
    assert main(["track", str(bag), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "v"),
                 "--image-topic", "/camera/camera_info"]) == 1
    assert "/camera/camera_info carries sensor_msgs/msg/CameraInfo, not sensor_msgs/msg/Image or " \
           "sensor_msgs/msg/CompressedImage" in capsys.readouterr().err
    bad_params = tmp_path / "bad.yaml"
    bad_params.write_text("/**/loci_tracker:\n  ros__parameters:\n    visibility: 0.3\n")
    assert main(["track", str(bag), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "z"),
                 "--params-file", str(bad_params)]) == 1
    assert "unknown tracker parameter 'visibility'" in capsys.readouterr().err
    with pytest.raises(BagError):
        from loci_ros.bags.track import track_bag

        track_bag(tmp_path / "missing", tmp_path / "w", checkpoint=str(checkpoint))


def test_image_topic_of_another_type_is_named(checkpoint, tmp_path, capsys):
    from loci_ros.bag_commands import main
    from loci_ros.bags.storage import BagWriter
    from loci_ros.vision_types import typestore

    header = typestore().types["std_msgs/msg/Header"]
    stamp = typestore().types["builtin_interfaces/msg/Time"](sec=1, nanosec=0)
    wrong = tmp_path / "wrong"
    with BagWriter(wrong) as writer:
        writer.write(IMAGE_TOPIC, "std_msgs/msg/Header", 1_000_000_000, header(stamp=stamp, frame_id="camera"))
    assert main(["track", str(wrong), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"{IMAGE_TOPIC} carries std_msgs/msg/Header, not sensor_msgs/msg/Image" in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch that sees no CUDA device")
def test_cuda_without_a_gpu_is_one_clear_error(bag, checkpoint, tmp_path, capsys):
    from loci_ros.bag_commands import main

    out = tmp_path / "out"
    assert main(["track", str(bag), "--checkpoint", str(checkpoint), "--out", str(out), "--device", "cuda"]) == 1
    err = capsys.readouterr().err
    assert "device cuda, but no CUDA device is available" in err and "(parameter 'device')" in err, err
    assert "Traceback" not in err and not out.exists()


def test_params_file_sections_match_as_for_the_node(tmp_path, capsys):
    """Sections apply as rcl applies them to the node in the output namespace; bad values are errors."""
    from loci_ros.bags.track import node_parameters

    def seed(section, namespace):
        path = tmp_path / "params.yaml"
        path.write_text(f"{section}:\n  ros__parameters:\n    seed: 3\n")
        return node_parameters(path, namespace=namespace)["seed"]

    assert seed("/**/loci_tracker", "/loci") == seed("/**/loci_tracker", "") == 3
    assert seed("/loci/loci_tracker", "/loci") == 3 and seed("/loci/loci_tracker", "") == 0
    assert seed("loci_tracker", "") == 3
    capsys.readouterr()
    assert seed("loci_tracker", "/loci") == 0  # a node in /loci ignores a plain `loci_tracker` section
    assert "'/**/loci_tracker' applies in any namespace" in capsys.readouterr().err
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("/**/loci_tracker:\n  ros__parameters:\n    visibility_threshold: 1.5\n")
    with pytest.raises(ValueError, match="visibility_threshold must be within"):
        node_parameters(wrong)
    wrong.write_text("/**/loci_tracker:\n  ros__parameters:\n    camera_model: fisheye\n")
    with pytest.raises(ValueError, match="camera_model must be one of"):
        node_parameters(wrong)


@pytest.mark.ros
def test_offline_equals_live_node(bag, videos, tracked, checkpoint, params_file, repo_root, tmp_path):
    """bag play -> tracker_node -> recorded detections == bag track's detections, frame by frame, over both
    videos: the node resets on /loci/scene_reset as bag track does."""
    from loci_ros.bags.player import play
    from loci_ros.bags.recorder import record

    log = open(tmp_path / "node.log", "w")
    node = subprocess.Popen(
        [sys.executable, "-m", "loci_ros.tracker_node", "--ros-args",
         "--params-file", str(params_file), "-p", f"checkpoint:={checkpoint}",
         "-p", "input_reliability:=reliable", "-p", "queue_frames:=100", "-r", "__ns:=/loci",
         "-r", f"image:={IMAGE_TOPIC}"],
        cwd=repo_root, stdout=log, stderr=subprocess.STDOUT)
    out = tmp_path / "live"
    stop, ready, result = threading.Event(), threading.Event(), {}
    frames = sum(len(v.frames) for v in videos)
    recorder = threading.Thread(target=lambda: result.update(
        stats=record(["/loci/detections"], out, max_messages=frames, stop=stop, ready=ready)))
    recorder.start()
    try:
        assert ready.wait(60), "no /loci/detections from the node: " + (tmp_path / "node.log").read_text()
        # the node's relative `scene_reset` is /loci/scene_reset in its namespace, as in the bag
        play(bag, rate=0.5, topics=[IMAGE_TOPIC, SCENE_RESET_TOPIC], delay=0.2, clock=False,
             wait_for_subscribers=True)
        recorder.join(20)  # returns once it has a result for every frame
    finally:
        stop.set()
        recorder.join(20)
        stop_process(node, signal.SIGINT, grace_s=20)
        log.close()
    live = [detections_summary(m) for _, m in messages(out, "/loci/detections")]
    offline = [detections_summary(m) for _, m in messages(tracked, "/loci/detections")]
    assert len(offline) == frames
    # Same ids and boxes; scores may differ in the last float32 digits, since two processes may
    # reduce sums in another order (thread counts).
    assert [[(i, box) for i, box, _ in f] for f in live] == [[(i, box) for i, box, _ in f] for f in offline], \
        (tmp_path / "node.log").read_text()
    for live_frame, offline_frame in zip(live, offline, strict=True):
        assert [s for *_, s in live_frame] == pytest.approx([s for *_, s in offline_frame], abs=1e-4)
    assert "scene reset (video_b)" in (tmp_path / "node.log").read_text()


@pytest.mark.filterwarnings("ignore::DeprecationWarning:mcap_ros2.*")
def test_tracked_bag_decodes_with_mcap_ros2(tracked):
    from mcap_ros2.reader import read_ros2_messages

    (mcap_file,) = tracked.glob("*.mcap")
    counts = {}
    for item in read_ros2_messages(str(mcap_file), topics=list(OUTPUTS)):
        counts[item.channel.topic] = counts.get(item.channel.topic, 0) + 1
        if item.channel.topic == "/loci/markers":
            assert item.ros_msg.markers[0].action == 3  # DELETEALL
    assert counts == {topic: 10 for topic in OUTPUTS}
