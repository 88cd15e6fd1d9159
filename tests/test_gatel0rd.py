"""GateL0RD: eligibility-trace gradients against exact backpropagation through time."""

import pytest
import torch

from loci_core.model.nn.gatel0rd import GateL0RDCell

N, I, H, T = 5, 4, 6, 7


def _run(cell, xs, exact: bool):
    """Sum of per-step losses over a sequence; traces: one backward per step (as in training,
    hidden state detached), exact: one backward through the whole sequence."""
    cell.exact_bptt = exact
    cell.zero_grad()
    h, traces, total = torch.zeros(N, H), None, 0.0
    target = torch.linspace(-1, 1, H)
    for x in xs:
        x = x.clone().requires_grad_()
        y, h, traces, _ = cell(x, h, traces)
        loss = ((y - target) ** 2).sum() + (h ** 2).sum()  # depends on the output and the new state
        if exact:
            total = total + loss
        else:
            loss.backward()
            h = h.detach()
    if exact:
        total.backward()
    return {name: p.grad.clone() for name, p in cell.named_parameters()}


def _cell(recurrent_gates: bool, reg_lambda=0.0):
    torch.manual_seed(0)
    cell = GateL0RDCell(I, H, H, reg_lambda).double()
    with torch.no_grad():
        cell.b_g.fill_(0.3)  # keep a good share of the gates open
        if not recurrent_gates:
            cell.w_gh.zero_()
            cell.w_rh.zero_()
    return cell


def test_traces_equal_exact_gradients_when_gates_see_only_the_input():
    """With W_gh = W_rh = 0 the recurrence is h' = g r + (1 - g) h with g, r functions of the
    current input only: the traces are then exact forward-mode gradients, for every parameter."""
    torch.set_default_dtype(torch.float64)
    try:
        xs = torch.randn(T, N, I, generator=torch.Generator().manual_seed(1))
        cell = _cell(recurrent_gates=False)
        traced, exact = _run(cell, xs, exact=False), _run(cell, xs, exact=True)
    finally:
        torch.set_default_dtype(torch.float32)
    for name in traced:
        assert torch.allclose(traced[name], exact[name], rtol=1e-6, atol=1e-9), name
    assert traced["w_gh"].abs().sum() > 0 and traced["w_gx"].abs().sum() > 0


def test_traces_float32_tolerance():
    xs = torch.randn(T, N, I, generator=torch.Generator().manual_seed(2))
    cell = _cell(recurrent_gates=False).float()
    traced, exact = _run(cell, xs, exact=False), _run(cell, xs, exact=True)
    for name in traced:
        assert torch.allclose(traced[name], exact[name], rtol=1e-4, atol=1e-5), name


def test_traces_approximate_when_gates_are_recurrent():
    """With recurrent gate weights the traces drop part of dh'/dh: aligned, but not equal."""
    xs = torch.randn(T, N, I, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    cell = _cell(recurrent_gates=True)
    traced, exact = _run(cell, xs, exact=False), _run(cell, xs, exact=True)
    assert not torch.allclose(traced["w_gx"], exact["w_gx"], rtol=1e-6)
    cos = torch.nn.functional.cosine_similarity(traced["w_gx"].flatten(), exact["w_gx"].flatten(), dim=0)
    assert cos > 0


def test_one_step_input_gradient_and_l0_penalty():
    """The input gradient and the gate penalty of one step match autograd of loss + lambda * sum(g)."""
    cell = _cell(recurrent_gates=True, reg_lambda=0.05)
    x = torch.randn(N, I, dtype=torch.float64, requires_grad=True)
    h = torch.randn(N, H, dtype=torch.float64) * 0.5
    y, h_new, _, _ = cell(x, h, None)
    (y.sum() + h_new.sum()).backward()
    traced_x, traced_w = x.grad.clone(), cell.w_gx.grad.clone()

    cell.zero_grad()
    x2 = x.detach().clone().requires_grad_()
    z = torch.cat([x2, h, torch.ones(N, 1, dtype=torch.float64)], 1)
    w_g, w_r = cell.gate_weights()
    g = torch.relu(torch.tanh(z @ w_g.t()))
    r = torch.tanh(z @ w_r.t())
    h2 = g * r + (1 - g) * h
    y2 = torch.sigmoid(x2 @ cell.w_ox.t() + h2 @ cell.w_oh.t() + cell.b_o) \
        * torch.tanh(x2 @ cell.w_px.t() + h2 @ cell.w_ph.t() + cell.b_p)
    (y2.sum() + h2.sum() + 0.05 * g.sum()).backward()
    assert torch.allclose(traced_x, x2.grad) and torch.allclose(traced_w, cell.w_gx.grad)


@pytest.mark.parametrize("grad", [True, False])
def test_traces_only_when_recording_gradients(grad):
    cell = GateL0RDCell(I, H, H, 0.0)
    with torch.set_grad_enabled(grad):
        y, h, traces, openings = cell(torch.randn(N, I), torch.zeros(N, H), None)
    assert y.shape == (N, H) and h.shape == (N, H) and 0 <= float(openings) <= 1
    assert (traces is not None) == grad
    if grad:
        assert traces[0].shape == traces[1].shape == (N, H, I + H + 1)
