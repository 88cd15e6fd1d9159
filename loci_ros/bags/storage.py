"""Opening and writing rosbag2 bags (rosbags library), with errors that name the bag and the problem.

Bags are written in rosbag2 format version 9 (ROS 2 Kilted) with the standard storage plugins, and
every connection carries its message definition and RIHS01 type hash from our typestore, so
`ros2 bag info/play`, rosbags and mcap-ros2-support all read them.

MCAP files carry CRC32s of every chunk and of the summary, as rosbag2's own writer does: rosbags
checks a chunk's CRC when it reads the chunk, this module checks the summary's before opening and,
when a chunk fails, names the topics and bag times it holds. sqlite3 bags carry no checksum.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import McapWriter

from loci_ros.vision_types import typestore

STORAGES = ("mcap", "sqlite3")
BAG_VERSION = 9


class BagError(RuntimeError):
    """A bag that cannot be opened, read or written."""


@contextmanager
def open_bag(path: str | Path) -> Iterator[Any]:
    """A rosbags Reader of the bag directory (or single .mcap/.db3 file) at `path`."""
    from rosbags.rosbag2 import Reader
    from rosbags.rosbag2.errors import ReaderError

    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    for mcap in _mcap_files(path):
        _check_summary(mcap, path)
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, FileNotFoundError, OSError, KeyError, ValueError) as err:
        raise BagError(f"bag {path} cannot be opened: {err}") from None
    try:
        yield reader
    except ReaderError as err:
        where = [found for mcap in _mcap_files(path) if (found := _damaged_chunk(mcap))]
        raise BagError(f"bag {path} is damaged: {where[0] if where else err}") from None
    finally:
        reader.close()


# MCAP layout (https://mcap.dev/spec): a chunk record is opcode (1), length (8), message start and end
# time and uncompressed size (3 x 8), then its CRC32; a file ends with the footer record (opcode, length,
# summary start, summary offset start, summary CRC32) and the 8-byte magic.
_CHUNK_CRC_AT = 1 + 8 + 3 * 8
_FOOTER_SIZE = 1 + 8 + 8 + 8 + 4
_TAIL_SIZE = _FOOTER_SIZE + 8
_FOOTER_OPCODE = 0x02
_MAGIC = b"\x89MCAP0\r\n"


def _mcap_files(path: Path) -> list[Path]:
    return [path] if path.suffix == ".mcap" else sorted(path.glob("*.mcap"))


def _check_summary(mcap: Path, bag: Path) -> None:
    """Refuse an MCAP file whose summary (topics, chunk index, counts) does not match its CRC."""
    with open(mcap, "rb") as f:
        size = f.seek(0, 2)
        if size < _TAIL_SIZE:
            return  # too short to hold a footer: the reader says what is wrong
        f.seek(size - _TAIL_SIZE)
        tail = f.read(_TAIL_SIZE)
        if tail[0] != _FOOTER_OPCODE or tail[-8:] != _MAGIC:
            return  # no footer (a truncated file): the reader says what is wrong
        summary_start, _, crc = struct.unpack("<QQI", tail[9:_FOOTER_SIZE])
        covered_end = size - _TAIL_SIZE + _FOOTER_SIZE - 4  # up to the footer's CRC field
        if crc == 0 or not 0 < summary_start < covered_end:
            return  # no CRC written (older bags), or no summary: nothing to check here
        f.seek(summary_start)
        if zlib.crc32(f.read(covered_end - summary_start)) != crc:
            raise BagError(f"bag {bag} is damaged: the summary of {mcap.name} (its index of topics and "
                           "chunks) fails its CRC check")


def _damaged_chunk(mcap: Path) -> str | None:
    """Where the first chunk of `mcap` whose records do not match their CRC lies: its topics and times."""
    from mcap.data_stream import ReadDataStream
    from mcap.exceptions import McapError
    from mcap.reader import make_reader
    from mcap.records import Chunk
    from mcap.stream_reader import get_chunk_data_stream

    with open(mcap, "rb") as f:
        summary = make_reader(f).get_summary()
        if summary is None:
            return None
        start = summary.statistics.message_start_time if summary.statistics else 0
        for index in summary.chunk_indexes:
            f.seek(index.chunk_start_offset + 1 + 8)
            try:
                get_chunk_data_stream(Chunk.read(ReadDataStream(f)), validate_crc=True)
                continue
            except (McapError, ValueError, struct.error, EOFError):
                pass
            topics = sorted({summary.channels[c].topic for c in index.message_index_offsets
                             if c in summary.channels})
            first, last = index.message_start_time, index.message_end_time
            return (f"the chunk of {mcap.name} at byte {index.chunk_start_offset} fails its CRC check: "
                    f"messages of {', '.join(topics) or 'unknown topics'} stamped {first} to {last} ns "
                    f"({(first - start) / 1e9:.3f} to {(last - start) / 1e9:.3f} s into the bag) are damaged")
    return None


class _ChecksummedMcapWriter(McapWriter):
    """rosbags' MCAP storage, with the chunk and summary CRCs it leaves at 0 ("not computed") filled in."""

    def close_chunk(self) -> None:
        start, records = self.bio.tell(), self.chunk.bio.getvalue()
        super().close_chunk()
        end = self.bio.tell()
        self.bio.seek(start + _CHUNK_CRC_AT)
        self.bio.write(struct.pack("<I", zlib.crc32(records)))
        self.bio.seek(end)

    def close(self, version: int, metadata: str) -> None:
        super().close(version, metadata)
        with open(self.path, "r+b") as f:
            size = f.seek(0, 2)
            f.seek(size - _TAIL_SIZE + 9)
            (summary_start,) = struct.unpack("<Q", f.read(8))
            crc_at = size - _TAIL_SIZE + _FOOTER_SIZE - 4
            f.seek(summary_start)
            crc = zlib.crc32(f.read(crc_at - summary_start))
            f.seek(crc_at)
            f.write(struct.pack("<I", crc))


