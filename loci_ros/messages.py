"""Tracked entities -> the node's ROS messages, serialised, as pure functions of their inputs.

The live node and `loci bag track` both call `build_outputs`, so what a bag records is exactly what the
node publishes. Every message comes out as CDR bytes (loci_ros/cdr.py says why): the node publishes them
as they are, a bag writer stores them, and `rclpy.serialization.deserialize_message(data, type)` turns
one into a message object.

Conventions (docs/ros.md): every output carries the input image's header (stamp and optical frame;
the frame may be overridden), `Detection2D.id` is the entity id as a string, boxes are in input pixels,
and the label image holds k+1 for entity k. Markers start with a DELETEALL so entities that disappear do
not linger in RViz.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from visualization_msgs.msg import Marker

from loci_core.tracking.tracker import Entity, TrackedFrame
from loci_ros.cdr import CdrWriter, constant_block
from loci_ros.overlay import draw_overlay, entity_color

DETECTION_CLASS_ID = "entity"
MARKER_NS = "entities"
LABEL_NS = "entity_ids"
# Without camera intrinsics, camera-frame markers assume this horizontal field of view (a typical webcam).
NOMINAL_HFOV_RAD = math.radians(60.0)
# Marker opacity: hidden entities are drawn faint so they read as "still tracked, not seen".
VISIBLE_ALPHA, HIDDEN_ALPHA = 0.9, 0.35
LABEL_COLOR = (1.0, 1.0, 1.0, 1.0)
# An identity quaternion (x, y, z, w) and the zero covariance of a hypothesis pose we do not estimate.
_IDENTITY_ORIENTATION = (0.0, 0.0, 0.0, 1.0)
_ZERO_COVARIANCE = (0.0,) * 36
_MARKER_IDS = struct.Struct("<3i")  # Marker id, type, action
_MARKER_GEOMETRY = struct.Struct("<10d4fiI")  # Marker pose, scale, color (ColorRGBA) and lifetime (Duration)


def _unused_middle_fields(w: CdrWriter) -> None:
    """Marker fields between lifetime and text, all empty: frame_locked, points, colors, texture_resource,
    texture (an empty CompressedImage: header, format, data) and uv_coordinates."""
    w.uint8(0)
    w.uint32(0)
    w.uint32(0)
    w.string("")
    w.header(0, 0, "")
    w.string("")
    w.byte_sequence(b"")
    w.uint32(0)


def _unused_last_fields(w: CdrWriter) -> None:
    """Marker fields after text, all empty: mesh_resource, mesh_file (filename, data) and
    mesh_use_embedded_materials."""
    w.string("")
    w.string("")
    w.byte_sequence(b"")
    w.uint8(0)


# Encoded once: the middle block follows lifetime (4-aligned), the last block is placed after aligning to 4.
_MARKER_MIDDLE = constant_block(_unused_middle_fields)
_MARKER_LAST = constant_block(_unused_last_fields)


@dataclass
class OutputSettings:
    """How entities become messages; the node fills this from its parameters."""

    frame_id: str = ""
    """frame of the image-space outputs and camera-frame markers; '' keeps the input image's frame"""
    ground_frame_id: str = "world"
    """frame of markers placed on the ground plane (entities with ground_xy)"""
    ground_plane_height: float = 0.0
    """z of the ground plane in ground_frame_id (where ground-plane markers sit)"""
    marker_depth: float = 2.0
    """distance along the camera ray (m) of camera-frame markers (no ground position known)"""
    marker_scale: float = 0.2
    """sphere diameter (m) of the markers; labels are drawn at 0.8 x this height"""
    marker_lifetime: float = 1.0
    """seconds a marker stays in RViz without an update (0 = forever)"""


@dataclass
class TrackerOutputs:
    """One frame's messages as CDR bytes; a field is None when that output was not asked for."""

    detections: bytes | None = None   # vision_msgs/Detection2DArray
    masks: bytes | None = None        # sensor_msgs/Image mono8
    debug_image: bytes | None = None  # sensor_msgs/Image rgb8
    markers: bytes | None = None      # visualization_msgs/MarkerArray


