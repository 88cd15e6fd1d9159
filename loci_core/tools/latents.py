"""Latent files: what `loci save` writes per video and what `loci playground` reads.

Format: a NumPy `.npz` archive (no pickles, nothing device-specific), arrays indexed
[time, slot, ...] so one file can hold one slot or all slots of a whole sequence:

    gestalt     float32 (T, O, G)  gestalt code after the bottleneck, in [0, 1] (bits when rounded)
    position    float32 (T, O, 3)  (p_row, p_col, s): rows then columns in [-1, 1], size s in [0, 1]
    priority    float32 (T, O)     depth order, larger = in front
    visibility  float32 (T, O)     max of the slot's mask over the image, in [0, 1]
    meta        0-d unicode array holding a JSON object: resolution [H, W], gestalt_size,
                checkpoint, video, format_version

A single-slot, single-step latent (what the playground saves) is simply T = O = 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
_ARRAYS = ("gestalt", "position", "priority", "visibility")


class LatentFileError(ValueError):
    """A latent file that cannot be read or does not fit the model it is used with."""


@dataclass
class Latents:
    gestalt: np.ndarray
    position: np.ndarray
    priority: np.ndarray
    visibility: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.gestalt = np.asarray(self.gestalt, np.float32)
        self.position = np.asarray(self.position, np.float32)
        self.priority = np.asarray(self.priority, np.float32)
        self.visibility = np.asarray(self.visibility, np.float32)
        if self.gestalt.ndim != 3 or self.position.shape != self.gestalt.shape[:2] + (3,):
            raise LatentFileError(
                f"latent arrays must be gestalt (T, O, G) and position (T, O, 3); got "
                f"{self.gestalt.shape} and {self.position.shape}")
        for name in ("priority", "visibility"):
            if getattr(self, name).shape != self.gestalt.shape[:2]:
                raise LatentFileError(f"{name} must have shape (T, O) = {self.gestalt.shape[:2]}, "
                                      f"got {getattr(self, name).shape}")

    @property
    def steps(self) -> int:
        return self.gestalt.shape[0]

    @property
    def slots(self) -> int:
        return self.gestalt.shape[1]

    @property
    def gestalt_size(self) -> int:
        return self.gestalt.shape[2]


def save_latents(path: str | Path, latents: Latents) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(latents.meta, format_version=FORMAT_VERSION, gestalt_size=latents.gestalt_size)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, meta=np.array(json.dumps(meta)),
                        **{name: getattr(latents, name) for name in _ARRAYS})
    tmp.replace(path)
    return path


def load_latents(path: str | Path) -> Latents:
    path = Path(path)
    if not path.is_file():
        raise LatentFileError(f"latent file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in _ARRAYS + ("meta",) if name not in data.files]
            if missing:
                raise LatentFileError(f"{path}: not a loci latent file (missing {', '.join(missing)})")
            arrays = {name: data[name] for name in _ARRAYS}
            meta = json.loads(str(data["meta"]))
    except LatentFileError:
        raise
    except Exception as err:  # zip, npy and json errors all mean the same thing to a user
        raise LatentFileError(f"{path}: unreadable latent file ({err})") from err
    return Latents(meta=meta, **arrays)
