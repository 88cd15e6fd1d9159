"""CATER snitch read-out: a soft, learned choice of slot whose predicted location is the snitch.

weights = softmax over slots of an MLP on each slot's (size, pre-bottleneck gestalt, raw priority);
snitch (p_row, p_col) = sum_o weights_o * location_o. Whether its gradient reaches the model is
decided by the caller (model.snitch: 'probe' detaches the inputs, 'joint' does not)."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import LinearResidual
from .noise import binarize_noise


class SnitchReadout(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.gate = nn.Sequential(LinearResidual(features, features), LinearResidual(features, features),
                                  LinearResidual(features, 1))

    def forward(self, features: torch.Tensor, locations: torch.Tensor, noisy: bool,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, O, F), locations (B, O, 2) -> snitch position (B, 2) = (p_row, p_col) and the
        weights (B, O) of the slots in it (before noise)."""
        weights = torch.softmax(self.gate(features).squeeze(-1), dim=1)  # (B, O)
        mixed = binarize_noise(weights, generator) if noisy else weights
        return torch.einsum("bo,boc->bc", mixed, locations), weights
