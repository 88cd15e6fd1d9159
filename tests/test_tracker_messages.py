"""Entities -> ROS messages (loci_ros.messages) and the debug overlay (loci_ros.overlay). No DDS."""

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs.msg")

from rclpy.serialization import deserialize_message  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from loci_core.tracking.tracker import Entity, TrackedFrame, label_image  # noqa: E402
from loci_ros.image_conversion import image_to_numpy  # noqa: E402
from loci_ros.messages import (  # noqa: E402
    DETECTION_CLASS_ID,
    LABEL_NS,
    MARKER_NS,
    OutputSettings,
    Stamped,
    build_outputs,
    marker_array,
)
from loci_ros.overlay import draw_overlay, entity_color  # noqa: E402

H, W = 48, 64


def make_entities():
    visible_mask = np.zeros((H, W), bool)
    visible_mask[10:20, 5:15] = True
    visible = Entity(id=1, position_px=(9.5, 14.5), size_px=3.0, bbox=(5.0, 10.0, 15.0, 20.0), visibility=0.8,
                     hidden=False, priority=2.0, gestalt=np.array([1, 0, 1], bool), mask=visible_mask)
    hidden = Entity(id=4, position_px=(45.0, 30.0), size_px=4.0, bbox=(40.0, 26.0, 50.0, 34.0),
                    visibility=0.1, hidden=True, priority=0.0, gestalt=np.array([0, 0, 1], bool),
                    mask=np.zeros((H, W), bool), ground_xy=(1.25, -0.5))
    return [visible, hidden]


def tracked(entities):
    return TrackedFrame(entities, label_image(entities, (H, W)))


def header():
    h = Header(frame_id="camera_optical")
    h.stamp.sec, h.stamp.nanosec = 17, 250
    return h


def test_build_outputs_fills_all_four_messages_with_the_input_header():
    image = np.full((H, W, 3), 100, np.uint8)
    entities = make_entities()
    out = build_outputs(image, tracked(entities), header(), OutputSettings(ground_frame_id="map"))

    det = deserialize_message(out.detections, Detection2DArray)
    assert det.header == header()
    assert [d.id for d in det.detections] == ["1", "4"]
    d = det.detections[0]
    assert d.header == header()
    box = d.bbox
    assert (box.center.position.x, box.center.position.y, box.size_x, box.size_y) == (10, 15, 10, 10)
    assert len(d.results) == 1 and d.results[0].hypothesis.class_id == DETECTION_CLASS_ID
    assert [x.results[0].hypothesis.score for x in det.detections] == pytest.approx([0.8, 0.1])

    masks = deserialize_message(out.masks, Image)
    assert masks.encoding == "mono8" and masks.header == header()
    labels = image_to_numpy(masks)
    assert labels.shape == (H, W)
    assert (labels == 2).sum() == 100 and set(np.unique(labels)) == {0, 2}  # entity 1 -> label 2

    debug = deserialize_message(out.debug_image, Image)
    assert debug.encoding == "rgb8" and debug.header == header()
    assert np.array_equal(image_to_numpy(debug), draw_overlay(image, entities))

    markers = deserialize_message(out.markers, MarkerArray).markers
    assert markers[0].action == Marker.DELETEALL
    assert [(m.ns, m.id, m.type) for m in markers[1:]] == [
        (MARKER_NS, 1, Marker.SPHERE), (LABEL_NS, 1, Marker.TEXT_VIEW_FACING),
        (MARKER_NS, 4, Marker.SPHERE), (LABEL_NS, 4, Marker.TEXT_VIEW_FACING)]
    assert all(m.header.stamp == header().stamp for m in markers)
    # entity 1 has no ground position: camera frame; entity 4 sits on the ground plane in the ground frame
    assert markers[1].header.frame_id == "camera_optical" and markers[3].header.frame_id == "map"
    assert (markers[3].pose.position.x, markers[3].pose.position.y) == (1.25, -0.5)
    assert markers[3].color.a < markers[1].color.a  # hidden entities are drawn faint
    assert markers[4].text == "(4)" and markers[2].text == "1"
    assert markers[1].scale.x == markers[1].scale.z == 0.2 and markers[2].scale.z == pytest.approx(0.1)
    assert markers[1].lifetime.sec == 1 and markers[1].pose.orientation.w == 1.0


