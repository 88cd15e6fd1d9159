"""Tracked entities -> the node's ROS messages, as pure functions of their inputs.

The live node and `loci bag track` both call `build_outputs`, so what a bag records is exactly what the
node publishes. Messages are rclpy message objects; serialize them with
`rclpy.serialization.serialize_message(msg)` for a rosbag2 writer.

Conventions (ros2.md §1.4-1.6): every output carries the input image's header (stamp and optical frame;
the frame may be overridden), `Detection2D.id` is the entity id as a string, boxes are in input pixels,
and the label image holds k+1 for entity k. Markers start with a DELETEALL so entities that disappear do
not linger in RViz.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from loci_core.tracker import Entity, label_image
from loci_ros.image_conversion import numpy_to_image
from loci_ros.overlay import draw_overlay, entity_color

DETECTION_CLASS_ID = "entity"
MARKER_NS = "entities"
LABEL_NS = "entity_ids"
# Without camera intrinsics, camera-frame markers assume this horizontal field of view (a typical webcam).
NOMINAL_HFOV_RAD = math.radians(60.0)
# Marker opacity: hidden entities are drawn faint so they read as "still tracked, not seen".
VISIBLE_ALPHA, HIDDEN_ALPHA = 0.9, 0.35


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
    """One frame's messages; a field is None when that output was not asked for."""

    detections: object | None = None   # vision_msgs/Detection2DArray
    masks: object | None = None        # sensor_msgs/Image mono8
    debug_image: object | None = None  # sensor_msgs/Image rgb8
    markers: object | None = None      # visualization_msgs/MarkerArray


def output_header(header: Header, frame_id: str = "") -> Header:
    """A copy of the input header, with `frame_id` replaced if one is given."""
    return Header(stamp=header.stamp, frame_id=frame_id or header.frame_id)


def detection_array(entities: Sequence[Entity], header: Header):
    """vision_msgs/Detection2DArray: one Detection2D per entity, hidden ones included (score = visibility)."""
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    out = Detection2DArray(header=header)
    for e in entities:
        det = Detection2D(header=header, id=str(e.id))
        cx, cy, w, h = e.bbox_center_size
        det.bbox.center.position.x, det.bbox.center.position.y = cx, cy
        det.bbox.size_x, det.bbox.size_y = w, h
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = DETECTION_CLASS_ID
        hyp.hypothesis.score = min(max(float(e.visibility), 0.0), 1.0)
        det.results.append(hyp)
        out.detections.append(det)
    return out


def mask_image(labels: np.ndarray, header: Header):
    """sensor_msgs/Image mono8 from a label image (0 = background, k+1 = entity k)."""
    return numpy_to_image(labels, "mono8", header=header)


def debug_image(overlay: np.ndarray, header: Header):
    """sensor_msgs/Image rgb8 from an overlay drawn by `loci_ros.overlay.draw_overlay`."""
    return numpy_to_image(overlay, "rgb8", header=header)


def marker_array(entities: Sequence[Entity], header: Header, image_size: tuple[int, int],
                 settings: OutputSettings, camera_k: Sequence[float] | None = None):
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
    camera_frame = settings.frame_id or header.frame_id
    lifetime = _duration(settings.marker_lifetime)
    scale = settings.marker_scale

    clear = Marker(header=Header(stamp=header.stamp, frame_id=camera_frame), action=Marker.DELETEALL)
    markers = MarkerArray(markers=[clear])
    for e in entities:
        if e.ground_xy is not None:
            frame = settings.ground_frame_id
            gx, gy = e.ground_xy
            pos = Point(x=float(gx), y=float(gy), z=float(settings.ground_plane_height))
            label_pos = Point(x=pos.x, y=pos.y, z=pos.z + 0.8 * scale)  # z up in the ground frame
        else:
            frame = camera_frame
            x, y = e.position_px
            d = settings.marker_depth
            pos = Point(x=(x - cx) / fx * d, y=(y - cy) / fy * d, z=d)
            label_pos = Point(x=pos.x, y=pos.y - 0.8 * scale, z=pos.z)  # y down in an optical frame
        r, g, b = (c / 255.0 for c in entity_color(e.id))
        color = ColorRGBA(r=r, g=g, b=b, a=HIDDEN_ALPHA if e.hidden else VISIBLE_ALPHA)
        head = Header(stamp=header.stamp, frame_id=frame)

        sphere = Marker(header=head, ns=MARKER_NS, id=e.id, type=Marker.SPHERE, action=Marker.ADD,
                        color=color, lifetime=lifetime)
        sphere.pose.position = pos
        sphere.pose.orientation.w = 1.0
        sphere.scale.x = sphere.scale.y = sphere.scale.z = scale
        text = Marker(header=head, ns=LABEL_NS, id=e.id, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD,
                      color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0), lifetime=lifetime,
                      text=f"({e.id})" if e.hidden else str(e.id))
        text.pose.position = label_pos
        text.pose.orientation.w = 1.0
        text.scale.z = 0.5 * scale
        markers.markers.extend([sphere, text])
    return markers


def build_outputs(image: np.ndarray, entities: Sequence[Entity], header: Header, settings: OutputSettings,
                  *, detections: bool = True, masks: bool = True, debug: bool = True, markers: bool = True,
                  camera_k: Sequence[float] | None = None, emit=None) -> TrackerOutputs:
    """All of one frame's messages from the input image (H, W, 3 uint8 RGB) and its entities.

    `emit(name, msg)`, if given, is called as soon as each message is ready, in the order detections,
    masks, debug_image, markers (the live node publishes the small, most wanted result first)."""
    head = output_header(header, settings.frame_id)
    shape = image.shape[:2]
    out = TrackerOutputs()

    def ready(name, msg):
        setattr(out, name, msg)
        if emit is not None:
            emit(name, msg)

    if detections:
        ready("detections", detection_array(entities, head))
    labels = label_image(entities, shape) if (masks or debug) else None
    if masks:
        ready("masks", mask_image(labels, head))
    if debug:
        ready("debug_image", debug_image(draw_overlay(image, entities, labels), head))
    if markers:
        ready("markers", marker_array(entities, head, shape, settings, camera_k))
    return out


def _duration(seconds: float) -> Duration:
    whole = int(seconds)
    return Duration(sec=whole, nanosec=int(round((seconds - whole) * 1e9)))
