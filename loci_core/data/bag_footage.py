"""An image topic of a rosbag2 (mcap or sqlite3) as training footage, read with rosbags (no ROS install).

Sequences: a new one begins at the first frame at or after a message on the reset topic (`loci bag make`
writes `/loci/scene_reset` before each video; its header's frame_id names the sequence) and wherever bag
time jumps by more than `gap_s` between two frames. Frames are numbered in bag-time order.

The sequence index (counts and times, found by one pass over the topic) is kept next to the frame cache
in `index.json`, keyed by the bag files' sizes and mtimes, the topic and the gap.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import cv2
import numpy as np

from loci_core.data.dataset import resize_frame
from loci_core.data.footage import FootageError, Sequence, safe_name
from loci_core.data.frame_cache import cached_index

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
HEADER = "std_msgs/msg/Header"
RESET_TOPIC = "/loci/scene_reset"
DEFAULT_GAP_S = 0.5
CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
TO_RGB = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
          "mono8": cv2.COLOR_GRAY2RGB}


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def image_rgb(msg, msgtype: str, where: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a rosbags sensor_msgs Image or CompressedImage message."""
    if msgtype == COMPRESSED:
        bgr = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FootageError(f"{where}: OpenCV cannot decode a compressed image (format {msg.format!r})")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    channels = CHANNELS.get(msg.encoding)
    if channels is None:
        raise FootageError(f"{where}: image encoding {msg.encoding!r} is not supported "
                           f"(use one of {', '.join(CHANNELS)})")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(bytes(msg.data), np.uint8)
    if step < w * channels or len(data) < h * step:
        raise FootageError(f"{where}: malformed image ({w}x{h} {msg.encoding}, step {step}, {len(data)} bytes)")
    pixels = data[:h * step].reshape(h, step)[:, :w * channels].reshape(h, w, channels)
    return np.ascontiguousarray(pixels) if msg.encoding == "rgb8" else cv2.cvtColor(pixels, TO_RGB[msg.encoding])


def _bag_fingerprint(path: Path) -> list:
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


class BagFootage:
    def __init__(self, bag: str | Path, topic: str | None, gap_s: float = DEFAULT_GAP_S, reset_topic: str = RESET_TOPIC,
                 cache_dir: str | Path | None = None):
        self.bag, self.topic, self.gap_s, self.reset_topic = Path(bag), topic, float(gap_s), reset_topic
        if self.gap_s <= 0:
            raise FootageError(f"the sequence gap must be positive, got {gap_s} s")
        self.description = f"bag {self.bag} topic {topic}"
        base = Path(cache_dir) if cache_dir else self.bag.parent / f"{self.bag.name}.cache"
        self.cache_dir = base / safe_name(topic or "")
        with self._open() as reader:
            types = {c.topic: c.msgtype for c in reader.connections}
            if topic is None:
                images = sorted(t for t, m in types.items() if m in (IMAGE, COMPRESSED))
                raise FootageError(f"bag {self.bag}: say which image topic to train on with --topic "
                                   f"(image topics in the bag: {', '.join(images) or 'none'})")
            if topic not in types:
                raise FootageError(f"bag {self.bag} has no topic {topic} "
                                   f"(it has: {', '.join(sorted(types)) or 'none'})")
            if types[topic] not in (IMAGE, COMPRESSED):
                raise FootageError(f"bag {self.bag}: topic {topic} carries {types[topic]}, not {IMAGE} or "
                                   f"{COMPRESSED}")
            self.msgtype = types[topic]
        self.key = {"bag": _bag_fingerprint(self.bag), "topic": topic, "gap_s": self.gap_s,
                    "reset_topic": reset_topic}
        self._sequences: list[Sequence] | None = None

    def _open(self):
        from contextlib import contextmanager

        from rosbags.rosbag2 import Reader
        from rosbags.rosbag2.errors import ReaderError

        @contextmanager
        def opened():
            if not self.bag.exists():
                raise FootageError(f"bag {self.bag} does not exist")
            try:
                reader = Reader(self.bag)
                reader.open()
            except (ReaderError, OSError, KeyError, ValueError) as err:
                raise FootageError(f"bag {self.bag} cannot be opened: {err}") from None
            try:
                yield reader
            except ReaderError as err:
                raise FootageError(f"bag {self.bag} is damaged: {err}") from None
            finally:
                reader.close()

        return opened()

    # ---- the index

    def _scan(self) -> list[dict]:
        store = _typestore()
        with self._open() as reader:
            resets = [c for c in reader.connections if c.topic == self.reset_topic and c.msgtype == HEADER]
            # (rosbags reads every connection when given none)
            marks = sorted((t, store.deserialize_cdr(raw, HEADER).frame_id)
                           for _, t, raw in reader.messages(connections=resets)) if resets else []
            times = [t for _, t, _ in reader.messages(connections=[c for c in reader.connections
                                                                   if c.topic == self.topic])]
        reset_times = [t for t, _ in marks]
        sequences, previous = [], None
        for t in times:
            # a reset in (previous frame, this frame] starts a new sequence here
            k = bisect.bisect_right(reset_times, t) - 1
            reset = k >= 0 and (previous is None or reset_times[k] > previous)
            if previous is None or reset or (t - previous) > self.gap_s * 1e9:
                label = marks[k][1] if reset else ""
                sequences.append({"label": label, "first_ns": t, "last_ns": t, "count": 0})
            sequences[-1]["count"] += 1
            sequences[-1]["last_ns"] = previous = t
        return sequences

    def sequences(self) -> list[Sequence]:
        if self._sequences is None:
            found = cached_index(self.cache_dir / "index.json", self.key, self._scan)
            if not found:
                raise FootageError(f"bag {self.bag}: topic {self.topic} has no messages")
            self._sequences = [
                Sequence(f"{i:04d}" + (f"-{safe_name(s['label'])}" if s["label"] else ""), s["count"],
                         {**self.key, "first_ns": s["first_ns"], "last_ns": s["last_ns"]})
                for i, s in enumerate(found)]
        return self._sequences

    # ---- frames

    def decode(self, names: list[str], size: tuple[int, int]):
        wanted = set(names)
        bounds = np.cumsum([s.num_frames for s in self.sequences()])
        store = _typestore()
        current, frames = 0, []
        with self._open() as reader:
            conns = [c for c in reader.connections if c.topic == self.topic]
            for i, (_, _, raw) in enumerate(reader.messages(connections=conns)):
                while current < len(bounds) and i >= bounds[current]:
                    current, frames = current + 1, []
                seq = self._sequences[current]
                if seq.name not in wanted:
                    continue
                msg = store.deserialize_cdr(raw, self.msgtype)
                frames.append(resize_frame(image_rgb(msg, self.msgtype, f"{self.description}, frame {i}"), size))
                if i == bounds[current] - 1:
                    yield seq.name, np.stack(frames)
