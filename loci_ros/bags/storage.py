"""Opening and writing rosbag2 bags (rosbags library), with errors that name the bag and the problem.

Bags are written in rosbag2 format version 9 (ROS 2 Kilted) with the standard storage plugins, and
every connection carries its message definition and RIHS01 type hash from our typestore, so
`ros2 bag info/play`, rosbags and mcap-ros2-support all read them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, FileNotFoundError, OSError, KeyError, ValueError) as err:
        raise BagError(f"bag {path} cannot be opened: {err}") from None
    try:
        yield reader
    except ReaderError as err:
        raise BagError(f"bag {path} is damaged: {err}") from None
    finally:
        reader.close()


class BagWriter:
    """Writes messages (rosbags objects or CDR bytes) to a new bag; connections are made on first use."""

    def __init__(self, path: str | Path, storage: str = "mcap"):
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise BagError(f"unknown bag storage {storage!r} (choose from {', '.join(STORAGES)})")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"output bag {self.path} exists already; remove it or choose another path")
        if not self.path.parent.is_dir():
            raise BagError(f"output bag {self.path}: directory {self.path.parent} does not exist")
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
        self._connections: dict[tuple[str, str], Any] = {}
        self.count = 0

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

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
