"""Weights derived from parameters (rearranged, folded, scaled, stacked), computed once for inference.

Several blocks run a rewritten form of their parameters: the transposed convolution as sub-pixel
convolution weights, the encoder's first convolution folded and split by input group, GateL0RD's
matrices stacked into one. In training that rewriting is part of the graph and runs at every call.
Without gradients (tracking, evaluation) the result only changes when a parameter does, so it is kept
and reused while every parameter it came from is the same tensor at the same version: an optimiser step,
`load_state_dict`, `.to()` and any in-place change made through PyTorch all change one or the other. At
batch 1 on a CPU the rewriting is a noticeable share of a step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def derived(owner: nn.Module, name: str, compute: Callable[[], object], *sources: torch.Tensor):
    """compute(), or the value it gave for the same `sources` (same tensors, same versions) when no
    gradient is being recorded. The value lives on `owner`, outside its state dict."""
    if torch.is_grad_enabled() or torch.compiler.is_compiling():  # in a compiled graph it is part of the graph
        return compute()
    key = (torch.is_inference_mode_enabled(),) + tuple((id(t), t.data_ptr(), t._version) for t in sources)
    cache = owner.__dict__.setdefault("_derived", {})
    hit = cache.get(name)
    if hit is None or hit[0] != key:
        hit = cache[name] = (key, compute())
    return hit[1]
