"""GateL0RD recurrent cell with online eligibility traces (e-prop style).

Per slot-instance, input x (I), previous hidden state h (H):

    g  = max(0, tanh(W_g [x, h, 1]))          gate ("ReTanh"): the latent state only changes where g > 0
    r  = tanh(W_r [x, h, 1])                  candidate
    h' = g * r + (1 - g) * h
    y  = sigmoid(W_o [x, h', 1]) * tanh(W_p [x, h', 1])

Learning (what Loci trains with): the hidden state is detached every step (one-step truncated
BPTT), and the gate/candidate weights get long-range credit from eligibility traces carried
forward in time. With z = [x, h, 1], the traces are

    E_g <- E_g * (1 - g)_j + dg_j * (r - h)_j * z_i,   dg = (1 - g^2) * [g > 0]
    E_r <- E_r * (1 - g)_j + dr_j * g_j * z_i,         dr = 1 - r^2

and with delta = dL/dh' the gradients are dW_g = sum_n delta_j E_g[j, i] (+ the L0 penalty
lambda * dg_j * z_i, the gradient of lambda * sum(g)), dW_r = sum_n delta_j E_r[j, i]. The traces
keep only the diagonal (1 - g) part of dh'/dh, so they equal exact BPTT gradients when the
gates do not depend on h (W_gh = W_rh = 0) and the input has no recurrent dependency — the
property tests/test_gatel0rd.py checks. We keep two traces of (N, H, I + H + 1) (gate and
candidate, with x, h and the bias stacked) instead of six separate ones; eval and no-grad
calls keep none at all.

`exact_bptt=True` computes the same cell with plain autograd and keeps the hidden state's
graph across steps, for checking.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _stack_input(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """z = [x, h, 1]: (N, I + H + 1)."""
    return torch.cat([x, h, torch.ones_like(x[:, :1])], dim=1)


class _EligibilityGateL0RD(torch.autograd.Function):
    """h' of the cell, with gate/candidate weight gradients from eligibility traces."""

    @staticmethod
    def forward(ctx, x, h, trace_g, trace_r, w_g, w_r, reg_lambda, in_place):
        # x (N, I), h (N, H) detached, traces (N, H, I + H + 1), w_g/w_r (H, I + H + 1)
        z = _stack_input(x, h)
        g = torch.relu(torch.tanh(z @ w_g.t()))  # (N, H)
        r = torch.tanh(z @ w_r.t())  # (N, H)
        h_new = g * r + (1 - g) * h
        dg = (1 - g * g) * (g > 0)
        dr = 1 - r * r
        delta = r - h
        keep = (1 - g).unsqueeze(2)  # (N, H, 1)
        if in_place:  # the caller gave the traces up: decay and add in their own memory (no 2 x 25 MB per layer)
            trace_g.mul_(keep).baddbmm_((dg * delta).unsqueeze(2), z.unsqueeze(1))
            trace_r.mul_(keep).baddbmm_((dr * g).unsqueeze(2), z.unsqueeze(1))
            ctx.mark_dirty(trace_g, trace_r)
        else:
            trace_g = torch.baddbmm(trace_g * keep, (dg * delta).unsqueeze(2), z.unsqueeze(1))
            trace_r = torch.baddbmm(trace_r * keep, (dr * g).unsqueeze(2), z.unsqueeze(1))
        ctx.save_for_backward(z, g, dg, dr, delta, trace_g, trace_r, w_g, w_r)
        ctx.reg_lambda = reg_lambda
        ctx.num_inputs = x.shape[1]
        ctx.mark_non_differentiable(trace_g, trace_r, g)
        # the traces and g get no gradient: None in backward, not zeros as large as the traces made at each step
        ctx.set_materialize_grads(False)
        return h_new, trace_g, trace_r, g

    @staticmethod
    def backward(ctx, grad_h, _grad_trace_g, _grad_trace_r, _grad_g):
        z, g, dg, dr, delta, trace_g, trace_r, w_g, w_r = ctx.saved_tensors
        lam, n_in = ctx.reg_lambda, ctx.num_inputs
        if grad_h is None:
            grad_h = torch.zeros_like(g)
        grad_w_g = torch.einsum("nj,nji->ji", grad_h, trace_g) + lam * dg.t() @ z
        grad_w_r = torch.einsum("nj,nji->ji", grad_h, trace_r)
        # one-step credit to the layer input only; the hidden state is detached
        grad_x = ((grad_h * delta + lam) * dg) @ w_g[:, :n_in] + (grad_h * g * dr) @ w_r[:, :n_in]
        return grad_x, None, None, None, grad_w_g, grad_w_r, None, None


