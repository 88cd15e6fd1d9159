"""numpy <-> sensor_msgs/Image: every encoding, padded rows, big-endian data, rclpy and rosbags messages."""

import numpy as np
import pytest

from loci_ros.image_conversion import (
    ENCODINGS,
    ImageLayoutError,
    UnsupportedEncodingError,
    image_to_numpy,
    image_to_rgb8,
    numpy_to_image,
)

sensor_msgs = pytest.importorskip("sensor_msgs.msg")
rclpy_serialization = pytest.importorskip("rclpy.serialization")


def sample(encoding, height=5, width=7, seed=0):
    """A random array of the shape and dtype the encoding stores (odd width on purpose)."""
    rng = np.random.default_rng(seed)
    dtype, channels = ENCODINGS[encoding]
    shape = (height, width, channels) if channels > 1 else (height, width)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


def over_the_wire(msg):
    """What a subscriber gets: serialize and deserialize with rclpy (data becomes array.array)."""
    raw = rclpy_serialization.serialize_message(msg)
    return rclpy_serialization.deserialize_message(raw, sensor_msgs.Image)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_rclpy(encoding):
    arr = sample(encoding)
    msg = numpy_to_image(arr, encoding)
    assert isinstance(msg, sensor_msgs.Image)
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step * msg.height == len(msg.data)
    received = over_the_wire(msg)
    back = image_to_numpy(received)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_rosbags_and_cdr_interop(encoding):
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    header = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=3, nanosec=4), frame_id="cam")
    arr = sample(encoding, seed=1)
    msg = numpy_to_image(arr, encoding, header=header, msg_type=store.types["sensor_msgs/msg/Image"])
    np.testing.assert_array_equal(image_to_numpy(msg), arr)
    # rosbags CDR is read by rclpy as the same image
    raw = bytes(store.serialize_cdr(msg, "sensor_msgs/msg/Image"))  # a memoryview
    via_rclpy = rclpy_serialization.deserialize_message(raw, sensor_msgs.Image)
    assert via_rclpy.header.frame_id == "cam" and via_rclpy.header.stamp.sec == 3
    np.testing.assert_array_equal(image_to_numpy(via_rclpy), arr)


def test_rosbags_image_needs_header():
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    with pytest.raises(ValueError, match="header"):
        numpy_to_image(sample("mono8"), "mono8", msg_type=store.types["sensor_msgs/msg/Image"])


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "mono16", "32FC1", "bgra8"])
def test_padded_rows_are_skipped(encoding):
    arr = sample(encoding, height=4, width=5, seed=2)
    dtype, channels = ENCODINGS[encoding]
    row = 5 * channels * dtype.itemsize
    step = row + 11  # odd padding, filled with junk that must not leak into the pixels
    data = np.full((4, step), 0xAB, np.uint8)
    data[:, :row] = np.ascontiguousarray(arr).view(np.uint8).reshape(4, row)
    msg = sensor_msgs.Image(height=4, width=5, encoding=encoding, is_bigendian=0, step=step,
                            data=data.tobytes())
    np.testing.assert_array_equal(image_to_numpy(over_the_wire(msg)), arr)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1"])
def test_big_endian(encoding):
    arr = sample(encoding, seed=3)
    msg = numpy_to_image(arr, encoding, bigendian=True)
    assert msg.is_bigendian == 1
    # The bytes really are big-endian: decode them independently of the module.
    big = np.frombuffer(bytes(msg.data), dtype=arr.dtype.newbyteorder(">")).reshape(arr.shape)
    np.testing.assert_array_equal(big, arr)
    back = image_to_numpy(over_the_wire(msg))
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, arr)


def test_big_endian_padded_by_hand():
    arr = sample("mono16", height=3, width=3, seed=4)
    step = 3 * 2 + 2
    data = np.zeros((3, step), np.uint8)
    data[:, :6] = arr.astype(">u2").view(np.uint8).reshape(3, 6)
    msg = sensor_msgs.Image(height=3, width=3, encoding="mono16", is_bigendian=1, step=step,
                            data=data.tobytes())
    np.testing.assert_array_equal(image_to_numpy(msg), arr)


def test_unsupported_encoding_names_it():
    msg = sensor_msgs.Image(height=2, width=2, encoding="yuv422", step=4, data=bytes(8))
    with pytest.raises(UnsupportedEncodingError, match="yuv422"):
        image_to_numpy(msg)
    with pytest.raises(UnsupportedEncodingError, match="bayer_rggb8"):
        numpy_to_image(np.zeros((2, 2), np.uint8), "bayer_rggb8")


def test_inconsistent_layout_is_reported():
    short = sensor_msgs.Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(40))
    with pytest.raises(ImageLayoutError, match="48 bytes"):
        image_to_numpy(short)
    narrow = sensor_msgs.Image(height=1, width=4, encoding="rgb8", step=8, data=bytes(8))
    with pytest.raises(ImageLayoutError, match="step"):
        image_to_numpy(narrow)


def test_wrong_shape_or_lossy_dtype_is_rejected():
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        numpy_to_image(np.zeros((4, 4), np.uint8), "rgb8")
    with pytest.raises(ValueError, match="without loss"):
        numpy_to_image(np.zeros((4, 4), np.int64), "mono8")
    # widening is fine
    assert image_to_numpy(numpy_to_image(np.full((2, 2), 7, np.uint8), "mono16")).dtype == np.uint16


def test_rgb8_helper_from_every_colour_encoding():
    rgb = sample("rgb8", seed=5)
    alpha = np.full(rgb.shape[:2] + (1,), 200, np.uint8)
    cases = {
        "rgb8": rgb,
        "bgr8": rgb[:, :, ::-1],
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([rgb[:, :, ::-1], alpha], axis=2),
    }
    for encoding, arr in cases.items():
        out = image_to_rgb8(over_the_wire(numpy_to_image(arr, encoding)))
        assert out.dtype == np.uint8 and out.shape == rgb.shape, encoding
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)

    grey = sample("mono8", seed=6)
    out = image_to_rgb8(numpy_to_image(grey, "mono8"))
    np.testing.assert_array_equal(out, np.stack([grey] * 3, axis=2))

    wide = np.array([[0, 257, 65535, 32896]], np.uint16)
    out = image_to_rgb8(numpy_to_image(wide, "mono16"))
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 255, 128])

    with pytest.raises(UnsupportedEncodingError, match="32FC1"):
        image_to_rgb8(numpy_to_image(np.zeros((2, 2), np.float32), "32FC1"))
