"""Videos (+ ground truth) -> a rosbag2 bag with camera, camera_info and ground-truth topics.

Topic layout and how videos are separated: see loci_ros/bags/__init__.py. The writer needs only
rosbags (no ROS install); the CATER reading is loci_core.data's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loci_ros import vision_types as vt
from loci_ros.bags import (
    CAMERA_FRAME,
    CAMERA_INFO_TOPIC,
    DEFAULT_START_NS,
    GT_DETECTIONS_TOPIC,
    GT_MASKS_TOPIC,
    IMAGE_TOPIC,
    SCENE_RESET_TOPIC,
    VIDEO_GAP_S,
)
from loci_ros.bags.storage import BagWriter
from loci_ros.image_conversion import numpy_to_image

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
DETECTIONS = "vision_msgs/msg/Detection2DArray"
HEADER = "std_msgs/msg/Header"
# class_id of ground-truth objects whose shape is not known
UNKNOWN_CLASS = "object"


@dataclass
class Video:
    """One video to put in a bag. Frames are RGB uint8; ground truth is optional."""

    name: str
    frames: np.ndarray
    """(T, H, W, 3) uint8 RGB"""
    instance_ids: np.ndarray | None = None
    """(T, H, W) uint8: 0 background, k+1 = object k"""
    visible_fraction: np.ndarray | None = None
    """(T, K) float in [0, 1]: the detection score of object k"""
    object_classes: list[str] | None = None
    """K class ids (e.g. CATER shapes) for the detections' hypotheses"""
    camera_k: np.ndarray | None = None
    """(3, 3) pinhole intrinsics of the frames' pixel grid; no camera_info topic when None"""


def boxes_from_labels(labels: np.ndarray) -> dict[int, tuple[int, int, int, int]]:
    """{k: (x_min, y_min, x_max, y_max)} (pixels, max exclusive) of each object k in (H, W) labels."""
    boxes = {}
    for value in np.unique(labels):
        if value == 0:
            continue
        rows = np.flatnonzero((labels == value).any(axis=1))
        cols = np.flatnonzero((labels == value).any(axis=0))
        boxes[int(value) - 1] = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return boxes


def camera_info(k: np.ndarray, width: int, height: int, header) -> object:
    """rosbags sensor_msgs/CameraInfo of an undistorted pinhole camera with intrinsics K."""
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    p = np.zeros((3, 4))
    p[:, :3] = k
    roi = vt.msg_type("sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0,
                                                   do_rectify=False)
    return vt.msg_type(CAMERA_INFO)(header=header, height=height, width=width, distortion_model="plumb_bob",
                             d=np.zeros(5), k=k.reshape(-1), r=np.eye(3).reshape(-1), p=p.reshape(-1),
                             binning_x=0, binning_y=0, roi=roi)


def ground_truth_detections(labels: np.ndarray, header, visible_fraction: np.ndarray | None,
                            classes: list[str] | None) -> object:
    dets = []
    for k, box in sorted(boxes_from_labels(labels).items()):
        score = float(visible_fraction[k]) if visible_fraction is not None else 1.0
        cls = classes[k] if classes is not None and k < len(classes) else UNKNOWN_CLASS
        dets.append(vt.detection(header, str(k), box, cls, score))
    return vt.detection_array(header, dets)


def frame_stamps(num_frames: int, start_ns: int, fps: float) -> np.ndarray:
    return start_ns + np.round(np.arange(num_frames) * (1e9 / fps)).astype(np.int64)


def write_videos(videos: Iterable[Video], out: str | Path, storage: str = "mcap", fps: float = 24.0,
                 start_ns: int = DEFAULT_START_NS, progress: bool = True) -> dict:
    """Write `videos` one after the other into a new bag at `out`. Returns a summary dict."""
    from tqdm import tqdm

    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    names, frames = [], 0
    t0 = int(start_ns)
    image_type = vt.msg_type(IMAGE)
    with BagWriter(out, storage) as bag:
        for video in videos:
            _check(video)
            stamps = frame_stamps(len(video.frames), t0, fps)
            height, width = video.frames.shape[1:3]
            bag.write(SCENE_RESET_TOPIC, HEADER, stamps[0], vt.header(stamps[0], video.name))
            for i in tqdm(range(len(video.frames)), desc=f"bag {video.name}", unit="frame",
                          disable=not progress, leave=False):
                t = int(stamps[i])
                head = vt.header(t, CAMERA_FRAME)
                if video.camera_k is not None:
                    info = camera_info(video.camera_k, width, height, head)
                    bag.write(CAMERA_INFO_TOPIC, CAMERA_INFO, t, info)
                bag.write(IMAGE_TOPIC, IMAGE, t, numpy_to_image(video.frames[i], "rgb8", head, image_type))
                if video.instance_ids is not None:
                    labels = video.instance_ids[i]
                    vis = video.visible_fraction[i] if video.visible_fraction is not None else None
                    bag.write(GT_DETECTIONS_TOPIC, DETECTIONS, t,
                              ground_truth_detections(labels, head, vis, video.object_classes))
                    bag.write(GT_MASKS_TOPIC, IMAGE, t, numpy_to_image(labels, "mono8", head, image_type))
            names.append(video.name)
            frames += len(video.frames)
            t0 = int(stamps[-1]) + int(round((VIDEO_GAP_S + 1.0 / fps) * 1e9))
        messages = bag.count
    return {"bag": str(out), "videos": names, "frames": frames, "messages": messages}


def _check(video: Video) -> None:
    f = video.frames
    if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8 or len(f) == 0:
        raise ValueError(f"video {video.name}: frames must be (T, H, W, 3) uint8 with T > 0, "
                         f"got {f.shape} {f.dtype}")
    if video.instance_ids is not None and video.instance_ids.shape != f.shape[:3]:
        raise ValueError(f"video {video.name}: instance ids {video.instance_ids.shape} do not match frames "
                         f"{f.shape[:3]}")