@dataclass(frozen=True)
class Stamped:
    """What of a std_msgs/Header the outputs copy: the stamp and a frame id."""

    sec: int
    nanosec: int
    frame_id: str

    @classmethod
    def of(cls, header, frame_id: str = "") -> Stamped:
        """From an input Header (rclpy or rosbags), with `frame_id` replacing its frame if given."""
        return cls(header.stamp.sec, header.stamp.nanosec, frame_id or header.frame_id)


def detection_array(entities: Sequence[Entity], stamped: Stamped) -> bytes:
    """vision_msgs/Detection2DArray: one Detection2D per entity, hidden ones included (score = visibility)."""
    w = CdrWriter()
    w.header(stamped.sec, stamped.nanosec, stamped.frame_id)
    w.uint32(len(entities))
    for e in entities:
        w.header(stamped.sec, stamped.nanosec, stamped.frame_id)
        w.uint32(1)  # results: one ObjectHypothesisWithPose
        w.string(DETECTION_CLASS_ID)
        cx, cy, width, height = e.bbox_center_size
        score = min(max(float(e.visibility), 0.0), 1.0)
        w.float64(score, 0.0, 0.0, 0.0, *_IDENTITY_ORIENTATION, *_ZERO_COVARIANCE,  # score, pose + covariance
                  cx, cy, 0.0, width, height)                                     # bbox: centre, theta, size
        w.string(str(e.id))
    return bytes(w)


def image_message(pixels: np.ndarray, encoding: str, stamped: Stamped) -> bytes:
    """sensor_msgs/Image of a uint8 array: (H, W) for 'mono8', (H, W, 3) for 'rgb8'."""
    channels = {"mono8": 1, "rgb8": 3}[encoding]
    expected_ndim = 3 if channels > 1 else 2
    if pixels.dtype != np.uint8 or pixels.ndim != expected_ndim or pixels.shape[2:] not in ((), (channels,)):
        raise ValueError(f"{encoding} needs a uint8 array of (H, W{', 3' if channels > 1 else ''}), "
                         f"got {pixels.dtype} {pixels.shape}")
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    w = CdrWriter()
    w.header(stamped.sec, stamped.nanosec, stamped.frame_id)
    w.uint32(height)
    w.uint32(width)
    w.string(encoding)
    w.uint8(0)  # is_bigendian: one-byte channels
    w.uint32(width * channels)  # step
    w.byte_sequence(pixels.reshape(-1).data)
    return bytes(w)


