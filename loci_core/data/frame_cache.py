"""The on-disk frame cache every video source shares: raw uint8 arrays, memory-mapped on later reads.

`<cache>/<H>x<W>/<name>.<kind>.u8` holds the array, `<name>.<kind>.json` its shape and a fingerprint of
the source it was decoded from (file sizes and mtimes, decoding options); a stale, foreign or torn entry
is rebuilt. Arrays are written under a temporary name and renamed, so readers never see half a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

CACHE_FORMAT = 1


def cached_index(path: Path, key, build: Callable[[], object]):
    """What `build()` returns, kept as JSON at `path` under `key` (e.g. the source files' fingerprints):
    a source's sequence index, found by one pass over it, is found once."""
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if data.get("key") == key:
                return data["index"]
        except (json.JSONDecodeError, KeyError, AttributeError):
            pass  # torn or foreign: rebuild
    index = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"key": key, "index": index}))
    os.replace(tmp, path)
    return index


def file_fingerprint(path: Path) -> dict:
    """What tells a source file from its later versions without reading it."""
    stat = Path(path).stat()
    return {"source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns}


class FrameCache:
    def __init__(self, root: str | Path, size: tuple[int, int]):
        self.root = Path(root)
        self.size = (int(size[0]), int(size[1]))

    def paths(self, name: str, kind: str) -> tuple[Path, Path]:
        folder = self.root / f"{self.size[0]}x{self.size[1]}"
        return folder / f"{name}.{kind}.u8", folder / f"{name}.{kind}.json"

    def _meta(self, shape: tuple[int, ...], fingerprint: dict) -> dict:
        return {"format": CACHE_FORMAT, "shape": list(shape), **fingerprint}

    def lookup(self, name: str, kind: str, fingerprint: dict) -> np.ndarray | None:
        """The cached array, or None when there is none for this fingerprint (shape read from the sidecar)."""
        data_path, meta_path = self.paths(name, kind)
        if not (data_path.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            return None  # a torn sidecar: the caller rebuilds
        shape = tuple(meta.get("shape", ()))
        if meta != self._meta(shape, fingerprint) or data_path.stat().st_size != int(np.prod(shape)):
            return None
        return np.memmap(data_path, dtype=np.uint8, mode="r", shape=shape)

    def store(self, name: str, kind: str, fingerprint: dict, array: np.ndarray) -> np.ndarray:
        data_path, meta_path = self.paths(name, kind)
        array = np.ascontiguousarray(array, dtype=np.uint8)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = data_path.with_name(f"{data_path.name}.{os.getpid()}.tmp")
        array.tofile(tmp)
        os.replace(tmp, data_path)
        tmp_meta = meta_path.with_name(f"{meta_path.name}.{os.getpid()}.tmp")
        tmp_meta.write_text(json.dumps(self._meta(array.shape, fingerprint)))
        os.replace(tmp_meta, meta_path)
        return np.memmap(data_path, dtype=np.uint8, mode="r", shape=array.shape)

    def cached(self, name: str, kind: str, fingerprint: dict, shape: tuple[int, ...],
               build: Callable[[], np.ndarray]) -> np.ndarray:
        """Memory-map the cached array of `shape`, building it with `build()` when needed."""
        found = self.lookup(name, kind, fingerprint)
        if found is not None and found.shape == tuple(shape):
            return found
        return self.store(name, kind, fingerprint, build())
