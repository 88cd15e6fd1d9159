"""Last-seen oracle: the snitch is where ground truth last saw it.

This is perfect tracking of visible evidence with no object permanence: once the snitch is
hidden (occluded, contained, carried) the answer stays at its last visible position.
"""

from __future__ import annotations

import numpy as np


def last_seen_track(positions: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Per step, the position at the most recent visible step (inclusive).

    positions (T, D) true positions (world or screen); visible (T,) bool. Before the first
    visible step the first position is used (the oracle knows the starting layout).
    Returns (T, D).
    """
    positions = np.asarray(positions, np.float64)
    visible = np.asarray(visible, bool)
    idx = np.where(visible, np.arange(len(visible)), 0)
    idx = np.maximum.accumulate(idx)                  # index of the last visible step so far
    return positions[idx]


def last_seen_final(positions: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """The oracle's answer at the last step: (D,)."""
    return last_seen_track(positions, visible)[-1]
