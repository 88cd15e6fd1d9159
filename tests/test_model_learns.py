"""A tiny Loci learns on two moving coloured sprites (generated here), on the CPU, in 300 updates.

The bar is what 300 updates of the tiny config reach with margin. The sprites are 16 px squares moving up to
1.5 px per frame and axis; the training clips start them within 8 px of the frame's centre, the evaluation clips
anywhere. Measured 2026-12-06 on a 2-core AMD EPYC, one thread, model seeds 0-3 x data seeds 1-6 (24 runs): image
loss cut to 0.31-0.51x (23 runs below 0.5x), mean IoU of the best slot per sprite 0.34-0.66 (mean 0.52, 14 runs
above 0.5), that slot holding 57-97 % of its sprite's pixels; untrained: IoU 0.0. The test's own run (model seed
0, data seed 1): loss 0.212 -> 0.065, IoU 0.63, 96 % held. The issue's bar (IoU > 0.5) is met on average but not
by every run, so the test asserts less; it stays an open point of the model issue.

Why the clips start near the centre: at initialisation every slot's position is the encoder's soft-argmax over a
nearly flat map, i.e. the centre (a clip's slots within 0.1 px of each other), and a position gets a gradient
only where its slot's blob, a few pixels wide, overlaps a sprite. Where no early sprite crosses the centre, no
slot binds: with the earlier sprites (10 px, up to 3 px per frame, starting anywhere) model seed 0 on data seed 3
kept its slots there for 250 updates (the nearest slot 18-25 px from each sprite, loss flat at 0.122), while on
data seed 1 they were 11 px apart by update 50. Runs meeting the earlier bars (IoU > 0.25, > 70 % held, loss
below 0.6x), 24 seed pairs as above: starting anywhere 13 (3 bound no slot), mean IoU 0.29 / 0.33 on data seeds
1-3 / 4-6; starting near the centre 21 (every run bound, 75-99 % held), mean IoU 0.35 / 0.38, range 0.19-0.53.
Then the sprites' size and speed, starting near the centre (data seeds 1-3; mean IoU, range): 16 px up to 3 px
per frame 0.49 (0.33-0.63, loss 0.36-0.61x), up to 1.5 px 0.53 (0.34-0.66), up to 1 px 0.50 (0.33-0.73); 20 px
up to 3 px 0.47; 12 px up to 1 px 0.39. Larger sprites suit the masks, which at 300 updates are still their
15x20 latent masks repeated in 4x4-pixel blocks (below); slower ones spread the predicted masks less.
With the test's data, the mask head's up-convolution branch starting at 0.01 instead of the paper's 1e-16 gave
mean IoU 0.55 on data seeds 1-3 (10 of 12 runs above 0.5) but 0.52 on 4-6 (8 of 12; loss up to 0.56x): not adopted.
Tried the same day, no better (10 px, data seeds 1-3, starting anywhere): the branch scales (`alpha`) at 10x or
30x the learning rate (4 and 5 of 12 runs pass, mean IoU 0.28 / 0.26), the size output's bias at -3 instead of
-10 (data seed 3 still unbound); and, starting near the centre, a blue background given to the model with its
mask logit starting at 3 (mean IoU 0.43, masks holding 33-66 % of their sprites; at 2, 0.30) or with the
compressed curriculum described below (IoU 0.02-0.52, 2-60 % held).

The figures from here on were measured with 10 px sprites moving up to 3 px per frame and starting anywhere.
On 2026-12-02 (model seeds 0 / 1 / 2 / 3), image loss 0.128 -> 0.054-0.067, IoU 0.39 / 0.34 / 0.45 / 0.33,
82-98 % held. The trajectory follows float rounding: with the same model summed in other orders (the decoder's
first convolution, its skips, the encoder's first convolution) the same seeds gave 0.37 / 0.29 / 0.48 / 0.53,
0.47 / 0.39 / 0.31 / 0.43 and 0.39 / 0.36 / 0.37 / 0.42; with that first convolution as a batched matrix product
(2026-12-03), seed 0 gave 0.42.

The sprites are yellow and cyan, two lit channels each. With yellow and blue (one lit channel, so half the
squared error and a smaller error map to spawn on), after a change to the decoder that moved its outputs by
1e-7, the blue sprite got no slot with either seed tried (0 and 1: IoU 0.01-0.02 on blue, 0.23-0.24 in all):
which sprite binds first decided the result, not what the model learnt.

Why IoU stays near 0.4 while the slots hold their sprites: at 300 updates the masks are still coarse. The mask
head's x4 up-convolution branch starts at the paper's 1e-16 and its scale has reached only about +-0.09, so
each mask is its 15x20 latent mask repeated in 4x4-pixel blocks. A 10-pixel sprite touches 3-4 blocks per
side, and on a black background nothing stops a slot from taking the whole of every block it touches (the
slot renders black there as the background would): 12x12 to 16x16 pixels for 100, IoU 0.39-0.69. Tried,
none reliably better (seeds 0-3): the branch starting at 0.01 (0.42 / 0.41 / 0.33 / 0.45) or 0.1 (0.33 / 0.41 /
0.49 / 0.43); 14- or 16-pixel sprites (0.25 / 0.18 / 0.47 / 0.36 and 0.40 / 0.41 / 0.38 / 0.45). Earlier
sessions, with yellow and blue: a background mask logit starting at 2 or 3, learning rate 2e-3, batch 6, the
size ramp of training, the branch starting at 1, and the paper's curriculum onto a background the slots cannot
copy (masks shrink to 0.4-0.8x the sprite, but not every seed binds in 300 updates).

The rest of the gap is motion the model cannot yet predict: the masks are predictions of the next frame, and
they spread over where the sprite may go. Measured 2026-12-03 (one thread, the test's run with one thing
changed): sprites standing still, IoU 0.64 / 0.63 (seeds 0 / 1), masks 1.5x the sprite's area; moving up to
1 px per frame and axis (a third of the test's speed), 0.56 / 0.44 / 0.54 / 0.63 (seeds 0-3); at the test's
speed they cover 2.4x / 2.8x the sprite (seeds 0 / 1: 40 / 35 % of the slot's pixels are its sprite's, 96 /
97 % of the sprite is in the slot). Also tried, none reliably above 0.5: Adam's eps at the paper's 1e-16 (0.44 / 0.44 /
0.39 / 0.40); learning rate 2e-3 annealed to 0 by a half cosine (0.38 / 0.44; with the slower sprites 0.58 /
0.58 / 0.52 / 0.49); evaluating after 12 steps instead of 7 (0.39 / 0.35); and, with eps 1e-16 too, round
sprites (0.44 / 0.36) and a known dark-blue background under yellow and red sprites (so a slot that takes
background pixels pays for them: 0.58 with seed 0, then 0.31 / 0.05 / 0.20, slots not binding; and the
cross-entropy of the 0.5-valued background stops the loss from halving).
Re-measured 2026-12-03 with today's arithmetic (seeds 0-3): sprites up to 1 px per frame and axis, 0.58 / 0.60 /
0.61 / 0.57 on the test's clips (data seed 1), but 0.49 / 0.45 (seeds 0 / 1) on other clips (data seed 2); up to
1.5 px, 0.49 / 0.46 / 0.50 / 0.64. With data seed 3 no slot had bound after 300 updates, at the test's speed or at
1 px (loss near 0.122: the encoder's soft-argmax positions stayed near the frame's centre; traced later, with
model seed 0 at the test's speed, they left it only after ~250 updates, all three slots together, their largest
mask values rising from 0.17 to 0.31-0.41 by update 300), so a bar of 0.5 would hold for these clips, not for the
model. Also measured (a later session the same day): two warm-up calls on each clip's first frame, as `loci train`
and `loci eval` start a sequence (the tiny config's `warmup_calls`), 0.46 / 0.24 (seeds 0 / 1); with the slower
sprites too, 0.54 / 0.49 on data seed 2 and 0.00 / 0.45 on data seed 3 (seed 0 bound no slot); training on 8 fixed
clips and scoring on those same clips, 0.34 / 0.40 / 0.51 / 0.41 (seeds 0-3), so the gap is not one of seeing too
few clips.
Why the masks spread on black: there a slot that renders black costs what the background costs, so the loss does
not set a mask's extent beyond its sprite. A blue background (0, 0, 1) under yellow and red sprites, given to the
model, makes it cost (measured 2026-12-03, sixth session, seeds 0-3 unless said): with the background's mask logit
starting at 1 the slots shrink away before they bind (IoU 0.00 / 0.04, seeds 0 / 1); starting at 3, masks of
0.5-1.3x the sprite's area (2.1x on black) but IoU 0.49 / 0.58 / 0.34 / 0.27 (0.61 / 0.36 / 0.12 / 0.60 with
sprites up to 1.5 px per frame; 0.11 / 0.53 / 0.25 / 0.45 with two slots); with the paper's curriculum compressed
(150 updates on black with the foreground-only target, then the background fading in linearly until update 250),
0.51 / 0.56 / 0.52 / 0.50 on the test's clips, but 0.40 / 0.00 on data seed 2 and 0.00 / 0.00 on data seed 3
(seeds 0 / 1; where 0.00, no slot held a sprite and the loss rose, 0.10 -> 0.15). So the masks' extent can be
fixed; whether the slots bind within 300 updates stays a matter of seeds. A position head or encoder learning 3-5x
faster scored lower (IoU 0.02-0.37), and so did the slot initialiser at the paper's 30x rate (0.30 / 0.36 / 0.35 /
0.35; 0.00 / 0.17 on data seed 3).

On an Intel Sapphire Rapids VM (2026-12-03, seventh session; AVX-512 kernels, so other rounding) the test as
it then was (10 px sprites, starting anywhere) gave IoU 0.51, the best slots holding 87 % of their sprites, loss
0.128 -> 0.060, in 17 s. Model seeds 0-3: 0.51 / 0.41 / 0.49 / 0.41 on the test's clips (data seed 1), 0.27 /
0.19 / 0.42 / 0.41 on data seed 2, and 0.00 / 0.00 / 0.21 / 0.00 on data seed 3 (no slot bound, loss ratio ~1.0):
the same picture as on the AMD VM.

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
