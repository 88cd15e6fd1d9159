"""LociState: everything the model carries from one call to the next, for one batch of sequences.

A state is a value: `Loci.step` takes one and returns a new one; starting a new sequence means
creating a fresh state with `Loci.initial_state(batch_size, device)`. Tensors are detached
between calls (one-step truncation), except the GateL0RD hidden states in exact-BPTT mode.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch


@dataclass
class LociState:
    position: torch.Tensor
    """(B, O, 3) (p_row, p_col, s) of each slot, as last predicted"""
    gestalt: torch.Tensor
    """(B, O, G) gestalt codes in (0, 1), as last predicted"""
    priority: torch.Tensor
    """(B, O) scaled priorities (larger = in front)"""
    activity: torch.Tensor
    """(B, O) running max over this sequence of each slot's largest mask value (V)"""
    hidden: list[torch.Tensor]
    """per predictor layer: GateL0RD hidden state (B*O, W)"""
    traces: list[tuple[torch.Tensor, torch.Tensor] | None] = field(default_factory=list)
    """per predictor layer: GateL0RD eligibility traces (gate, candidate) or None (eval / not started)"""
    prediction: torch.Tensor | None = None
    """(B, 3, H, W) the frame predicted for the coming call; None before the first call"""
    masks: torch.Tensor | None = None
    """(B, O+1, H, W) last predicted masks (last channel = background); None before the first call"""
    appearance: torch.Tensor | None = None
    """(B, O, 3, H, W) un-occluded RGB logits of (position, gestalt), decoded last call"""
    memory_position: torch.Tensor | None = None
    """(B, O, 3) object-permanence memory: where each slot was while visible"""
    memory_gestalt: torch.Tensor | None = None
    """(B, O, G) object-permanence memory: what each slot looked like while visible"""
    calls: int = 0
    """number of `step` calls made in this sequence"""
    readout_hidden: torch.Tensor | None = None
    """(B, O, W) the temporal snitch read-out's memory per slot; None before the first call or without one"""

    @property
    def batch_size(self) -> int:
        return self.position.shape[0]

    @property
    def num_slots(self) -> int:
        return self.position.shape[1]

    def _map(self, fn) -> LociState:
        def apply(value):
            if isinstance(value, torch.Tensor):
                return fn(value)
            if isinstance(value, (list, tuple)):
                return type(value)(apply(v) for v in value)
            return value
        return dataclasses.replace(self, **{f.name: apply(getattr(self, f.name))
                                            for f in dataclasses.fields(self)})

    def detach(self) -> LociState:
        return self._map(torch.Tensor.detach)

    def to(self, device) -> LociState:
        return self._map(lambda t: t.to(device))
