"""A tiny Loci learns on two moving coloured sprites (generated here), on the CPU, in 300 updates.

Checked: the image loss falls below 0.6x its start; on new clips the best slot per sprite has a mean IoU above 0.25
(untrained: 0.0), the two sprites mostly sit in different slots, and those slots hold over half of their sprites'
pixels. The bars are what 300 updates reach with margin over model and data seeds (IoU 0.34-0.66 over 24 seed
pairs, loss 0.31-0.51x); IoU 0.5 is met on average, not by every run. The clips start near the frame's centre,
where an untrained slot sits: its position gets a gradient only where its blob overlaps a sprite.
docs/experiments/tiny-model-learns.md has the measurements and what was tried to raise the bar.

Training follows the original's rhythm (one optimiser step per frame, state carried and detached
between frames, regularisers off on each clip's first call) with a plain Adam over all parameters;
beta2 = 0.99 (the paper's slot-initialiser setting) adapts faster in a run this short than 0.999.
"""

import pytest
import torch

from loci_core.config import load_config
from loci_core.model.loci import Loci
from loci_core.model.schedules import Ramps
from loci_core.training.losses import loci_loss

H, W, SPRITE = 60, 80, 16
SPEED = 1.5  # largest step per frame and axis, in pixels
COLOURS = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])  # yellow and cyan: a zero-entropy target


def sprite_clips(n: int, steps: int, generator: torch.Generator, start_within: float | None = None):
    """n clips of `steps` frames on black: two squares moving in straight lines, bouncing off the
    borders. They start anywhere, or within `start_within` pixels (per axis) of the frame's centre.
    Returns frames (n, T, 3, H, W) and sprite masks (n, T, 2, H, W)."""
    frames = torch.zeros(n, steps, 3, H, W)
    masks = torch.zeros(n, steps, 2, H, W, dtype=torch.bool)
    limit = torch.tensor([H - SPRITE, W - SPRITE], dtype=torch.float32)
    for i in range(n):
        for k in range(2):
            if start_within is None:
                position = torch.rand(2, generator=generator) * limit
            else:
                position = limit / 2 + (torch.rand(2, generator=generator) - 0.5) * 2 * start_within
            velocity = (torch.rand(2, generator=generator) - 0.5) * 2 * SPEED
            for t in range(steps):
                r, c = position.round().int().tolist()
                frames[i, t, :, r:r + SPRITE, c:c + SPRITE] = COLOURS[k].view(3, 1, 1)
                masks[i, t, k, r:r + SPRITE, c:c + SPRITE] = True
                position = position + velocity
                bounced = (position < 0) | (position > limit)
                velocity[bounced] = -velocity[bounced]
                position = torch.minimum(position.clamp(min=0), limit)
    return frames, masks


@pytest.mark.slow
@pytest.mark.parametrize("precision", [None, torch.bfloat16], ids=["float32", "bfloat16"])
def test_tiny_model_learns_two_sprites(repo_root, one_thread, precision):
    # one thread: the same arithmetic (and so the same trajectory) on every machine; bfloat16 = train.precision's
    # reduced-precision convolutions (tests/test_training_speed_paths.py), which must learn as well
    cfg = load_config(repo_root / "config/models/tiny.yaml")
    torch.manual_seed(0)
    model = Loci(cfg.model).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    background = torch.zeros(1, 3, H, W)
    data = torch.Generator().manual_seed(1)
    batch, steps, updates, losses = 4, 12, 300, []
    while len(losses) < updates:
        # starting near the centre, where every slot sits before it has learnt to move (see above)
        frames, _ = sprite_clips(batch, steps + 1, data, start_within=8)
        state = model.initial_state(batch)
        for t in range(steps):
            out, state = model.step(frames[:, t], state, background, Ramps.full(), data, precision=precision)
            terms = loci_loss(out, frames[:, t + 1], background, cfg.train, 1.0, cfg.model.colour_bias,
                              regularize=t > 0)
            optimiser.zero_grad()
            terms.total.backward()
            optimiser.step()
            losses.append(float(terms.image.detach()))

    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    print(f"\nimage loss {first:.4f} -> {last:.4f}")
    assert last < 0.6 * first

    # evaluation on new clips: the predicted masks of the 8th frame against the true sprites
    model.eval()
    frames, masks = sprite_clips(8, 8, torch.Generator().manual_seed(99))
    with torch.no_grad():
        state = model.initial_state(8)
        for t in range(7):
            out, state = model.step(frames[:, t], state, background)
    labels = out.masks.argmax(1)  # (8, H, W): the slot (or background, O) each pixel belongs to
    predicted = torch.stack([labels == k for k in range(out.masks.shape[1] - 1)], 1)  # (8, O, H, W)
    truth = masks[:, 7]  # (8, 2, H, W)
    inter = (predicted[:, :, None] & truth[:, None]).sum((-1, -2)).float()
    union = (predicted[:, :, None] | truth[:, None]).sum((-1, -2)).float().clamp(min=1)
    iou = inter / union  # (8, O, 2)
    best, slot = iou.max(1)  # best slot per sprite
    held = inter.gather(1, slot[:, None]).squeeze(1) / truth.sum((-1, -2)).float()  # (8, 2)
    print("best IoU per clip and sprite:", best.tolist())
    print(f"share of each sprite in its best slot: mean {held.mean():.3f}")
    assert best.mean() > 0.25  # slots sit on the sprites (an untrained model scores 0.0)
    assert (slot[:, 0] != slot[:, 1]).float().mean() >= 0.5  # mostly by two different slots
    assert held.mean() > 0.5  # and those slots hold the sprites, not just touch them
