"""Training data without labels: your own camera's footage as sequences of frames.

A `FootageSource` lists sequences and decodes their frames; `FootageVideos` makes a torch Dataset of it
with the same items (frames, background, name, start), clips, frame cache and error type as `CaterVideos`,
so training does not know where frames come from. Sources: `VideoFolder` (each video file is one sequence)
here and `BagFootage` (an image topic of a rosbag2, loci_core/data/bag_footage.py).

Splits are by sequence: a permutation drawn from the seed puts VALIDATION_FRACTION of the sequences (at
least one when there are two or more) into "test", the rest into "train"; both keep the source's order.
Backgrounds: a user-given image, else the per-pixel temporal median of each sequence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from loci_core.data.dataset import MEDIAN_FRAMES, background_image, clip_range, median_background, resize_frame
from loci_core.data.frame_cache import FrameCache, cached_index, file_fingerprint
from loci_core.data.reader import CaterFormatError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv")
VALIDATION_FRACTION = 0.1
SPLITS = ("train", "test", "all")


class FootageError(CaterFormatError):
    """Footage that cannot be used for training; the message names the file and the problem."""


@dataclass(frozen=True)
class Sequence:
    name: str
    num_frames: int
    fingerprint: dict
    """what identifies its decoded frames (source file stats, decoding options): the cache key"""


class FootageSource(Protocol):
    description: str
    cache_dir: Path

    def sequences(self) -> list[Sequence]:
        """All sequences in source order."""

    def decode(self, names: list[str], size: tuple[int, int]):
        """Yields (name, (T, H, W, 3) uint8 RGB frames resized to size (H, W)) for each of `names`, in one
        pass over the source."""


def safe_name(text: str) -> str:
    """A file-name-safe form of a sequence name (it names cache files)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "sequence"


def split_names(names: list[str], split: str, seed: int, fraction: float = VALIDATION_FRACTION) -> list[str]:
    if split not in SPLITS:
        raise FootageError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if split == "all" or len(names) < 2:
        return list(names) if split != "test" else []
    count = min(len(names) - 1, max(1, round(len(names) * fraction)))
    held = set(np.random.default_rng(seed).permutation(len(names))[:count].tolist())
    return [n for i, n in enumerate(names) if (i in held) == (split == "test")]


# --------------------------------------------------------------------------------------------
# A folder of video files


def _count_frames(path: Path) -> int:
    """Frames OpenCV decodes from `path` (counted by decoding: container frame counts are estimates)."""
    cap = cv2.VideoCapture(str(path))
    count = 0
    if cap.isOpened():
        while cap.grab():
            count += 1
    cap.release()
    return count


def read_frames(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames of a video file, resized to size (H, W) one by one."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while cap.isOpened():
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(resize_frame(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), size))
    cap.release()
    if not frames:
        raise FootageError(f"{path}: no decodable frames")
    return np.stack(frames)


