"""Temporal snitch read-out: which slot holds the snitch, decided over the slots' history, causally.

The per-frame read-out (snitch_readout.py) scores each slot on its own features in one frame, so when the
snitch hides under a cone its slot stops looking like the snitch and the answer wanders. This read-out
keeps a memory per slot (a GRU cell, weights shared by all slots) and lets slots exchange it through one
attention step whose logits fall with the squared distance between slots: the mark "I am the snitch" can
pass to the slot that now covers it. It answers with a slot (classification; argmax at inference).

Per call, per slot, it reads the model's outputs: gestalt (G), position and size (3), visibility (1) and
the priority relative to the frame's other slots (1). Its memory is part of the sequence state
(`LociState.readout_hidden`), so it never sees the future: the scores at t depend on frames <= t only.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class TemporalReadout(nn.Module):
    def __init__(self, gestalt_size: int, width: int = 32):
        super().__init__()
        self.width = width
        self.embed = nn.Sequential(nn.Linear(gestalt_size + 5, width), nn.SiLU(), nn.Linear(width, width))
        self.query = nn.Linear(2 * width, width)
        self.key = nn.Linear(2 * width, width)
        self.value = nn.Linear(2 * width, width)
        self.log_distance_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.cell = nn.GRUCell(2 * width, width)
        self.score = nn.Linear(width, 1)

    def initial_hidden(self, batch: int, slots: int, device=None) -> torch.Tensor:
        return torch.zeros(batch, slots, self.width, device=device)

    def forward(self, gestalt: torch.Tensor, position: torch.Tensor, visibility: torch.Tensor,
                priority: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """gestalt (B, O, G), position (B, O, 3), visibility (B, O), priority (B, O), hidden (B, O, W)
        -> scores (B, O) (logits over slots) and the new hidden (B, O, W)."""
        b, o, _ = gestalt.shape
        rank = (priority - priority.mean(1, keepdim=True)) / (priority.std(1, keepdim=True) + 1.0)
        x = self.embed(torch.cat([gestalt, position, visibility[..., None], rank[..., None]], -1))  # (B, O, W)
        both = torch.cat([x, hidden], -1)                                                        # (B, O, 2W)
        where = position[..., :2]
        distance2 = (where[:, :, None] - where[:, None, :]).square().sum(-1)                      # (B, O, O)
        logits = (self.query(both) @ self.key(both).transpose(1, 2)) / math.sqrt(self.width) \
            - self.log_distance_scale.exp() * distance2
        message = torch.softmax(logits, -1) @ self.value(both)                                   # (B, O, W)
        new_hidden = self.cell(torch.cat([x, message], -1).reshape(b * o, -1),
                               hidden.reshape(b * o, -1)).view(b, o, -1)
        return self.score(new_hidden).squeeze(-1), new_hidden
