"""Our vision_msgs interface package is wire-compatible with upstream vision_msgs 4.x.

The RIHS01 hash below is upstream's Detection2DArray hash (vision_msgs 4.x): equal hashes
mean real ROS 2 nodes, bags and tools accept our messages.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from loci_ros import vision_types

UPSTREAM_DETECTION2DARRAY = "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968"
REQUIRED = {"Point2D", "Pose2D", "BoundingBox2D", "BoundingBox2DArray", "ObjectHypothesis",
            "ObjectHypothesisWithPose", "Detection2D", "Detection2DArray", "VisionClass", "LabelInfo"}


def installed_share() -> Path:
    """share/vision_msgs of the rosidl build that `import vision_msgs` uses."""
    vision_msgs = pytest.importorskip("vision_msgs")
    site = Path(vision_msgs.__file__).resolve().parent
    # <prefix>/lib/python3.X/site-packages/vision_msgs -> <prefix>/share/vision_msgs
    share = site.parents[3] / "share" / "vision_msgs"
    if not share.is_dir():
        share = Path(sys.prefix) / "share" / "vision_msgs"
    return share


def test_interface_package_declares_all_messages(repo_root):
    src = repo_root / "interfaces" / "vision_msgs"
    names = {p.stem for p in (src / "msg").glob("*.msg")}
    assert REQUIRED <= names
    cmake = (src / "CMakeLists.txt").read_text()
    for name in names:
        assert f"msg/{name}.msg" in cmake, f"{name}.msg is not passed to rosidl_generate_interfaces"
    xml = (src / "package.xml").read_text()
    assert 'format="3"' in xml and "rosidl_interface_packages" in xml


def test_rosbags_hash_of_our_texts_matches_upstream():
    store = vision_types.typestore()
    assert store.hash_rihs01("vision_msgs/msg/Detection2DArray") == UPSTREAM_DETECTION2DARRAY


def test_rosidl_generated_hashes_match_upstream_and_rosbags():
    share = installed_share()
    store = vision_types.typestore()
    described = json.loads((share / "msg" / "Detection2DArray.json").read_text())
    hashes = {h["type_name"]: h["hash_string"] for h in described["type_hashes"]}
    assert hashes["vision_msgs/msg/Detection2DArray"] == UPSTREAM_DETECTION2DARRAY
    # every message: rosidl (what rclpy nodes announce) == rosbags (what our bags record)
    for name in sorted(REQUIRED):
        described = json.loads((share / "msg" / f"{name}.json").read_text())
        own = described["type_hashes"][0]
        assert own["type_name"] == f"vision_msgs/msg/{name}"
        assert own["hash_string"] == store.hash_rihs01(f"vision_msgs/msg/{name}"), name


def test_cdr_interoperates_between_rclpy_and_rosbags():
    vision_msgs = pytest.importorskip("vision_msgs.msg")
    from rclpy.serialization import deserialize_message, serialize_message

    hdr = vision_types.header(12_000_000_345, "camera_optical_frame")
    dets = [vision_types.detection(hdr, str(k), (k, 2 * k, k + 10.5, 2 * k + 7.25), "entity", 0.1 * k)
            for k in range(4)]
    bag_msg = vision_types.detection_array(hdr, dets)
    raw = bytes(vision_types.typestore().serialize_cdr(bag_msg, "vision_msgs/msg/Detection2DArray"))
    ros_msg = deserialize_message(raw, vision_msgs.Detection2DArray)
    assert ros_msg.header.stamp.sec == 12 and ros_msg.header.stamp.nanosec == 345
    assert [d.id for d in ros_msg.detections] == ["0", "1", "2", "3"]
    assert vision_types.box_xyxy(ros_msg.detections[3]) == pytest.approx((3, 6, 13.5, 13.25))
    assert ros_msg.detections[2].results[0].hypothesis.score == pytest.approx(0.2)
    # rclpy's bytes carry the same data; only alignment padding may differ (rclpy does not zero it),
    # so compare after a rosbags round trip, which writes zero padding
    store = vision_types.typestore()
    back = store.deserialize_cdr(serialize_message(ros_msg), "vision_msgs/msg/Detection2DArray")
    assert bytes(store.serialize_cdr(back, "vision_msgs/msg/Detection2DArray")) == raw
    assert back.detections[1].bbox.size_x == pytest.approx(10.5)
    np.testing.assert_array_equal(back.detections[0].results[0].pose.covariance, np.zeros(36))


def test_missing_texts_are_reported(monkeypatch, tmp_path):
    monkeypatch.setattr(vision_types, "SOURCE_DIR", tmp_path / "nowhere")
    monkeypatch.setattr(vision_types.sys, "prefix", str(tmp_path))
    monkeypatch.setenv("AMENT_PREFIX_PATH", "")
    with pytest.raises(FileNotFoundError, match="vision_msgs .msg files not found"):
        vision_types.message_texts()