class VideoFolder:
    """Each .mp4/.avi/.mkv file in a folder (not its sub-folders) is one sequence, named by its stem.
    Frame counts (found by decoding) are kept in the cache's index.json, keyed by the files' sizes and mtimes."""

    def __init__(self, root: str | Path, cache_dir: str | Path | None = None):
        self.root = Path(root)
        self.description = f"video folder {self.root}"
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / "cache"
        self.files = sorted(p for p in self.root.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if not self.files:
            raise FootageError(f"{self.root}: no video files ({', '.join(VIDEO_SUFFIXES)}) in this folder")
        names = [safe_name(p.stem) for p in self.files]
        twins = sorted({n for n in names if names.count(n) > 1})
        if twins:
            raise FootageError(f"{self.root}: several videos named {', '.join(twins)} (one name per sequence)")
        self._sequences: list[Sequence] | None = None

    def sequences(self) -> list[Sequence]:
        if self._sequences is None:
            key = [[p.name, *file_fingerprint(p).values()] for p in self.files]
            counts = cached_index(self.cache_dir / "index.json", key,
                                  lambda: [_count_frames(p) for p in self.files])
            counted = list(zip(self.files, counts))
            broken = [p.name for p, n in counted if n == 0]
            if len(broken) == len(counted):
                raise FootageError(f"{self.root}: none of its {len(counted)} video file(s) has a frame OpenCV "
                                   f"can decode ({', '.join(broken[:5])}{' ...' if len(broken) > 5 else ''})")
            if broken:
                raise FootageError(f"{self.root}: OpenCV decodes no frame of {', '.join(broken)}; "
                                   "remove or re-encode them")
            self._sequences = [Sequence(safe_name(p.stem), n, file_fingerprint(p)) for p, n in counted]
        return self._sequences

    def decode(self, names: list[str], size: tuple[int, int]):
        by_name = {safe_name(p.stem): p for p in self.files}
        for name in names:
            yield name, read_frames(by_name[name], size)


# --------------------------------------------------------------------------------------------
# The dataset


class FootageVideos(torch.utils.data.Dataset):
    """Items as CaterVideos' without ground truth: frames (T, 3, H, W) uint8, background (3, H, W) float,
    name, start. `min_frames`: every sequence must have at least this many frames."""

    def __init__(self, source: FootageSource, split: str = "train", size: tuple[int, int] = (240, 320),
                 clip_len: int | None = None, clip_start: str | int = "random", seed: int = 0,
                 background: str | Path | None = None,
                 min_frames: int = 2):
        self.source = source
        self.size = (int(size[0]), int(size[1]))
        self.clip_len, self.clip_start, self.seed, self.epoch = clip_len, clip_start, int(seed), 0
        self.cache = FrameCache(source.cache_dir, self.size)
        self.background_path = Path(background) if background else None
        if self.background_path is not None:
            background_image(self.background_path, self.size)  # a bad path fails now, not mid-training
        everything = source.sequences()
        short = [s for s in everything if s.num_frames < min_frames]
        if short:
            listed = ", ".join(f"{s.name} ({s.num_frames})" for s in short[:5])
            raise FootageError(
                f"{source.description}: {len(short)} sequence(s) shorter than the {min_frames} frames training "
                f"needs (the warm-up on the first frame, then one prediction per frame of a clip): {listed}"
                f"{' ...' if len(short) > 5 else ''}; remove them (a bag: a larger --gap joins pieces split at "
                "short pauses) or lower train.clip_len")
        self.all_sequences = {s.name: s for s in everything}
        self.names = split_names([s.name for s in everything], split, self.seed)
        self.sequences = [self.all_sequences[n] for n in self.names]

    def __len__(self) -> int:
        return len(self.sequences)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def has_ground_truth(self, name: str) -> bool:
        return False

    def frames(self, name: str) -> np.ndarray:
        """(T, 3, H, W) uint8 memmap of a whole sequence; a cache miss decodes every uncached sequence in
        one pass over the source (a bag is read once, not once per sequence)."""
        seq = self.all_sequences[name]
        shape = (seq.num_frames, 3, *self.size)
        found = self.cache.lookup(name, "frames", seq.fingerprint)
        if found is not None and found.shape == shape:
            return found
        missing = [s.name for s in self.all_sequences.values()
                   if (hit := self.cache.lookup(s.name, "frames", s.fingerprint)) is None
                   or hit.shape != (s.num_frames, 3, *self.size)]
        for got, rgb in self.source.decode(missing, self.size):
            want = self.all_sequences[got]
            if len(rgb) != want.num_frames:
                raise FootageError(f"{self.source.description}: sequence {got} decoded to {len(rgb)} frames, "
                                   f"{want.num_frames} were counted (did the source change?)")
            self.cache.store(got, "frames", want.fingerprint, rgb.transpose(0, 3, 1, 2))
        found = self.cache.lookup(name, "frames", seq.fingerprint)
        if found is None:
            raise FootageError(f"{self.source.description}: sequence {name} could not be decoded "
                               "(did the source change?)")
        return found

    def background(self, name: str) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        if self.background_path is not None:
            return background_image(self.background_path, self.size)
        return median_background(self.frames(name))

    def background_source(self) -> str:
        if self.background_path is not None:
            return f"the given image {self.background_path}"
        return f"estimated: the per-pixel median of {MEDIAN_FRAMES} frames of each sequence"

    def nominal_background(self) -> np.ndarray:
        """(H, W, 3) uint8 for checkpoints: the given image, else the median of the sequences' medians."""
        if self.background_path is not None:
            return background_image(self.background_path, self.size)
        return np.median(np.stack([self.background(n) for n in self.names]), axis=0).astype(np.uint8)

    def __getitem__(self, index: int) -> dict:
        seq = self.sequences[index]
        t0, t1 = clip_range(self.clip_len, self.clip_start, self.seed, self.epoch, index, seq.num_frames)
        return {"frames": torch.from_numpy(np.array(self.frames(seq.name)[t0:t1])),
                "background": torch.from_numpy(self.background(seq.name).transpose(2, 0, 1).astype(np.float32)
                                               / 255.0),
                "name": seq.name, "start": t0}
