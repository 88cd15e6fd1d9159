"""Snitch answers from the learned read-out's slot weights by rule, for `loci eval`'s rows next to it.

The learned per-frame read-out answers with a weighted mean of slot positions; when the snitch hides, the
mean drifts between slots. Two rules over the same weights tell how much of that a choice of slot fixes:

* top slot: in every frame the position of the slot with the largest weight;
* sticky slot + carrier following: the top slot while it is visible; once the chosen slot is hidden, keep it
  (a hidden snitch's slot loses the features the read-out knows it by) unless a visible slot's weight
  reaches `take_back`, and answer with its position moved by its carrier (loci_core/tracking/carrier.py).
"""

from __future__ import annotations

import numpy as np

from . import carrier

TAKE_BACK = 0.9
"""a visible slot weighted at least this much by the read-out replaces a hidden chosen slot"""


def top_slot(weights: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """weights (T, O), positions (T, O, 2) -> (T, 2) the position of the most weighted slot per frame."""
    best = weights.argmax(1)
    return positions[np.arange(len(positions)), best]


def sticky_carried(weights: np.ndarray, positions: np.ndarray, visible: np.ndarray, radius: float,
                   take_back: float = TAKE_BACK) -> tuple[np.ndarray, np.ndarray]:
    """weights (T, O), positions (T, O, 2), visible (T, O) bool -> (T, 2) answers and (T, O, 2) the
    carrier-followed positions of every slot."""
    state = carrier.CarrierState.initial(positions.shape[1])
    chosen = -1
    answers, followed = np.zeros((len(positions), 2)), np.zeros(positions.shape)
    for t in range(len(positions)):
        followed[t], state = carrier.follow(state, positions[t], visible[t], radius)
        top = int(weights[t].argmax())
        keep = chosen >= 0 and not visible[t, chosen] and not (visible[t, top] and weights[t, top] >= take_back)
        if chosen < 0 or (visible[t, top] and not keep):
            chosen = top
        answers[t] = followed[t, chosen]
    return answers, followed
