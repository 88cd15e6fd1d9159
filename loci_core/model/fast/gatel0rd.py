"""GateL0RD (`nn/gatel0rd.py`) without gradients in two matrix products, over its matrices stacked once."""

from __future__ import annotations

import torch

from ..nn.gatel0rd import GateL0RDCell
from .cache import derived


def _stacked_weights(cell: GateL0RDCell) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gate and candidate rows stacked, and the two output layers stacked, each over [x, h]:
    (2H, I + H), (2H,), (2O, I + H), (2O,)."""
    gates = torch.cat([torch.cat([cell.w_gx, cell.w_gh], 1), torch.cat([cell.w_rx, cell.w_rh], 1)])
    outputs = torch.cat([torch.cat([cell.w_ox, cell.w_oh], 1), torch.cat([cell.w_px, cell.w_ph], 1)])
    return gates, torch.cat([cell.b_g, cell.b_r]), outputs, torch.cat([cell.b_o, cell.b_p])


def step(cell: GateL0RDCell, x: torch.Tensor, h: torch.Tensor, traces: tuple | None, in_place: bool = False):
    """cell(x, h, traces, in_place): the reference cell while gradients are recorded, else its two-product form."""
    if torch.is_grad_enabled():
        return cell(x, h, traces, in_place)
    gates, gate_bias, outputs, output_bias = derived(
        cell, "stacked", lambda: _stacked_weights(cell), *(p for _, p in cell.named_parameters()))
    g, r = torch.addmm(gate_bias, torch.cat([x, h], 1), gates.t()).split(cell.hidden, 1)
    g, r = torch.relu(torch.tanh(g)), torch.tanh(r)
    h_new = g * r + (1 - g) * h
    o, p = torch.addmm(output_bias, torch.cat([x, h_new], 1), outputs.t()).split(cell.num_outputs, 1)
    return torch.sigmoid(o) * torch.tanh(p), h_new, None, (g > 0).float().mean()