class _ChecksummedWriter(Writer):
    STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: _ChecksummedMcapWriter}


class BagWriter:
    """Writes messages (rosbags objects or CDR bytes) to a new bag; connections are made on first use."""

    def __init__(self, path: str | Path, storage: str = "mcap", discard_on_error: bool = False):
        """`discard_on_error`: an exception while writing removes the bag (half an output must not pass
        for a whole one); otherwise the messages written so far are kept, as a recorder wants."""
        if storage not in STORAGES:
            raise BagError(f"unknown bag storage {storage!r} (choose from {', '.join(STORAGES)})")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"output bag {self.path} exists already; remove it or choose another path")
        if not self.path.parent.is_dir():
            raise BagError(f"output bag {self.path}: directory {self.path.parent} does not exist")
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = _ChecksummedWriter(self.path, version=BAG_VERSION, storage_plugin=plugin)
        self._connections: dict[tuple[str, str], Any] = {}
        self.count = 0
        self.discard_on_error = discard_on_error

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, exc_type, *_) -> None:
        self._writer.close()
        if exc_type is not None and self.discard_on_error:
            shutil.rmtree(self.path, ignore_errors=True)

    def connection(self, topic: str, msgtype: str) -> Any:
        key = (topic, msgtype)
        if key not in self._connections:
            store = typestore()
            if msgtype not in store.types:
                raise BagError(f"cannot write {topic}: type {msgtype} is unknown to the bag typestore")
            self._connections[key] = self._writer.add_connection(topic, msgtype, typestore=store)
        return self._connections[key]

    def write(self, topic: str, msgtype: str, stamp_ns: int, message: Any) -> None:
        """`message`: a rosbags message object of `msgtype`, or its CDR bytes."""
        conn = self.connection(topic, msgtype)
        if not isinstance(message, (bytes, bytearray, memoryview)):
            message = typestore().serialize_cdr(message, msgtype)
        self._writer.write(conn, int(stamp_ns), message)
        self.count += 1