def marker_array(entities: Sequence[Entity], stamped: Stamped, image_size: tuple[int, int],
                 settings: OutputSettings, camera_k: Sequence[float] | None = None) -> bytes:
    """visualization_msgs/MarkerArray: DELETEALL, then a sphere and an id label per entity.

    Entities with `ground_xy` sit on the ground plane in `settings.ground_frame_id`; the others on their
    camera ray at `settings.marker_depth` in the image frame, using `camera_k` (3x3 row-major, as in
    CameraInfo.k) when known and a nominal pinhole of the image size otherwise.
    """
    height, width = image_size
    if camera_k is not None and camera_k[0] > 0 and camera_k[4] > 0:
        fx, cx, fy, cy = camera_k[0], camera_k[2], camera_k[4], camera_k[5]
    else:
        fx = fy = (width / 2.0) / math.tan(NOMINAL_HFOV_RAD / 2.0)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    camera_frame = settings.frame_id or stamped.frame_id
    lifetime = _duration(settings.marker_lifetime)
    scale = settings.marker_scale

    in_camera = Stamped(stamped.sec, stamped.nanosec, camera_frame)
    on_ground = Stamped(stamped.sec, stamped.nanosec, settings.ground_frame_id)

    w = CdrWriter()
    w.uint32(1 + 2 * len(entities))
    _marker(w, in_camera, action=Marker.DELETEALL)
    for e in entities:
        if e.ground_xy is not None:
            head = on_ground
            gx, gy = e.ground_xy
            pos = (float(gx), float(gy), float(settings.ground_plane_height))
            label_pos = (pos[0], pos[1], pos[2] + 0.8 * scale)  # z up in the ground frame
        else:
            head = in_camera
            x, y = e.position_px
            d = settings.marker_depth
            pos = ((x - cx) / fx * d, (y - cy) / fy * d, d)
            label_pos = (pos[0], pos[1] - 0.8 * scale, pos[2])  # y down in an optical frame
        r, g, b = (c / 255.0 for c in entity_color(e.id))
        _marker(w, head, ns=MARKER_NS, marker_id=e.id, marker_type=Marker.SPHERE, position=pos,
                scale=(scale, scale, scale), color=(r, g, b, HIDDEN_ALPHA if e.hidden else VISIBLE_ALPHA),
                lifetime=lifetime)
        _marker(w, head, ns=LABEL_NS, marker_id=e.id, marker_type=Marker.TEXT_VIEW_FACING, position=label_pos,
                scale=(0.0, 0.0, 0.5 * scale), color=LABEL_COLOR, lifetime=lifetime,
                text=f"({e.id})" if e.hidden else str(e.id))
    return bytes(w)


def _marker(w: CdrWriter, stamped: Stamped, *, ns: str = "", marker_id: int = 0, marker_type: int = 0,
            action: int = Marker.ADD, position=(0.0, 0.0, 0.0), scale=(0.0, 0.0, 0.0), color=(0.0, 0.0, 0.0, 0.0),
            lifetime=(0, 0), text: str = "") -> None:
    """One visualization_msgs/Marker; the fields the node does not use stay empty."""
    w.header(stamped.sec, stamped.nanosec, stamped.frame_id)
    w.string(ns)
    w.packed(_MARKER_IDS, 4, marker_id, marker_type, action)
    w.packed(_MARKER_GEOMETRY, 8, *position, *_IDENTITY_ORIENTATION, *scale, *color, *lifetime)
    w.raw(_MARKER_MIDDLE)
    w.string(text)
    w.align(4)
    w.raw(_MARKER_LAST)


def build_outputs(image: np.ndarray, tracked: TrackedFrame, header, settings: OutputSettings,
                  *, detections: bool = True, masks: bool = True, debug: bool = True, markers: bool = True,
                  camera_k: Sequence[float] | None = None, emit=None) -> TrackerOutputs:
    """All of one frame's messages from the input image (H, W, 3 uint8 RGB), what the tracker made of it
    (`OnlineTracker.step`: entities and label image) and its header (a std_msgs/Header, rclpy's or rosbags').

    `emit(name, data)`, if given, is called as soon as each message is ready, in the order detections,
    masks, debug_image, markers (the live node publishes the small, most wanted result first)."""
    stamped = Stamped.of(header, settings.frame_id)
    shape = image.shape[:2]
    entities, labels = tracked.entities, tracked.labels
    if labels.shape != shape:
        raise ValueError(f"label image {labels.shape} does not match the input image {shape}")
    out = TrackerOutputs()

    def ready(name, data):
        setattr(out, name, data)
        if emit is not None:
            emit(name, data)

    if detections:
        ready("detections", detection_array(entities, stamped))
    if masks:
        ready("masks", image_message(labels, "mono8", stamped))
    if debug:
        ready("debug_image", image_message(draw_overlay(image, entities, labels), "rgb8", stamped))
    if markers:
        ready("markers", marker_array(entities, stamped, shape, settings, camera_k))
    return out


def _duration(seconds: float) -> tuple[int, int]:
    """builtin_interfaces/Duration (sec, nanosec) of `seconds`."""
    whole = int(seconds)
    return whole, int(round((seconds - whole) * 1e9))
