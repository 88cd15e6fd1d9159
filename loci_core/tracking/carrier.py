"""Carrier following: a hidden entity travels with the visible entity that covered it.

Loci's slots keep a hidden object's position only as well as the predictor has learned to move it, and a
slot under a cone mostly stays where it went hidden while the cone slides away with it. This rule gives
the tracker's published positions the permanence a robot needs now: when an entity goes hidden (visible
before, not now), the nearest visible entity within `radius` becomes its carrier, and until the entity
is visible again its published position moves by what its carrier's published position moved since.
Carriers that go hidden follow their own carriers, so nested containment (a cone inside a cone) chains.

Positions are the model's screen coordinates (p_row, p_col) in [-1, 1]. The per-stream state is a value
passed in and returned (`CarrierState`), like the model's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_CARRIER = -1


@dataclass(frozen=True)
class CarrierState:
    carrier: np.ndarray
    """(O,) int: the entity each hidden entity follows, NO_CARRIER where none"""
    own_start: np.ndarray
    """(O, 2) the entity's published position when it went hidden"""
    carrier_start: np.ndarray
    """(O, 2) its carrier's published position at that moment"""
    visible: np.ndarray
    """(O,) bool: visible at the previous frame"""
    published: np.ndarray
    """(O, 2) the positions published at the previous frame (NaN before any)"""

    @classmethod
    def initial(cls, num_entities: int) -> CarrierState:
        nan = np.full((num_entities, 2), np.nan)
        return cls(np.full(num_entities, NO_CARRIER), nan.copy(), nan.copy(), np.zeros(num_entities, bool),
                   nan.copy())


def nearest_visible(position: np.ndarray, visible: np.ndarray, k: int, radius: float) -> int:
    """The visible entity other than k nearest to entity k, within radius; NO_CARRIER if none."""
    distance = np.linalg.norm(position - position[k], axis=1)
    distance[~visible] = np.inf
    distance[k] = np.inf
    best = int(np.argmin(distance))
    return best if distance[best] <= radius else NO_CARRIER


def follow(state: CarrierState, position: np.ndarray, visible: np.ndarray,
           radius: float) -> tuple[np.ndarray, CarrierState]:
    """One frame: the model's positions (O, 2), which entities are visible (O,) -> published positions
    (O, 2) and the next state. Visible entities and hidden ones without a carrier publish their own."""
    position = np.asarray(position, np.float64)
    visible = np.asarray(visible, bool)
    carrier = state.carrier.copy()
    own_start, carrier_start = state.own_start.copy(), state.carrier_start.copy()
    carrier[visible] = NO_CARRIER
    went_hidden = state.visible & ~visible
    for k in np.flatnonzero(went_hidden):
        carrier[k] = nearest_visible(position, visible, int(k), radius)
        if carrier[k] != NO_CARRIER:  # both from the last frame, where k was still seen
            own_start[k] = state.published[k]
            carrier_start[k] = state.published[carrier[k]]

    published = position.copy()
    resolved = carrier == NO_CARRIER
    # a carrier's position is published before the entities it carries (nesting is at most O deep)
    for _ in range(len(position)):
        pending = np.flatnonzero(~resolved)
        ready = pending[resolved[carrier[pending]]]
        if not len(ready):
            break
        published[ready] = own_start[ready] + published[carrier[ready]] - carrier_start[ready]
        resolved[ready] = True
    carrier[~resolved] = NO_CARRIER  # a cycle of hidden carriers: nobody in it can be followed
    return published, CarrierState(carrier, own_start, carrier_start, visible.copy(), published.copy())
