"""Without gradients the model runs rewritten forms of some blocks: weights derived from the parameters
once and kept (sub-pixel convolution weights, the encoder's folded and split first layer, GateL0RD's
stacked matrices), GateL0RD in two matrix products, the pixel shuffle as a gather. That path must be the
same function as the training path, and must follow every change of the parameters."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from loci_core.config import load_config
from loci_core.model.loci import Loci
from loci_core.model.nn.blocks import (
    AggressiveConvTo1x1,
    ResidualBlock,
    cells_to_image,
    channel_skip,
    image_to_cells,
    pixel_shuffle4,
)
from loci_core.model.nn.gaussian import gaussian_maps

MODELS = Path(__file__).resolve().parents[1] / "config" / "models"
FIELDS = ("prediction", "masks", "slot_rgb", "position", "gestalt", "priority")


def open_model(seed: int) -> Loci:
    """The tiny model with every branch scale at 0.5, so each rewritten block shapes the output (untrained,
    the scales start near 0 and a wrong rewrite of a branch would not show)."""
    torch.manual_seed(seed)
    model = Loci(load_config(MODELS / "tiny.yaml").model).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 0:
                p.fill_(0.5)
    return model


def clip(seed: int = 0, steps: int = 4, batch: int = 2):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(steps, batch, 3, 60, 80, generator=g), torch.rand(1, 3, 60, 80, generator=g)


def run(model: Loci, frames, background, mode):
    """Each step's outputs, every step from the state the previous one returned."""
    outs, state = [], model.initial_state(frames.shape[1])
    with mode():
        for frame in frames:
            out, state = model.step(frame, state, background)
            outs.append({f: getattr(out, f).detach().clone() for f in FIELDS})
    return outs


def assert_same(a, b, atol=1e-5):
    for t, (x, y) in enumerate(zip(a, b)):
        for f in FIELDS:
            assert torch.allclose(x[f], y[f], atol=atol, rtol=1e-4), f"{f} differs at step {t}"


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_without_gradients_the_step_is_the_training_path(mode):
    model = open_model(0)
    frames, background = clip()
    assert_same(run(model, frames, background, mode), run(model, frames, background, torch.enable_grad))


def test_kept_weights_follow_every_change_of_the_parameters():
    model = open_model(1)
    frames, background = clip(1)
    run(model, frames, background, torch.inference_mode)  # keeps derived weights

    def check():  # a copy keeps nothing of the original's derived weights (they belong to other tensors)
        assert_same(run(model, frames, background, torch.inference_mode),
                    run(copy.deepcopy(model), frames, background, torch.enable_grad))

    # an optimiser step
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    out, _ = model.step(frames[0], model.initial_state(2), background)
    (out.prediction.square().mean() + out.gestalt.mean()).backward()
    optimiser.step()
    check()
    # loading other weights
    model.load_state_dict(open_model(2).state_dict())
    check()
    # an in-place change of one parameter of each rewritten block
    with torch.no_grad():
        model.decoder.rgb_head.level1.up.weight.mul_(-1.5)
        model.encoder.level1.conv1.weight.add_(0.1)
        model.predictor.layers[0].cell.w_rh.mul_(2.0)
    check()


def test_gathered_pixel_shuffle_equals_the_shuffle():
    x = torch.randn(3, 32, 5, 7)
    with torch.inference_mode():
        for t in (x, x.contiguous(memory_format=torch.channels_last), x[:, :, 1:], x[1:]):
            got, want = pixel_shuffle4(t), F.pixel_shuffle(t, 4)
            assert torch.equal(got, want)
            assert got.stride() == want.stride()  # the layout too: eager and compiled steps hand on the same layout


def test_cells_hold_each_4x4_block_of_pixels():
    image = torch.randn(2, 3, 8, 12)
    cells = image_to_cells(image)  # (N, h, w, C, 16)
    assert cells.shape == (2, 2, 3, 3, 16)
    for i, j, a, b in ((0, 0, 0, 0), (1, 2, 3, 1), (1, 0, 2, 3)):
        assert torch.equal(cells[:, i, j, :, 4 * a + b], image[:, :, 4 * i + a, 4 * j + b])
    for mode in (torch.enable_grad, torch.inference_mode):  # the shuffle and the gathered shuffle
        with mode():
            assert torch.equal(cells_to_image(cells), image)
            assert torch.equal(cells_to_image(cells.unsqueeze(0)), image.unsqueeze(0))  # leading dims kept


def test_blocks_on_1x1_maps_run_as_linear_layers():
    block = ResidualBlock(8, 6, kernel=1)
    x = torch.randn(4, 8, 1, 1)
    reference = block.conv2(F.relu(block.conv1(F.relu(x)))) + channel_skip(x, 6)
    assert torch.allclose(block(x), reference, atol=1e-6)
    to_1x1 = AggressiveConvTo1x1(8, 16, (15, 20), 0.5)
    x = torch.randn(4, 8, 15, 20)
    reference = 0.5 * to_1x1.conv2(F.relu(to_1x1.conv1(x))) + channel_skip(x.mean((2, 3), keepdim=True), 16)
    assert torch.allclose(to_1x1(x), reference, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_eval_spawning_picks_each_slots_candidate_with_the_most_error(batch):
    model = open_model(3)
    init = model.slot_init
    g = torch.Generator().manual_seed(3)
    error = torch.rand(batch, 1, 60, 80, generator=g) ** 8  # a few bright spots
    o = model.num_slots
    state = model.initial_state(batch)
    none_active = torch.zeros(batch, o, dtype=torch.bool)
    with torch.inference_mode():
        for _ in range(2):  # the second call reuses the kept candidate blobs
            position, _, _ = init(state.position, state.gestalt, state.priority, none_active, error, False)
    # reference: each candidate's size-0 Gaussian map over the error, the best candidate per slot
    blobs = torch.cat([init.fixed_candidates, torch.zeros(o, init.candidates, 1)], -1)  # (O, K, 3)
    score = torch.einsum("okhw,bhw->bok", gaussian_maps(blobs, (60, 80)), error[:, 0])
    best = init.fixed_candidates[torch.arange(o), score.argmax(-1)]  # (B, O, 2)
    assert torch.equal(position[..., :2], best)
    # every slot active: the carried state comes back as it was
    carried = torch.randn(batch, o, 3), torch.randn(batch, o, model.gestalt_size), torch.randn(batch, o)
    with torch.inference_mode():
        out = init(*carried, ~none_active, error, False)
    assert all(torch.equal(a, b) for a, b in zip(out, carried))
