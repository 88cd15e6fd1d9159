"""The node's hand-written CDR (loci_ros/cdr.py, loci_ros/messages.py) against rclpy's own serialisation:
every output must decode, and rclpy must re-encode it to the same bytes, for any string lengths
(alignment). rclpy leaves padding bytes uninitialised, so those may differ; ours are zero."""

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs.msg")

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from loci_core.tracking.tracker import Entity, TrackedFrame, label_image  # noqa: E402
from loci_ros.cdr import CdrWriter  # noqa: E402
from loci_ros.messages import OutputSettings, build_outputs  # noqa: E402

TYPES = {"detections": Detection2DArray, "masks": Image, "debug_image": Image, "markers": MarkerArray}


def entities(height: int, width: int, count: int, rng) -> list[Entity]:
    out = []
    for k in range(count):
        mask = np.zeros((height, width), bool)
        hidden = bool(k % 3 == 2)
        if not hidden:
            mask[rng.integers(0, height // 2):, k::count] = True
        out.append(Entity(id=k * 3 + 1, position_px=tuple(rng.uniform(0, width, 2)), size_px=float(rng.uniform(1, 5)),
                          bbox=tuple(sorted(rng.uniform(0, width, 2))) * 2, visibility=float(rng.uniform(-0.1, 1.1)),
                          hidden=hidden, priority=0.0, gestalt=np.zeros(4, bool), mask=mask,
                          ground_xy=tuple(rng.normal(size=2)) if k % 2 else None))
    return out


def assert_same_but_padding(ours: bytes, theirs: bytes, name: str) -> None:
    assert len(ours) == len(theirs), name
    a, b = np.frombuffer(ours, np.uint8), np.frombuffer(theirs, np.uint8)
    differ = np.flatnonzero(a != b)
    assert not a[differ].any(), f"{name}: bytes {differ[a[differ] != 0][:5]} differ outside padding"


@pytest.mark.parametrize("frame_id", ["", "c", "cam", "camera_optical_frame", "é_frame"])
@pytest.mark.parametrize("count", [0, 1, 5])
def test_outputs_decode_and_reencode_to_the_same_bytes(frame_id, count):
    rng = np.random.default_rng(count)
    height, width = 30, 41  # odd widths: image steps and data lengths that are not multiples of 4 or 8
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = 1_700_000_123, 999_999_999
    settings = OutputSettings(ground_frame_id="map" + "x" * count, marker_lifetime=0.25)
    tracked = entities(height, width, count, rng)
    out = build_outputs(image, TrackedFrame(tracked, label_image(tracked, (height, width))), header, settings,
                        camera_k=[40.0, 0, 20.0, 0, 40.0, 15.0, 0, 0, 1])
    for name, msg_type in TYPES.items():
        data = getattr(out, name)
        msg = deserialize_message(data, msg_type)
        assert_same_but_padding(data, serialize_message(msg), name)
        first_header = msg.markers[0].header if name == "markers" else msg.header
        assert first_header.frame_id == frame_id and first_header.stamp.nanosec == 999_999_999
    markers = deserialize_message(out.markers, MarkerArray).markers
    assert len(markers) == 1 + 2 * count
    assert all(m.lifetime.sec == 0 and m.lifetime.nanosec == 250_000_000 for m in markers[1:])


def test_writer_aligns_each_field_to_its_size_after_the_encapsulation_header():
    w = CdrWriter()
    w.uint8(7)
    w.float64(1.5)
    w.string("ab")
    w.uint32(9)
    data = bytes(w)
    assert data[:4] == b"\x00\x01\x00\x00"
    body = data[4:]
    assert body[0] == 7 and body[1:8] == bytes(7)                 # double aligned to 8
    assert np.frombuffer(body[8:16], "<f8")[0] == 1.5
    assert body[16:20] == (3).to_bytes(4, "little") and body[20:23] == b"ab\x00"
    assert body[23:24] == b"\x00" and body[24:28] == (9).to_bytes(4, "little")  # uint32 aligned to 4
    assert len(data) == 32


def test_image_message_rejects_arrays_that_do_not_fit_the_encoding():
    from loci_ros.messages import Stamped, image_message

    stamped = Stamped(0, 0, "camera")
    for pixels, encoding in ((np.zeros((4, 5, 3), np.uint8), "mono8"), (np.zeros((4, 5), np.uint8), "rgb8"),
                             (np.zeros((4, 5, 3), np.float32), "rgb8"), (np.zeros(20, np.uint8), "mono8")):
        with pytest.raises(ValueError, match=encoding):
            image_message(pixels, encoding, stamped)
