"""vision_msgs in rosbags: a Kilted typestore that knows our interface package, plus message builders.

Bags are written and read with rosbags, which needs no ROS install; its typestores ship the
standard messages but not vision_msgs. We register the project's own ``interfaces/vision_msgs``
texts (the field lists give the same RIHS01 hashes as upstream vision_msgs 4.x, so the bags
interoperate with real ROS 2 tools). The texts are looked up in the source tree first, then in the
``share/vision_msgs/msg`` of every ament prefix (the venv build or a ROS install).
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

PACKAGE = "vision_msgs"
MESSAGES = ("Point2D", "Pose2D", "BoundingBox2D", "BoundingBox2DArray", "ObjectHypothesis",
            "ObjectHypothesisWithPose", "Detection2D", "Detection2DArray", "VisionClass", "LabelInfo")
SOURCE_DIR = Path(__file__).resolve().parents[1] / "interfaces" / PACKAGE / "msg"


def msg_dirs() -> list[Path]:
    """Where .msg texts of vision_msgs may live, most specific first."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    return [SOURCE_DIR] + [Path(p) / "share" / PACKAGE / "msg" for p in prefixes]


def message_texts() -> dict[str, str]:
    """{'Detection2DArray': '<msg text>', ...} from the first directory that holds all MESSAGES."""
    for directory in msg_dirs():
        if all((directory / f"{name}.msg").is_file() for name in MESSAGES):
            return {name: (directory / f"{name}.msg").read_text() for name in MESSAGES}
    searched = ", ".join(str(d) for d in msg_dirs())
    raise FileNotFoundError(f"vision_msgs .msg files not found (searched: {searched})")


@cache
def typestore() -> Any:
    """The ROS 2 Kilted rosbags typestore with vision_msgs registered (shared, do not mutate)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    definitions: dict = {}
    for name, text in message_texts().items():
        definitions.update(get_types_from_msg(text, f"{PACKAGE}/msg/{name}"))
    store.register(definitions)
    return store


def msg_type(msgtype: str) -> Any:
    """The rosbags class of e.g. 'vision_msgs/msg/Detection2D'."""
    return typestore().types[msgtype]


def header(stamp_ns: int, frame_id: str) -> Any:
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    stamp = msg_type("builtin_interfaces/msg/Time")(sec=sec, nanosec=nanosec)
    return msg_type("std_msgs/msg/Header")(stamp=stamp, frame_id=frame_id)


def stamp_ns(hdr: Any) -> int:
    """Nanoseconds of a Header (rosbags or rclpy)."""
    return int(hdr.stamp.sec) * 1_000_000_000 + int(hdr.stamp.nanosec)


def _zero_pose_with_covariance() -> Any:
    import numpy as np

    point = msg_type("geometry_msgs/msg/Point")(x=0.0, y=0.0, z=0.0)
    quat = msg_type("geometry_msgs/msg/Quaternion")(x=0.0, y=0.0, z=0.0, w=1.0)
    pose = msg_type("geometry_msgs/msg/Pose")(position=point, orientation=quat)
    return msg_type("geometry_msgs/msg/PoseWithCovariance")(pose=pose, covariance=np.zeros(36, np.float64))


def detection(hdr: Any, track_id: str, box_xyxy: tuple[float, float, float, float],
              class_id: str, score: float) -> Any:
    """A Detection2D with one hypothesis; box as (x_min, y_min, x_max, y_max) in pixels."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    middle = msg_type("vision_msgs/msg/Point2D")(x=(x0 + x1) / 2, y=(y0 + y1) / 2)
    center = msg_type("vision_msgs/msg/Pose2D")(position=middle, theta=0.0)
    bbox = msg_type("vision_msgs/msg/BoundingBox2D")(center=center, size_x=x1 - x0, size_y=y1 - y0)
    hypothesis = msg_type("vision_msgs/msg/ObjectHypothesisWithPose")(
        hypothesis=msg_type("vision_msgs/msg/ObjectHypothesis")(class_id=class_id, score=float(score)),
        pose=_zero_pose_with_covariance())
    return msg_type("vision_msgs/msg/Detection2D")(header=hdr, results=[hypothesis], bbox=bbox,
                                                   id=str(track_id))


def detection_array(hdr: Any, detections: list) -> Any:
    return msg_type("vision_msgs/msg/Detection2DArray")(header=hdr, detections=list(detections))


def box_xyxy(det: Any) -> tuple[float, float, float, float]:
    """(x_min, y_min, x_max, y_max) of a Detection2D (rosbags, rclpy or mcap_ros2 decoded)."""
    c, sx, sy = det.bbox.center.position, det.bbox.size_x, det.bbox.size_y
    return (c.x - sx / 2, c.y - sy / 2, c.x + sx / 2, c.y + sy / 2)
