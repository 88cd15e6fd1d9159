"""numpy <-> sensor_msgs/Image without cv_bridge (there is no usable ROS 2 cv_bridge from PyPI).

Works with rclpy messages (``data`` is bytes / ``array.array``) and with rosbags message classes
(``data`` is a uint8 numpy array). Reading honours ``step`` (rows may be padded) and
``is_bigendian``; writing produces unpadded rows in the machine's byte order unless asked
otherwise. rclpy messages get ``msg.data = arr.tobytes()``: assigning a numpy array instead makes
rclpy copy element by element (tens of milliseconds for one 640x480 rgb8 frame).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

# encoding -> (element dtype, channels). Layout facts from the sensor_msgs image encodings.
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}

# Encodings that image_to_rgb8 can turn into a colour picture (16UC1 / 32FC1 are measurements, e.g. depth).
RGB_SOURCES = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16")


class UnsupportedEncodingError(ValueError):
    """An image encoding this module does not convert."""

    def __init__(self, encoding: str, supported=tuple(ENCODINGS)):
        super().__init__(f"unsupported image encoding {encoding!r} (supported: {', '.join(supported)})")
        self.encoding = encoding


class ImageLayoutError(ValueError):
    """An Image whose size fields and data do not agree."""


def _layout(encoding: str) -> tuple[np.dtype, int]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise UnsupportedEncodingError(encoding) from None


def image_to_numpy(msg: Any) -> np.ndarray:
    """Image message -> (H, W) or (H, W, C) array in native byte order.

    Zero-copy (a read-only view of ``msg.data``) when rows are unpadded and the byte order is native.
    """
    dtype, channels = _layout(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    src = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = width * channels * src.itemsize
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if step < row_bytes:
        raise ImageLayoutError(
            f"{msg.encoding} image of width {width} needs step >= {row_bytes} bytes, got step {step}")
    if buf.size < step * height:
        raise ImageLayoutError(
            f"{msg.encoding} image {width}x{height} with step {step} needs {step * height} bytes of data, "
            f"got {buf.size}")
    rows = buf[: step * height].reshape(height, step)
    if step != row_bytes:
        rows = np.ascontiguousarray(rows[:, :row_bytes])
    shape = (height, width, channels) if channels > 1 else (height, width)
    arr = rows.view(src).reshape(shape)
    return arr.astype(dtype, copy=False)  # swaps bytes only when the message is not in native order


def _as_dtype(arr: np.ndarray, dtype: np.dtype, encoding: str) -> np.ndarray:
    if arr.dtype == dtype:
        return arr
    if np.can_cast(arr.dtype, dtype, "safe") or (arr.dtype.kind == "f" and dtype.kind == "f"):
        return arr.astype(dtype)
    raise ValueError(f"cannot store a {arr.dtype} array as {encoding} ({dtype} elements) without loss")


def numpy_to_image(arr: np.ndarray, encoding: str, header: Any = None, msg_type: Any = None,
                   bigendian: bool | None = None) -> Any:
    """(H, W[, C]) array -> Image message of ``msg_type`` (default: rclpy's ``sensor_msgs.msg.Image``).

    ``msg_type`` may be a rosbags message class (``typestore.types['sensor_msgs/msg/Image']``);
    ``header`` is then required and must be a Header of that typestore. ``bigendian`` (default:
    this machine's order) picks the byte order of multi-byte encodings.
    """
    dtype, channels = _layout(encoding)
    arr = np.asarray(arr)
    if channels == 1 and arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    expected = 2 if channels == 1 else 3
    if arr.ndim != expected or (channels > 1 and arr.shape[2] != channels):
        want = "(H, W)" if channels == 1 else f"(H, W, {channels})"
        raise ValueError(f"{encoding} needs an array of shape {want}, got {arr.shape}")
    big = (sys.byteorder == "big") if bigendian is None else bool(bigendian)
    arr = np.ascontiguousarray(_as_dtype(arr, dtype, encoding), dtype=dtype.newbyteorder(">" if big else "<"))
    height, width = arr.shape[:2]
    fields = dict(height=height, width=width, encoding=encoding, is_bigendian=int(big),
                  step=width * channels * dtype.itemsize)
    if msg_type is None:
        from sensor_msgs.msg import Image

        msg_type = Image
    if hasattr(msg_type, "__msgtype__"):  # rosbags dataclass: every field is a constructor argument
        if header is None:
            raise ValueError("a rosbags Image needs a header (a Header of the same typestore)")
        return msg_type(header=header, data=arr.reshape(-1).view(np.uint8), **fields)
    msg = msg_type()
    if header is not None:
        msg.header = header
    for name, value in fields.items():
        setattr(msg, name, value)
    msg.data = arr.tobytes()
    return msg


def image_to_rgb8(msg: Any) -> np.ndarray:
    """Any colour or mono Image -> (H, W, 3) uint8 RGB (what the tracker eats).

    rgb8 without padding comes back as a read-only view; other encodings are converted
    (mono16 is scaled 0..65535 -> 0..255). 16UC1 / 32FC1 hold measurements, not colours, and raise.
    """
    if msg.encoding not in RGB_SOURCES:
        raise UnsupportedEncodingError(msg.encoding, RGB_SOURCES)
    arr = image_to_numpy(msg)
    enc = msg.encoding
    if enc == "rgb8":
        return arr
    if enc == "rgba8":
        return np.ascontiguousarray(arr[:, :, :3])
    if enc in ("bgr8", "bgra8"):
        return np.ascontiguousarray(arr[:, :, 2::-1])
    if enc == "mono16":
        arr = ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return np.repeat(arr[:, :, None], 3, axis=2)
