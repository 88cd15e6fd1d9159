"""Shapes of every module and of a full step, at both levels and several batch sizes; the paper
config's parameter count; eval determinism; resolution growth (level 1 -> level 2)."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from loci_core.config import load_config, resolution_at
from loci_core.model.loci import Loci, error_map
from loci_core.model.nn.blocks import (
    AggressiveConvTo1x1,
    AggressiveDownConv,
    AggressiveUpConv,
    GroupedInput,
    LinearResidual,
    ResidualBlock,
    Scale,
    channel_skip,
)
from loci_core.model.nn.decoder import Decoder
from loci_core.model.nn.encoder import FRAME_INPUTS, SLOT_INPUTS, Encoder
from loci_core.model.nn.gaussian import gaussian_maps, others, prioritize
from loci_core.model.schedules import Ramps, ramps_at

MODELS = Path(__file__).resolve().parents[1] / "config" / "models"


@pytest.fixture(scope="module")
def tiny_cfg():
    return load_config(MODELS / "tiny.yaml")


def test_channel_skip_groups_consecutive_channels():
    x = torch.arange(4.0).view(1, 4, 1, 1)
    assert channel_skip(x, 2).flatten().tolist() == [0.5, 2.5]
    assert channel_skip(x, 8).flatten().tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert channel_skip(torch.arange(6.0).view(1, 6, 1, 1), 4).shape == (1, 4, 1, 1)  # via gcd 2
    assert channel_skip(torch.ones(2, 5, 6), 3, dim=-1).shape == (2, 5, 3)


@pytest.mark.parametrize("n", [1, 3])
def test_blocks(n):
    x = torch.randn(n, 8, 60, 80)
    assert ResidualBlock(8, 16)(x).shape == (n, 16, 60, 80)
    assert AggressiveDownConv(8, 16, 1e-12)(x).shape == (n, 16, 15, 20)
    assert AggressiveConvTo1x1(8, 24, (15, 20), 1e-12)(x[..., :15, :20]).shape == (n, 24, 1, 1)
    assert AggressiveUpConv(8, 3, 1e-16)(x[..., :15, :20]).shape == (n, 3, 60, 80)
    assert LinearResidual(10, 5)(torch.randn(n, 7, 10)).shape == (n, 7, 5)


def test_up_conv_equals_the_transposed_convolution_it_stores():
    block = AggressiveUpConv(6, 3, 0.7)
    x = torch.randn(2, 6, 15, 20)
    reference = 0.7 * block.up(F.relu(block.conv(F.relu(x)))) + F.interpolate(channel_skip(x, 3), scale_factor=4)
    assert torch.allclose(block(x), reference, atol=1e-5)


def test_folded_down_conv_equals_the_duplicated_input():
    block = AggressiveDownConv(24, 48, 0.5)
    x = torch.randn(2, 12, 60, 80)
    assert torch.allclose(block(x, fold_input=2), block(channel_skip(x, 24)), atol=1e-5)


def test_gaussian_maps_and_prioritize():
    position = torch.tensor([[[-1.0, -1.0, 0.0], [0.0, 0.5, 0.2]]])  # top-left corner, centre-right
    maps = gaussian_maps(position, (15, 20))
    assert maps.shape == (1, 2, 15, 20)
    assert maps[0, 0, 0, 0] == pytest.approx(1.0) and maps[0, 0, 5, 5] < 1e-6  # s = 0: a ~half-pixel blob
    assert maps[0, 1].argmax() // 20 == 7 and maps[0, 1].argmax() % 20 == 14  # rows first, then columns
    same_place = gaussian_maps(torch.tensor([[[0.0, 0.0, 0.1], [0.0, 0.0, 0.1]]]), (15, 20))
    occluded = prioritize(same_place, torch.tensor([[0.0, 100.0]]))
    assert occluded[0, 0].max() < 1e-6 and torch.allclose(occluded[0, 1], same_place[0, 1])
    assert torch.allclose(others(maps)[0, 0], maps[0, 1])


def test_gaussian_tails_are_zero_not_subnormal():
    """Far tails are exactly 0: subnormal floats would slow every convolution that reads the maps."""
    position = torch.tensor([[p_row, p_col, s] for p_row in (-1.0, 0.3) for p_col in (-1.0, 0.7)
                             for s in (0.0, 0.05, 0.2)])
    maps = gaussian_maps(position, (60, 80))
    tiny = torch.finfo(torch.float32).tiny
    assert not ((maps > 0) & (maps < tiny)).any()
    rows = torch.linspace(-1, 1, 60).view(60, 1)
    cols = torch.linspace(-1, 1, 80).view(1, 80)
    spread = 1 + 80 * position[:, 2].view(-1, 1, 1)
    exact = torch.exp(-0.5 * ((rows - position[:, 0].view(-1, 1, 1)) * 60 / spread) ** 2
                      - 0.5 * ((cols - position[:, 1].view(-1, 1, 1)) * 80 / spread) ** 2)
    assert (exact[maps == 0] < 1e-10).all() and (exact < tiny).any(), "the test must reach the tails"
    assert torch.allclose(maps, exact, rtol=1e-5, atol=1e-10)


# level-1 channels 12: no fold; 24: duplicates folded into the weights; 8: averaged (level 1 only)
@pytest.mark.parametrize(("level", "level1_channels"), [(1, 12), (2, 12), (1, 24), (2, 24), (1, 8)])
def test_encoder_takes_the_frame_channels_once_per_frame(tiny_cfg, level, level1_channels):
    """The model passes the channels a frame's slots share apart; the encoder's answer is the same as for
    the full per-slot input."""
    cfg = copy.deepcopy(tiny_cfg.model)
    cfg.encoder.level1_channels = level1_channels
    if level1_channels % 12:  # level 2 needs a multiple of 12: a level-1-only model
        cfg.input_size = [4 * n for n in cfg.latent_size]
    torch.manual_seed(0)
    encoder = Encoder(cfg)
    for module in encoder.modules():  # open every branch, so that all of the input matters
        if isinstance(module, Scale):
            module.alpha.data.fill_(0.7)
    b, o = 2, 3
    h, w = resolution_at(cfg, level)
    full = torch.rand(b, o, 12, h, w)
    full[:, :, list(FRAME_INPUTS)] = full[:, :1, list(FRAME_INPUTS)]  # the frame's channels: same for its slots
    grouped = GroupedInput(full[:, :, list(SLOT_INPUTS)].flatten(0, 1), full[:, 0, list(FRAME_INPUTS)],
                           SLOT_INPUTS, FRAME_INPUTS)
    assert torch.equal(grouped.full(), full.flatten(0, 1))
    for a, b_ in zip(encoder(grouped, level), encoder(full.flatten(0, 1), level)):
        assert torch.allclose(a, b_, atol=1e-5)


@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("batch", [1, 3])
def test_modules_at_both_levels(tiny_cfg, level, batch):
    torch.manual_seed(0)
    model = Loci(tiny_cfg.model)
    model.set_level(level)
    h, w = model.resolution
    o, g = tiny_cfg.model.num_slots, tiny_cfg.model.gestalt_size
    n = batch * o
    position, gestalt, priority = model.encoder(torch.rand(n, 12, h, w), level)
    assert position.shape == (n, 3) and gestalt.shape == (n, g) and priority.shape == (n,)
    assert position[:, :2].abs().max() <= 1 and (position[:, 2] >= 0).all()
    mask_logits, rgb_logits = model.decode_slots(torch.rand(batch, o, 3) * 2 - 1, torch.rand(batch, o, g),
                                                 torch.rand(batch, o))
    assert mask_logits.shape == (batch, o, h, w) and rgb_logits.shape == (batch, o, 3, h, w)
    state = model.initial_state(batch)
    pred = model.predictor(position.view(batch, o, 3), gestalt.view(batch, o, g), priority.view(batch, o),
                           state.hidden, state.traces, noisy=True)
    assert pred["position"].shape == (batch, o, 3) and pred["gestalt"].shape == (batch, o, g)
    assert pred["priority"].shape == (batch, o) and pred["snitch"].shape == (batch, 2)
    p, gg, r = model.slot_init(state.position, state.gestalt, state.priority, torch.zeros(batch, o, dtype=bool),
                               torch.rand(batch, 1, h, w), sample=True)
    assert p.shape == (batch, o, 3) and gg.shape == (batch, o, g) and r.shape == (batch, o)
    assert model.background_mask((h, w)).shape == (1, 1, h, w)


@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("batch", [1, 2])
def test_step_outputs_and_state(tiny_cfg, level, batch):
    torch.manual_seed(0)
    model = Loci(tiny_cfg.model).train()
    model.set_level(level)
    h, w = model.resolution
    o, g = tiny_cfg.model.num_slots, tiny_cfg.model.gestalt_size
    state = model.initial_state(batch)
    background = torch.rand(1, 3, h, w)
    generator = torch.Generator().manual_seed(0)
    for call in range(2):
        out, state = model.step(torch.rand(batch, 3, h, w), state, background, ramps_at(10, load_config(
            MODELS / "tiny.yaml").train), generator)
        assert out.prediction.shape == (batch, 3, h, w) and 0 <= out.prediction.min() <= out.prediction.max() <= 1
        assert out.masks.shape == (batch, o + 1, h, w)
        assert torch.allclose(out.masks.sum(1), torch.ones(batch, h, w), atol=1e-5)
        assert out.slot_rgb.shape == (batch, o, 3, h, w)
        assert out.position.shape == (batch, o, 3) and out.gestalt.shape == (batch, o, g)
        assert out.priority.shape == out.visibility.shape == out.activity.shape == (batch, o)
        assert out.snitch.shape == (batch, 2)
        assert out.memory_appearance_logits.shape == (batch, o, 3, h, w)
        assert out.error.shape == (batch, 1, h, w)
        out.prediction.mean().backward()
        assert state.calls == call + 1 and state.prediction.shape == (batch, 3, h, w)
        assert not state.prediction.requires_grad and not state.position.requires_grad
        assert state.traces[0] is not None
    with pytest.raises(ValueError, match="frame must be"):
        model.step(torch.rand(batch, 3, h + 4, w), state, background)
    with pytest.raises(ValueError, match="batch size"):
        model.step(torch.rand(batch + 1, 3, h, w), state, background)


def test_error_map_formula():
    frame, prediction, background = torch.full((1, 3, 2, 2), 0.5), torch.full((1, 3, 2, 2), 0.25), torch.zeros(
        1, 3, 2, 2)
    assert torch.allclose(error_map(frame, None, background), torch.full((1, 1, 2, 2), 0.5))
    assert torch.allclose(error_map(frame, prediction, background), torch.full((1, 1, 2, 2), 0.25 ** 0.5 * 0.5))


def test_paper_config_parameter_count():
    """The original's paper config has about 2.96 M parameters, counted from its layer definitions. Ours has
    none unused: the original's background module also held an unused per-pixel colour bias
    (3 x 240 x 320 = 230,400) and a clock scalar (now an explicit schedule); with those added back the count
    matches within 1 %."""
    model = Loci(load_config(MODELS / "cater.yaml").model)
    total = sum(p.numel() for p in model.parameters())
    parts = {name: sum(p.numel() for p in getattr(model, name).parameters())
             for name in ("encoder", "decoder", "predictor", "background_mask", "slot_init")}
    print(f"\nLoci (cater.yaml) parameters: {total:,}  {parts}")
    assert abs(total + 3 * 240 * 320 + 1 - 2.96e6) / 2.96e6 < 0.01
    assert parts["encoder"] == pytest.approx(835.8e3, rel=0.005)
    assert parts["decoder"] == pytest.approx(706.6e3, rel=0.005)
    assert parts["predictor"] == pytest.approx(1.072e6 + 38.9e3, rel=0.005)  # incl. the snitch read-out
    assert parts["slot_init"] == 193


def _sequence(model, frames, background, generator=None):
    state, outs = model.initial_state(frames.shape[1]), []
    with torch.no_grad():
        for frame in frames:
            out, state = model.step(frame, state, background, generator=generator)
            outs.append(out)
    return outs


def test_eval_is_deterministic_and_train_noise_follows_the_generator(tiny_cfg):
    torch.manual_seed(0)
    model = Loci(tiny_cfg.model).eval()
    frames, background = torch.rand(3, 2, 3, 60, 80), torch.rand(1, 3, 60, 80)
    a = _sequence(model, frames, background, torch.Generator().manual_seed(1))
    b = _sequence(model, frames, background, torch.Generator().manual_seed(2))
    c = _sequence(model, frames, background)
    for x, y, z in zip(a, b, c):
        assert torch.equal(x.prediction, y.prediction) and torch.equal(x.prediction, z.prediction)
        assert torch.equal(x.snitch, y.snitch) and torch.equal(x.position, z.position)
    model.train()
    d = _sequence(model, frames, background, torch.Generator().manual_seed(1))
    e = _sequence(model, frames, background, torch.Generator().manual_seed(1))
    f = _sequence(model, frames, background, torch.Generator().manual_seed(2))
    assert all(torch.equal(x.prediction, y.prediction) for x, y in zip(d, e))
    assert not torch.equal(d[-1].gestalt, f[-1].gestalt)


def _trained_at_level1(cfg):
    """A tiny model whose level-1 weights are perturbed (as if trained); level-2-only parts untouched."""
    torch.manual_seed(0)
    model = Loci(cfg.model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".level2." not in name:
                p.add_(0.05 * torch.randn_like(p) if p.dim() else 0.3)
    return model


def test_level_growth_preserves_the_decoder(tiny_cfg, tmp_path):
    from loci_core.model.checkpoint import load_model, save_checkpoint

    model = _trained_at_level1(tiny_cfg).eval()
    path = save_checkpoint(tmp_path / "level1.pt", model, tiny_cfg, global_step=123)
    grown, cfg, _ = load_model(path, level=2)
    assert grown.level == cfg.model.level == 2 and grown.resolution == (240, 320)
    position = torch.rand(2, 3, 3) * 2 - 1
    gestalt, priority = torch.rand(2, 3, tiny_cfg.model.gestalt_size), torch.rand(2, 3) * 50
    with torch.no_grad():
        low = model.decode_slots(position, gestalt, priority)
        high = grown.decode_slots(position, gestalt, priority)
    for lo, hi in zip(low, high):
        upsampled = F.interpolate(lo.flatten(1, -3) if lo.dim() == 5 else lo, scale_factor=4).view(hi.shape)
        assert torch.allclose(hi, upsampled, atol=1e-5)


def test_level_growth_preserves_the_encoder_and_the_step(tiny_cfg):
    model = _trained_at_level1(tiny_cfg).eval()
    x = torch.rand(6, 12, 240, 320)
    with torch.no_grad():
        high = model.encoder(x, level=2)
        low = model.encoder(F.avg_pool2d(x, 4), level=1)
    for hi, lo in zip(high, low):
        assert torch.allclose(hi, lo, atol=1e-4)

    # whole steps: a level-2 sequence of upsampled level-1 frames predicts the upsampled level-1 frames
    frames = torch.rand(3, 1, 3, 60, 80)
    background = torch.rand(1, 3, 60, 80)
    low_out = _sequence(model, frames, background)
    model.set_level(2)
    high_out = _sequence(model, F.interpolate(frames.flatten(0, 1), scale_factor=4).view(3, 1, 3, 240, 320),
                         F.interpolate(background, scale_factor=4))
    # Not exact: the Gaussian position maps in the encoder input are rendered at each resolution
    # (a half-pixel blob at s = 0 is relatively smaller at 240x320) and spawning scores the error
    # map at full resolution; both shift the estimated positions by about a pixel.
    for lo, hi in zip(low_out, high_out):
        diff = (hi.prediction - F.interpolate(lo.prediction, scale_factor=4)).abs()
        assert diff.mean() < 0.01 and diff.max() < 0.1
        assert torch.allclose(hi.position[..., :2], lo.position[..., :2], atol=0.05)


def test_ramps_default_to_full():
    assert Ramps.full() == Ramps(1.0, 1.0)
    cfg = load_config(MODELS / "cater.yaml").train
    assert ramps_at(0, cfg) == Ramps(0.0, 0.0)
    early, late = ramps_at(10_000, cfg), ramps_at(70_000, cfg)
    assert early.std_scale == pytest.approx(0.7616, abs=1e-3) and early.background == 0
    assert late.background == pytest.approx(0.9640, abs=1e-3)


def test_decoder_trunk_equals_the_trunk_on_maps_times_gestalt(tiny_cfg):
    torch.manual_seed(0)
    decoder = Decoder(tiny_cfg.model)
    maps, gestalt = torch.rand(2, 3, 15, 20), torch.randn(2, 3, tiny_cfg.model.gestalt_size)
    merged = (maps.unsqueeze(2) * gestalt[..., None, None]).flatten(0, 1)  # (N, G, h, w)
    assert torch.allclose(decoder.features_of_maps(maps, gestalt), decoder.trunk(merged), atol=1e-5)
