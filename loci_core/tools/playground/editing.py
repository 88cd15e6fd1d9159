"""The slot being edited in the playground: one gestalt code and one position, plus the
latent file it may have come from. Pure numpy, no Qt and no model, so every interaction of
the window (flip a bit, click, scroll, nudge, open, save, pick a slot or a time step, reset)
is a plain method that tests can call and check.

Position convention (shared with the model): (p_row, p_col, s), p_row/p_col in [-1, 1] with
-1 = top row / left column, s in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loci_core.tools.latents import LatentFileError, Latents, load_latents, save_latents

# Size s of a new slot when no latent file is given: a small blob, as the original playground.
DEFAULT_SIZE = 0.05
# One wheel notch changes s by this fraction of s(1 - s) (small steps near 0 and 1, where the
# blob's pixel size reacts most), but by at least MIN_SIZE_STEP so s can leave 0 and 1.
SIZE_STEP_FRACTION = 0.1
MIN_SIZE_STEP = 0.001
# A bit counts as set when the (continuous) gestalt value is at least this.
BIT_THRESHOLD = 0.5


def pixel_to_coordinate(pixel: float, extent: int) -> float:
    """Model pixel index (0 .. extent-1, may be fractional) -> coordinate in [-1, 1].

    The inverse of the model's Gaussian grid (pixel i sits at 2i/(extent-1) - 1), so a blob
    placed here peaks on the clicked pixel.
    """
    return float(np.clip(2.0 * pixel / max(extent - 1, 1) - 1.0, -1.0, 1.0))


def coordinate_to_pixel(coordinate: float, extent: int) -> float:
    return (float(coordinate) + 1.0) * (extent - 1) / 2.0


def size_step(size: float, notches: int) -> float:
    """New size after `notches` wheel notches (positive = larger), clipped to [0, 1]."""
    for _ in range(abs(notches)):
        step = max(SIZE_STEP_FRACTION * size * (1.0 - size), MIN_SIZE_STEP)
        size = float(np.clip(size + step if notches > 0 else size - step, 0.0, 1.0))
    return size


@dataclass
class SlotLatent:
    """One slot at one time step: gestalt (G,) in [0, 1] and position (3,) = (p_row, p_col, s)."""

    gestalt: np.ndarray
    position: np.ndarray
    priority: float = 0.0

    def __post_init__(self):
        self.gestalt = np.asarray(self.gestalt, np.float32).copy()
        self.position = np.asarray(self.position, np.float32).copy()

    def copy(self) -> SlotLatent:
        return SlotLatent(self.gestalt, self.position, self.priority)

    @property
    def bits(self) -> np.ndarray:
        """(G,) bool: the gestalt rounded to bits."""
        return self.gestalt >= BIT_THRESHOLD


class SlotEditor:
    """Editing state of the playground.

    `loaded` is the latent file currently open (or None); `slot` and `time` select which of its
    slots/steps is being edited; `current` is the edited copy. Edits never touch `loaded`, so
    `reset()` returns to the file's values (or to the default slot without a file).
    """

    def __init__(self, gestalt_size: int, resolution: tuple[int, int]):
        self.gestalt_size = gestalt_size
        self.resolution = tuple(resolution)  # (H, W) of the model, in pixels
        self.loaded: Latents | None = None
        self.loaded_path: Path | None = None
        self.slot = 0
        self.time = 0
        self.current = self.default()

    def default(self) -> SlotLatent:
        """All-zero gestalt at the image centre."""
        return SlotLatent(np.zeros(self.gestalt_size, np.float32), np.array([0.0, 0.0, DEFAULT_SIZE]))

    # --- edits -------------------------------------------------------------------------------
    def flip_bit(self, index: int) -> None:
        if not 0 <= index < self.gestalt_size:
            raise IndexError(f"gestalt bit {index} out of range 0..{self.gestalt_size - 1}")
        # flipping a continuous value snaps it to the opposite bit, so the grid always shows the truth
        self.current.gestalt[index] = 0.0 if self.current.bits[index] else 1.0

    def set_gestalt(self, gestalt: np.ndarray) -> None:
        gestalt = np.asarray(gestalt, np.float32)
        if gestalt.shape != (self.gestalt_size,):
            raise ValueError(f"gestalt must have shape ({self.gestalt_size},), got {gestalt.shape}")
        self.current.gestalt = np.clip(gestalt, 0.0, 1.0).copy()

    def set_position_pixel(self, row: float, col: float) -> None:
        """Move the slot to model pixel (row, col); the size stays."""
        height, width = self.resolution
        self.current.position[0] = pixel_to_coordinate(row, height)
        self.current.position[1] = pixel_to_coordinate(col, width)

    def position_pixel(self) -> tuple[float, float]:
        height, width = self.resolution
        return (coordinate_to_pixel(self.current.position[0], height),
                coordinate_to_pixel(self.current.position[1], width))

    def nudge(self, rows: float, cols: float) -> None:
        """Move by (rows, cols) model pixels, staying inside the image."""
        row, col = self.position_pixel()
        self.set_position_pixel(row + rows, col + cols)

    def resize(self, notches: int) -> None:
        self.current.position[2] = size_step(float(self.current.position[2]), notches)

    # --- latent files -------------------------------------------------------------------------
    def open(self, path: str | Path) -> Latents:
        """Load a latent file and edit its first slot at its first step.

        Raises LatentFileError (and changes nothing) for an unreadable file or one whose gestalt
        size differs from the model's.
        """
        latents = load_latents(path)
        if latents.gestalt_size != self.gestalt_size:
            raise LatentFileError(
                f"{path}: gestalt size {latents.gestalt_size} does not match the checkpoint's "
                f"gestalt size {self.gestalt_size}")
        if latents.steps == 0 or latents.slots == 0:
            raise LatentFileError(f"{path}: latent file holds no slots")
        self.loaded, self.loaded_path = latents, Path(path)
        self.select(0, 0)
        return latents

    def select(self, slot: int | None = None, time: int | None = None) -> None:
        """Edit another slot / time step of the open file (discards edits of the current one)."""
        if self.loaded is None:
            if slot not in (None, 0) or time not in (None, 0):
                raise LatentFileError("no latent file is open, so there is only slot 0 at time 0")
            return
        slot = self.slot if slot is None else slot
        time = self.time if time is None else time
        if not 0 <= slot < self.loaded.slots:
            raise LatentFileError(f"slot {slot} out of range: the file holds {self.loaded.slots} slot(s)")
        if not 0 <= time < self.loaded.steps:
            raise LatentFileError(f"time {time} out of range: the file holds {self.loaded.steps} step(s)")
        self.slot, self.time = slot, time
        self.reset()

    def reset(self) -> None:
        """Back to the selected slot of the open file, or to the default slot."""
        if self.loaded is None:
            self.current = self.default()
            return
        self.current = SlotLatent(self.loaded.gestalt[self.time, self.slot],
                                  self.loaded.position[self.time, self.slot],
                                  float(self.loaded.priority[self.time, self.slot]))

    def save(self, path: str | Path, visibility: float = 1.0, meta: dict | None = None) -> Path:
        """Write the edited slot as a single-slot, single-step latent file (T = O = 1)."""
        height, width = self.resolution
        info = dict(meta or {}, resolution=[height, width])
        if self.loaded_path is not None:
            info.setdefault("source", str(self.loaded_path))
            info.setdefault("source_slot", self.slot)
            info.setdefault("source_time", self.time)
        latents = Latents(gestalt=self.current.gestalt[None, None],
                          position=self.current.position[None, None],
                          priority=np.array([[self.current.priority]], np.float32),
                          visibility=np.array([[visibility]], np.float32),
                          meta=info)
        return save_latents(path, latents)