def test_masks_and_overlay_use_the_trackers_label_image():
    # the tracker's label image is published as it is (the node does not rebuild it from the entities)
    image = np.full((H, W, 3), 100, np.uint8)
    entities = make_entities()
    labels = np.zeros((H, W), np.uint8)
    labels[30:40, 40:50] = 5  # differs from the entities' masks, so a rebuilt image would show
    out = build_outputs(image, TrackedFrame(entities, labels), header(), OutputSettings())
    assert np.array_equal(image_to_numpy(deserialize_message(out.masks, Image)), labels)
    debug = image_to_numpy(deserialize_message(out.debug_image, Image))
    assert np.array_equal(debug, draw_overlay(image, entities, labels))
    with pytest.raises(ValueError, match="label image"):
        build_outputs(image, TrackedFrame(entities, labels[:, :10]), header(), OutputSettings())


def test_outputs_can_be_switched_off_and_frame_overridden():
    image = np.zeros((H, W, 3), np.uint8)
    out = build_outputs(image, tracked(make_entities()), header(), OutputSettings(frame_id="other"),
                        detections=False, debug=False)
    assert out.detections is None and out.debug_image is None
    masks = deserialize_message(out.masks, Image)
    assert masks.header.frame_id == "other" and masks.header.stamp == header().stamp
    assert deserialize_message(out.markers, MarkerArray).markers[1].header.frame_id == "other"


def test_camera_frame_markers_lie_on_the_entity_ray():
    entities = make_entities()[:1]
    k = [50.0, 0, 30.0, 0, 60.0, 25.0, 0, 0, 1]
    settings = OutputSettings(marker_depth=3.0)
    def spheres(entities, **kwargs):
        data = marker_array(entities, Stamped.of(header()), (H, W), settings, **kwargs)
        return deserialize_message(data, MarkerArray).markers[1::2]

    sphere = spheres(entities, camera_k=k)[0]
    p = sphere.pose.position
    assert p.z == pytest.approx(3.0)
    assert (p.x / p.z * 50.0 + 30.0, p.y / p.z * 60.0 + 25.0) == pytest.approx(entities[0].position_px)
    # Without intrinsics the ray goes through a nominal pinhole centred on the image.
    centred = make_entities()[0]
    centred.position_px = ((W - 1) / 2, (H - 1) / 2)
    p = spheres([centred])[0].pose.position
    assert (p.x, p.y, p.z) == pytest.approx((0.0, 0.0, 3.0))


def test_empty_entity_list_clears_the_markers():
    out = build_outputs(np.zeros((H, W, 3), np.uint8), tracked([]), header(), OutputSettings())
    assert len(deserialize_message(out.detections, Detection2DArray).detections) == 0
    assert [m.action for m in deserialize_message(out.markers, MarkerArray).markers] == [Marker.DELETEALL]
    assert image_to_numpy(deserialize_message(out.masks, Image)).max() == 0


def test_overlay_tints_masks_and_marks_hidden_entities():
    image = np.full((H, W, 3), 100, np.uint8)
    entities = make_entities()
    before = image.copy()
    out = draw_overlay(image, entities)
    assert np.array_equal(image, before), "the input image must not be modified"
    colour = np.array(entity_color(1))
    inside = out[16:19, 6:14].reshape(-1, 3).astype(int)  # mask interior, away from box, dot and text
    assert np.all(np.abs(inside - (100 * 0.55 + colour * 0.45)) <= 1)
    # the hidden entity: no tint at its centre, but its dashed outline uses its colour
    assert np.array_equal(out[30, 45], [100, 100, 100])
    hidden_colour = np.all(out == np.array(entity_color(4), np.uint8), axis=2)
    assert hidden_colour[24:36, 38:52].sum() > 10
    assert not hidden_colour[:, :30].any()
    # far from every entity the image is untouched
    assert np.array_equal(out[40:, :30], image[40:, :30])


def test_entity_colours_differ_between_neighbouring_ids():
    colours = [entity_color(i) for i in range(12)]
    assert len(set(colours)) == 12
    for a, b in zip(colours, colours[1:]):
        assert sum(abs(x - y) for x, y in zip(a, b)) > 100


def test_emit_hands_over_each_message_as_soon_as_it_is_ready():
    emitted = []
    out = build_outputs(np.zeros((H, W, 3), np.uint8), tracked(make_entities()), header(), OutputSettings(),
                        emit=lambda name, msg: emitted.append((name, msg)))
    assert [name for name, _ in emitted] == ["detections", "masks", "debug_image", "markers"]
    assert all(getattr(out, name) is msg for name, msg in emitted)
