"""`Loci.compile_inference`: the re-spawn and the middle of the step (encoder input to composite) compiled by
TorchInductor. It must compute the eager step's function, run only where no gradient is recorded, and use the
weights the model has now, not the ones it had when it was compiled."""

import copy
import dataclasses

import pytest
import torch
from test_inference_path import FIELDS, clip, open_model
from torch._dynamo.utils import counters

from loci_core.model.schedules import Ramps


def graphs_compiled() -> int:
    return counters["stats"]["unique_graphs"]


def active_slots(t: int, batch: int, slots: int) -> torch.Tensor:
    """Which slots count as active before step t: none (steps 0-1: a sequence's first call, then every slot
    re-spawned), some (step 2: the compiled re-spawn decodes all, the eager one only the fresh), all (step 3:
    nothing re-spawned)."""
    active = torch.zeros(batch, slots, dtype=torch.bool)
    if t == 2:
        active[0, ::2] = True
        active[1:] = True
    return active | (t >= 3)


def assert_steps_agree(compiled, eager, frames, background, atol=1e-4):
    """Both models step from the same state at every frame (so float differences cannot grow into other
    tracking decisions), with the slots' activity set by `active_slots`; outputs and returned states must agree."""
    state = eager.initial_state(frames.shape[1])
    for t, frame in enumerate(frames):
        state = dataclasses.replace(state, activity=active_slots(t, *state.activity.shape).float())
        out_c, state_c = compiled.step(frame, state, background)
        out_e, state_e = eager.step(frame, state, background)
        for f in FIELDS:
            assert torch.allclose(getattr(out_c, f), getattr(out_e, f), atol=atol, rtol=1e-4), f"{f}, step {t}"
        for c, e in zip(state_c.hidden, state_e.hidden):
            assert torch.allclose(c, e, atol=atol, rtol=1e-4), f"hidden state, step {t}"
        state = state_e


@pytest.mark.slow
def test_compiled_step_is_the_eager_step_and_follows_the_weights(fresh_compiler):
    model = open_model(3)
    eager = copy.deepcopy(model)
    model.compile_inference()
    frames, background = clip(3, steps=4)

    before = graphs_compiled()
    with torch.inference_mode():
        assert_steps_agree(model, eager, frames, background)
    assert graphs_compiled() == before + 2  # the compiled re-spawn and middle ran, not the eager fallbacks

    # weights changed after compiling (as `load_state_dict` or an optimiser would) are the ones used
    with torch.no_grad():
        for m in (model, eager):
            m.decoder.rgb_head.level1.up.bias.add_(0.3)
            m.encoder.level1.scale.alpha.mul_(-1.0)
    compiled_so_far = graphs_compiled()
    with torch.inference_mode():
        assert_steps_agree(model, eager, frames, background)
    assert graphs_compiled() == compiled_so_far  # same graph, new weights

    # a copy of the compiled model runs its own weights, not the original's
    copy_c, copy_e = copy.deepcopy(model), copy.deepcopy(eager)
    with torch.no_grad():
        for m in (copy_c, copy_e):
            m.decoder.mask_head.level1.up.bias.add_(1.0)
    with torch.inference_mode():
        assert_steps_agree(copy_c, copy_e, frames, background)


@pytest.mark.slow
def test_training_steps_stay_eager():
    model = open_model(4)
    model.compile_inference()
    frames, background = clip(4, steps=2)
    before = graphs_compiled()
    model.train()
    out, state = model.step(frames[0], model.initial_state(2), background, Ramps.full(), torch.Generator())
    out.prediction.square().mean().backward()
    assert model.decoder.rgb_head.level1.up.weight.grad is not None
    model.eval()  # eval, but with gradients recorded: also eager
    out, _ = model.step(frames[1], state, background)
    assert out.prediction.requires_grad
    assert graphs_compiled() == before


def test_without_a_cpp_compiler_compiling_fails_at_once_and_says_why(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CXX", raising=False)
    model = open_model(5)
    with pytest.raises(RuntimeError, match="C\\+\\+ compiler"):
        model.compile_inference()
    assert model._compiled_advance is None


@pytest.mark.slow
def test_more_graphs_than_dynamos_limit_still_compile(fresh_compiler):
    # With fullgraph=True, dynamo's recompile limit (8 graphs per function by default) is a hard error; every
    # batch size adds two graphs of Loci._advance, so compile_inference raises the limit for its own calls.
    # Here the process-wide limit is 1 and two batch sizes need four graphs.
    model = open_model(6)
    before = graphs_compiled()
    with torch._dynamo.config.patch(recompile_limit=1):
        model.compile_inference(batch_size=[1, 2])
    assert graphs_compiled() == before + 4
