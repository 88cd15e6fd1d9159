"""Plain CDR encoding (little endian, as rmw_fastrtps and rosbag2 store messages), written field by field.

The node's outputs are built straight into these bytes: rclpy would first need a Python object for every
nested message (a Marker holds nine) and then convert each field into C when publishing, which for one
frame's MarkerArray cost more than the rest of the output work together (bench/README.md, Node).
rclpy publishers take the bytes as they are (`Publisher.publish(bytes)`), and rosbag2
stores exactly these bytes. tests/test_cdr.py checks every message type against rclpy's own
deserialisation and re-serialisation, byte for byte but for padding (rclpy leaves it uninitialised; ours
is zero).

Layout (OMG CDR version 1): a 4-byte encapsulation header (00 01 00 00: CDR, little endian), then the
fields in declaration order, each primitive aligned to its own size counted from the end of that header;
a string is a uint32 length that counts a terminating NUL, then the bytes and the NUL; a sequence is a
uint32 count, then its elements.
"""

from __future__ import annotations

import struct
from functools import cache

ENCAPSULATION_CDR_LE = b"\x00\x01\x00\x00"
_UINT32 = struct.Struct("<I")
_TIME_AND_LENGTH = struct.Struct("<iII")  # a Header's stamp and its frame_id's length


@cache
def _doubles(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}d")


class CdrWriter:
    """Appends fields to one message's bytes; `bytes()` returns the finished message."""

    def __init__(self):
        self._buffer = bytearray(ENCAPSULATION_CDR_LE)

    def __bytes__(self) -> bytes:
        return bytes(self._buffer)

    def align(self, size: int) -> None:
        """Pad to the next multiple of `size` (a field's size) from the end of the encapsulation header."""
        pad = -(len(self._buffer) - len(ENCAPSULATION_CDR_LE)) % size
        if pad:
            self._buffer += bytes(pad)

    def raw(self, data: bytes) -> None:
        """Bytes encoded elsewhere (their alignment is the caller's business)."""
        self._buffer += data

    def packed(self, layout: struct.Struct, alignment: int, *values) -> None:
        """Fields that follow each other without padding, as one `struct` layout ('<...')."""
        self.align(alignment)
        self._buffer += layout.pack(*values)

    def uint32(self, value: int) -> None:
        self.packed(_UINT32, 4, value)

    def uint8(self, value: int) -> None:
        self._buffer.append(value)

    def float64(self, *values: float) -> None:
        self.packed(_doubles(len(values)), 8, *values)

    def string(self, text: str) -> None:
        data = text.encode()
        self.align(4)
        self._buffer += _UINT32.pack(len(data) + 1) + data + b"\0"

    def byte_sequence(self, data: bytes | memoryview) -> None:
        self.uint32(len(data))
        self._buffer += data

    def header(self, sec: int, nanosec: int, frame_id: str) -> None:
        """std_msgs/Header."""
        data = frame_id.encode()
        self.align(4)
        self._buffer += _TIME_AND_LENGTH.pack(sec, nanosec, len(data) + 1) + data + b"\0"


def constant_block(write) -> bytes:
    """The bytes `write(writer)` appends, for fields that never change: a block encoded once and added with
    `CdrWriter.raw` wherever it is needed. Valid only where the block starts at a multiple of 4 and holds
    no 8-byte field (its padding was worked out for such a start)."""
    w = CdrWriter()
    write(w)
    return bytes(w)[len(ENCAPSULATION_CDR_LE):]