class _GatePenalty(torch.autograd.Function):
    """Identity on g whose backward adds lambda * [g > 0]: the L0 penalty in exact-BPTT mode."""

    @staticmethod
    def forward(ctx, g, reg_lambda):
        ctx.save_for_backward(g)
        ctx.reg_lambda = reg_lambda
        return g.view_as(g)

    @staticmethod
    def backward(ctx, grad):
        (g,) = ctx.saved_tensors
        return grad + ctx.reg_lambda * (g > 0).to(grad.dtype), None


class GateL0RDCell(nn.Module):
    """One GateL0RD cell shared by all slot-instances (N = B * O rows)."""

    def __init__(self, num_inputs: int, hidden: int, num_outputs: int, reg_lambda: float,
                 exact_bptt: bool = False):
        super().__init__()
        self.num_inputs, self.hidden, self.num_outputs = num_inputs, hidden, num_outputs
        self.reg_lambda = reg_lambda
        self.exact_bptt = exact_bptt

        def uniform(rows, cols, bound):
            return nn.Parameter(torch.empty(rows, cols).uniform_(-bound, bound))

        i, h, o = num_inputs, hidden, num_outputs
        self.w_gx = uniform(h, i, math.sqrt(6 / (i + h)))
        self.w_gh = uniform(h, h, math.sqrt(3 / h))
        self.b_g = nn.Parameter(torch.zeros(h))
        self.w_rx = uniform(h, i, math.sqrt(6 / (i + h)))
        self.w_rh = uniform(h, h, math.sqrt(3 / h))
        self.b_r = nn.Parameter(torch.zeros(h))
        self.w_ox = uniform(o, i, math.sqrt(6 / (i + o)))
        self.w_oh = uniform(o, h, math.sqrt(6 / (h + o)))
        self.b_o = nn.Parameter(torch.zeros(o))
        self.w_px = uniform(o, i, math.sqrt(6 / (i + o)))
        self.w_ph = uniform(o, h, math.sqrt(6 / (h + o)))
        self.b_p = nn.Parameter(torch.zeros(o))

    def gate_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """W_g and W_r over z = [x, h, 1]: (H, I + H + 1) each."""
        w_g = torch.cat([self.w_gx, self.w_gh, self.b_g.unsqueeze(1)], dim=1)
        w_r = torch.cat([self.w_rx, self.w_rh, self.b_r.unsqueeze(1)], dim=1)
        return w_g, w_r

    def empty_traces(self, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (n, self.hidden, self.num_inputs + self.hidden + 1)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def forward(self, x: torch.Tensor, h: torch.Tensor, traces: tuple | None, in_place: bool = False):
        """x (N, I), h (N, H), traces (E_g, E_r) or None -> y (N, O), h' (N, H), traces', openings.

        Traces are updated only when gradients are being recorded (training); otherwise None. `in_place`: the
        caller will not read `traces` again, so traces' are the same tensors, updated (same values)."""
        w_g, w_r = self.gate_weights()
        if self.exact_bptt or not torch.is_grad_enabled():
            z = _stack_input(x, h)
            g = torch.relu(torch.tanh(z @ w_g.t()))
            if torch.is_grad_enabled():
                g = _GatePenalty.apply(g, self.reg_lambda)
            r = torch.tanh(z @ w_r.t())
            h_new = g * r + (1 - g) * h
            traces = None
        else:
            if traces is None:
                traces = self.empty_traces(x.shape[0], x.device)
            h_new, trace_g, trace_r, g = _EligibilityGateL0RD.apply(
                x, h.detach(), traces[0], traces[1], w_g, w_r, self.reg_lambda, in_place)
            traces = (trace_g, trace_r)
        y = torch.sigmoid(x @ self.w_ox.t() + h_new @ self.w_oh.t() + self.b_o) \
            * torch.tanh(x @ self.w_px.t() + h_new @ self.w_ph.t() + self.b_p)
        openings = (g.detach() > 0).float().mean()
        return y, h_new, traces, openings
