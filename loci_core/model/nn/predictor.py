"""Predictor: current slot estimates -> next-step slot states.

Token per slot: [p_row, p_col, s, gestalt (G), r] (D = G + 4). Width D*heads inside:
    embed:   tile(x, heads) + alpha * MLP(x)
    layers:  x + alpha * MultiHeadAttention over the O slots (permutation-equivariant, no
             positional code), then x + alpha * GateL0RD(x) per slot-instance
    unembed: mean of the `heads` chunks + alpha * MLP(x)
All alphas start near zero, so the untrained predictor is ~identity (next state = current).

Post-processing of the D-vector o:
    location = o[0:2]; size = o[2] * alpha_size (starts at 1e-16: size prediction starts off)
    gestalt  = binarising_noise(sigmoid(bottleneck(o[3:3+G])))
    priority = priority_scale * (w_p * (gain * r + noise * eps) + w_i * slot_index)
and, with a snitch head, the read-out over (o[2:], location).
Everything runs on all slots at once: (B, O, ...) tensors, no per-slot loops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...config import ModelConfig
from .blocks import LinearResidual, Scale
from .gatel0rd import GateL0RDCell
from .noise import binarize_noise, normal_like
from .snitch_readout import SnitchReadout


class _MLP(nn.Module):
    """ReLU -> Linear -> ReLU -> Linear, scaled by a learnable alpha."""

    def __init__(self, cin: int, cout: int, alpha: float):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(cin, cout), nn.Linear(cout, cout)
        self.scale = Scale(alpha)

    def forward(self, x):
        return self.scale(self.fc2(F.relu(self.fc1(F.relu(x)))))


class _Layer(nn.Module):
    def __init__(self, width: int, heads: int, cfg: ModelConfig):
        super().__init__()
        self.attention = nn.MultiheadAttention(width, heads, dropout=0.0, batch_first=True)
        self.attention_scale = Scale(cfg.branch_init)
        p = cfg.predictor
        self.cell = GateL0RDCell(width, width, width, p.reg_lambda, exact_bptt=p.exact_bptt)
        self.cell_scale = Scale(cfg.branch_init)

    def forward(self, x, hidden, traces, in_place_traces: bool = False, step_cell=None):
        """x (B, O, W), hidden (B*O, W) -> x, hidden, traces, gate openings. `step_cell(cell, x, h, traces,
        in_place)`, if given, runs the cell in place of `cell(x, h, traces, in_place)` (model/fast/gatel0rd.py)."""
        b, o, w = x.shape
        x = x + self.attention_scale(self.attention(x, x, x, need_weights=False)[0])
        y, hidden, traces, openings = (step_cell or GateL0RDCell.__call__)(self.cell, x.reshape(b * o, w), hidden,
                                                                           traces, in_place_traces)
        return x + self.cell_scale(y).view(b, o, w), hidden, traces, openings


class Predictor(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        p, g = cfg.predictor, cfg.gestalt_size
        self.heads, self.gestalt_size = p.heads, g
        self.token, self.width = g + 4, (g + 4) * p.heads
        self.embed = _MLP(self.token, self.width, cfg.branch_init)
        self.layers = nn.ModuleList(_Layer(self.width, p.heads, cfg) for _ in range(p.layers))
        self.unembed = _MLP(self.width, self.token, cfg.branch_init)
        self.size_scale = Scale(cfg.up_branch_init)
        self.bottleneck = LinearResidual(g, g)  # = a kernel-1 residual block on a 1x1 map
        self.priority_weight = nn.Parameter(torch.ones(()))
        self.index_weight = nn.Parameter(torch.ones(()))
        self.priority_scale, self.priority_gain = cfg.slots.priority_scale, p.priority_gain
        self.priority_noise = p.priority_noise
        self.snitch_mode = cfg.snitch
        self.readout = SnitchReadout(g + 2) if cfg.snitch != "off" and cfg.readout == "slot" else None

    def initial_hidden(self, n: int, device) -> list[torch.Tensor]:
        return [torch.zeros(n, self.width, device=device) for _ in self.layers]

    def forward(self, position, gestalt, priority, hidden, traces, noisy: bool, generator=None,
                in_place_traces: bool = False, step_cell=None):
        """position (B, O, 3), gestalt (B, O, G), priority (B, O) in [-1, 1] (encoder estimates),
        hidden: per layer (B*O, W), traces: per layer or None (`in_place_traces`: updated in their own memory),
        step_cell: see _Layer
        -> dict(position, gestalt, priority, snitch, snitch_weights, hidden, traces, openings)."""
        b, o, _ = position.shape
        x = torch.cat([position, gestalt, priority.unsqueeze(-1)], dim=-1)  # (B, O, D)
        x = x.repeat(1, 1, self.heads) + self.embed(x)  # (B, O, W)
        new_hidden, new_traces, openings = [], [], []
        for layer, h, t in zip(self.layers, hidden, traces):
            x, h, t, opened = layer(x, h, t, in_place_traces, step_cell)
            new_hidden.append(h)
            new_traces.append(t)
            openings.append(opened)
        x = x.unflatten(-1, (self.heads, self.token)).mean(-2) + self.unembed(x)  # (B, O, D)

        location = x[..., 0:2]
        size = self.size_scale(x[..., 2:3])
        g = torch.sigmoid(self.bottleneck(x[..., 3:3 + self.gestalt_size]))
        if noisy:
            g = binarize_noise(g, generator)
        r = x[..., -1] * self.priority_gain
        if noisy:
            r = r + self.priority_noise * normal_like(r, generator)
        index = torch.arange(o, device=x.device, dtype=x.dtype)
        new_priority = self.priority_scale * (self.priority_weight * r + self.index_weight * index)

        snitch = snitch_weights = None
        if self.readout is not None:
            features, where = x[..., 2:], location
            if self.snitch_mode == "probe":  # the probe learns, the model does not hear it
                features, where = features.detach(), where.detach()
            snitch, snitch_weights = self.readout(features, where, noisy, generator)
        return dict(position=torch.cat([location, size], dim=-1), gestalt=g, priority=new_priority,
                    snitch=snitch, snitch_weights=snitch_weights, hidden=new_hidden, traces=new_traces,
                    openings=torch.stack(openings).mean())
