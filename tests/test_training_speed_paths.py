"""Training's speed paths against the plain update, from the same weights, state and random draws.

- in-place eligibility traces (`Loci.step(consume_state=True)`, as `loci train` steps): exact, so several
  updates must give the same weights to float tolerance, and the traces must stay in the same memory;
- multi-tensor optimiser steps (`LociOptimisers(foreach=True)`): the same update up to float rounding;
- bfloat16 convolutions (`train.precision`): not exact; one update's losses must agree to 1 % and its gradient to
  a cosine similarity of 0.99 in every optimiser group; tests/test_model_learns.py checks that it still learns.
"""

import copy

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from loci_core.config import load_config
from loci_core.model.loci import Loci
from loci_core.model.precision import cpu_has_native_bf16, training_dtype
from loci_core.model.schedules import ramps_at
from loci_core.training.losses import loci_loss
from loci_core.training.optim import LociOptimisers, parameter_groups

B = 2


class ConvolutionDtypes(TorchDispatchMode):
    """Records the input dtype of every convolution run inside it (after autocast's casts)."""

    def __init__(self):
        super().__init__()
        self.dtypes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket is torch.ops.aten.convolution:
            self.dtypes.append(args[0].dtype)
        return func(*args, **(kwargs or {}))


@pytest.fixture
def setup(repo_root):
    cfg = load_config(repo_root / "config/models/cater-small.yaml", stage=1)
    cfg.model.num_slots = 4
    torch.manual_seed(0)
    model = Loci(cfg.model).train()
    h, w = model.resolution
    data = torch.Generator().manual_seed(1)
    frames = torch.rand(8, B, 3, h, w, generator=data)
    background = torch.rand(1, 3, h, w, generator=data)
    return cfg, model, frames, background


def _train(cfg, model, frames, background, updates: int, foreach: bool = True, **options):
    """`updates` training updates from a fresh state, as loci train makes them; -> (model, last state, losses)."""
    model = copy.deepcopy(model)
    optimisers = LociOptimisers(model, cfg.train, foreach=foreach)
    generator = torch.Generator().manual_seed(2)
    state, losses, step = model.initial_state(B), [], cfg.train.entity_pretraining_steps + 1
    trace_memory = []
    for t in range(updates):
        ramps = ramps_at(step, cfg.train)
        model.zero_grad(set_to_none=True)
        out, state = model.step(frames[t], state, background, ramps, generator, **options)
        terms = loci_loss(out, frames[t + 1], background, cfg.train, ramps.background, cfg.model.colour_bias,
                          snitch_target=torch.zeros(B, 2))
        terms.total.backward()
        optimisers.step(first_call=t == 0, global_step=step)
        losses.append(terms.items())
        trace_memory.append([t.data_ptr() for pair in state.traces for t in pair])
    return model, state, losses, trace_memory


def test_in_place_traces_give_the_same_weights(setup):
    cfg, model, frames, background = setup
    plain, plain_state, plain_losses, plain_memory = _train(cfg, model, frames, background, 6)
    fast, fast_state, fast_losses, fast_memory = _train(cfg, model, frames, background, 6, consume_state=True)
    for (name, a), b in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7, msg=name)
    for a, b in zip(plain_state.traces, fast_state.traces):
        torch.testing.assert_close(b[0], a[0], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(b[1], a[1], rtol=1e-6, atol=1e-7)
    assert plain_losses[-1]["total"] == pytest.approx(fast_losses[-1]["total"], rel=1e-6)
    assert all(m == fast_memory[0] for m in fast_memory)  # updated where they are
    assert plain_memory[1] != plain_memory[2]  # (the plain path makes new ones)


def test_multi_tensor_optimisers_give_the_same_weights(setup):
    cfg, model, frames, background = setup
    looped, _, _, _ = _train(cfg, model, frames, background, 6, foreach=False)
    multi, _, _, _ = _train(cfg, model, frames, background, 6, foreach=True)
    moved = 0
    for (name, a), b, start in zip(looped.named_parameters(), multi.parameters(), model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7, msg=name)
        moved += not torch.equal(a, start)
    assert moved > len(list(model.parameters())) // 2  # the comparison is over weights that trained

    resumed = LociOptimisers(model, cfg.train)  # a state saved by a looping run resumes multi-tensor
    resumed.load_state_dict(LociOptimisers(model, cfg.train, foreach=False).state_dict())
    assert all(g["foreach"] for o in (resumed.slot_init, resumed.main, resumed.background) for g in o.param_groups)


def test_bfloat16_update_matches_float32(setup):
    cfg, model, frames, background = setup
    generator = torch.Generator().manual_seed(2)
    step = cfg.train.entity_pretraining_steps + 1
    results = {}
    for precision in (None, torch.bfloat16):
        trained = copy.deepcopy(model)
        state = trained.initial_state(B)
        generator.manual_seed(2)
        for t in range(3):  # from the same state, with the carried masks and traces of earlier calls
            ramps = ramps_at(step, cfg.train)
            trained.zero_grad(set_to_none=True)
            with ConvolutionDtypes() as convolutions:
                out, state = trained.step(frames[t], state, background, ramps, generator, precision=precision)
            terms = loci_loss(out, frames[t + 1], background, cfg.train, ramps.background, cfg.model.colour_bias,
                              snitch_target=torch.zeros(B, 2))
            terms.total.backward()  # (gradients of the last update only: zero_grad above)
        assert len(convolutions.dtypes) > 10
        assert set(convolutions.dtypes) == {precision or torch.float32}  # every convolution of the step
        results[precision] = (terms.items(), out,
                              {name: torch.cat([p.grad.flatten() for p in ps if p.grad is not None])
                               for name, ps in parameter_groups(trained).items()})
    (losses32, out32, grads32), (losses16, out16, grads16) = results[None], results[torch.bfloat16]
    for key in ("total", "image", "time"):
        assert losses16[key] == pytest.approx(losses32[key], rel=1e-2), key
    assert out16.prediction.dtype == torch.float32 and out16.position.dtype == torch.float32
    assert (out16.prediction - out32.prediction).abs().max() < 2e-2
    for name in ("encoder", "decoder", "predictor"):
        cosine = torch.nn.functional.cosine_similarity(grads16[name], grads32[name], dim=0)
        assert cosine > 0.99, (name, float(cosine))


def test_precision_setting():
    cpu = torch.device("cpu")
    assert training_dtype("float32", cpu) is None
    assert training_dtype("bfloat16", cpu) is torch.bfloat16
    assert training_dtype("auto", cpu) is (torch.bfloat16 if cpu_has_native_bf16() else None)


@pytest.mark.parametrize("capability, expected", [((8, 0), torch.bfloat16), ((7, 5), None)])
def test_auto_precision_on_a_gpu(monkeypatch, capability, expected):
    # the rule for a GPU, checked without one: bfloat16 from Ampere (compute capability 8) on
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    cuda = torch.device("cuda")
    assert training_dtype("auto", cuda) is expected
    assert training_dtype("float32", cuda) is None
    assert training_dtype("bfloat16", cuda) is torch.bfloat16


def test_precision_is_checked(repo_root, tmp_path):
    from loci_core.config import ConfigError

    text = (repo_root / "config/models/tiny.yaml").read_text().replace("train:\n", "train:\n  precision: half\n", 1)
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError, match="train.precision must be one of"):
        load_config(tmp_path / "bad.yaml")
