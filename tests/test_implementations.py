"""The reference model (model/nn/, `Loci._advance`) and its speed layer (model/fast/) are one function: on the
same weights and state they give the same outputs over several steps, without gradients and in training
(outputs, gradients and the weights after optimiser steps), and both load the shipped checkpoints."""

import copy
from pathlib import Path

import pytest
import torch

from loci_core.config import ConfigError, config_from_dict, load_config
from loci_core.model.checkpoint import load_checkpoint, load_model
from loci_core.model.loci import Loci

REPO = Path(__file__).resolve().parents[1]
FIELDS = ("prediction", "masks", "slot_rgb", "prev_appearance_logits", "position", "gestalt", "priority",
          "visibility", "encoded_position", "error", "gate_openings")


def twins(level: int = 1, level1_channels: int = 12, seed: int = 0) -> tuple[Loci, Loci]:
    """The tiny model, fast and reference, with every branch scale at 0.5 (untrained, the scales start near 0
    and a wrong rewrite of a branch would not show)."""
    cfg = load_config(REPO / "config/models/tiny.yaml").model
    cfg.encoder.level1_channels = level1_channels  # 24: the fast encoder folds the duplicated input channels
    torch.manual_seed(seed)
    fast = Loci(cfg)
    fast.set_level(level)
    with torch.no_grad():
        for p in fast.parameters():
            if p.dim() == 0:
                p.fill_(0.5)
    reference = copy.deepcopy(fast)
    reference.implementation = "reference"
    assert fast.implementation == "fast"
    return fast, reference


def clip(shape, seed: int = 0, steps: int = 4, batch: int = 2):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(steps, batch, 3, *shape, generator=g), torch.rand(1, 3, *shape, generator=g)


def assert_close(a, b, what: str):
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert torch.allclose(x, y, atol=1e-5, rtol=1e-4), f"{f} differs {what}: {(x - y).abs().max():.3g}"


@pytest.mark.parametrize("mode", [torch.inference_mode, torch.no_grad])
@pytest.mark.parametrize("level, level1_channels", [(1, 12), (1, 24), (2, 24)])
def test_inference_is_the_same_function(mode, level, level1_channels):
    fast, reference = twins(level, level1_channels)
    fast.eval(), reference.eval()
    frames, background = clip(fast.resolution, steps=4 if level == 1 else 2)
    state_f, state_r = fast.initial_state(2), reference.initial_state(2)
    with mode():
        for t, frame in enumerate(frames):
            out_f, state_f = fast.step(frame, state_f, background)
            out_r, state_r = reference.step(frame, state_r, background)
            assert_close(out_f, out_r, f"at step {t}")
        decoded = [m.decode_slots(out_f.position, out_f.gestalt, out_f.priority) for m in (fast, reference)]
    for x, y in zip(*decoded):
        assert torch.allclose(x, y, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("consume_state", [False, True])
def test_training_updates_are_the_same(consume_state):
    """Train mode (noise and spawning from equal generators), a loss through every block, three optimiser
    steps: the outputs, every gradient and the updated weights agree (also with the eligibility traces updated
    in place, as the trainer runs)."""
    fast, reference = twins(1, 24, seed=1)
    frames, background = clip(fast.resolution, seed=1, steps=4)
    optimisers = [torch.optim.SGD(m.parameters(), lr=0.05) for m in (fast, reference)]
    generators = [torch.Generator().manual_seed(5) for _ in range(2)]
    states = [m.initial_state(2) for m in (fast, reference)]
    for t in range(3):
        outs = []
        for i, model in enumerate((fast, reference)):
            out, states[i] = model.step(frames[t], states[i], background, generator=generators[i],
                                        consume_state=consume_state)
            loss = ((out.prediction - frames[t + 1]).square().mean() + out.appearance_logits.square().mean()
                    + out.gestalt.mean() + out.position.square().mean() + out.snitch.square().mean())
            optimisers[i].zero_grad()
            loss.backward()
            outs.append(out)
        assert_close(*outs, f"in training step {t}")
        for (name, p), q in zip(fast.named_parameters(), reference.parameters()):
            assert (p.grad is None) == (q.grad is None), name
            if p.grad is not None:
                scale = q.grad.abs().max().clamp(min=1e-8)
                assert torch.allclose(p.grad, q.grad, atol=1e-7 + 1e-4 * scale, rtol=1e-3), \
                    f"gradient of {name} differs at step {t}: {(p.grad - q.grad).abs().max():.3g} of {scale:.3g}"
        for optimiser in optimisers:
            optimiser.step()
    for (name, p), q in zip(fast.named_parameters(), reference.parameters()):
        assert torch.allclose(p, q, atol=1e-5, rtol=1e-4), f"{name} differs after the updates"


@pytest.mark.parametrize("checkpoint", sorted((REPO / "models").glob("*.pt")), ids=lambda p: p.name)
def test_shipped_checkpoints_load_in_both(checkpoint):
    fast, cfg, data = load_model(checkpoint)
    settings = load_checkpoint(checkpoint)["config"]
    settings["model"]["implementation"] = "reference"
    reference = Loci(config_from_dict(settings).model)
    reference.load_state_dict(data["model"])  # strict: the parameters are the reference modules'
    reference.eval()
    assert fast.implementation == "fast" and reference.implementation == "reference"
    frames, background = clip(fast.resolution, steps=2, batch=1)
    state_f, state_r = fast.initial_state(1), reference.initial_state(1)
    with torch.inference_mode():
        for t, frame in enumerate(frames):
            out_f, state_f = fast.step(frame, state_f, background)
            out_r, state_r = reference.step(frame, state_r, background)
            assert_close(out_f, out_r, f"at step {t}")


def test_the_switch_is_checked():
    settings = {"model": {"implementation": "quick"}}
    with pytest.raises(ConfigError, match="model.implementation must be one of"):
        config_from_dict(settings)
    fast, _ = twins()
    with pytest.raises(ValueError, match="implementation must be one of"):
        fast.implementation = "quick"
    reference = copy.deepcopy(fast)
    reference.implementation = "reference"
    with pytest.raises(ValueError, match="compiles the fast implementation"):
        reference.compile_inference()
