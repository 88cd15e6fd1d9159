"""Slot (re-)initialisation with error-guided spawning.

A slot is *active* once its mask has exceeded `activity_threshold` somewhere in this sequence
(running max, carried in LociState.activity); it then keeps its state for the rest of the
sequence. Every inactive slot is re-spawned at every call:

- gestalt  = sigmoid(mu + sigma * eps)           (learned mean and spread)
- priority = priority_scale * slot_index         (default depth order)
- position = the best of K candidate positions, scored by how much prediction error lies
             under a small Gaussian blob (s = 0) there — new slots appear where the model is
             wrong — with size s0 (learned).

Sampling (training, or `noise_in_eval`): eps ~ N(0, 1) and candidates uniform in [-1, 1]^2 from
the caller's generator. Deterministic (eval): eps = 0 and a fixed, slot-specific Sobol
candidate set, so different slots still spawn at different places.
"""

from __future__ import annotations

import torch
from torch import nn

from ...config import ModelConfig
from .derived import derived
from .gaussian import gaussian_factors


class SlotInitialiser(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        s = cfg.slots
        self.candidates = s.spawn_candidates
        self.gestalt_mean = nn.Parameter(torch.zeros(cfg.gestalt_size))
        self.gestalt_std = nn.Parameter(torch.ones(cfg.gestalt_size))
        self.size = nn.Parameter(torch.zeros(()))
        # derived from the config, so not saved in checkpoints
        self.register_buffer("default_priority", s.priority_scale * torch.arange(cfg.num_slots).float(),
                             persistent=False)
        sobol = torch.quasirandom.SobolEngine(2, scramble=True, seed=s.spawn_seed)
        fixed = sobol.draw(cfg.num_slots * s.spawn_candidates) * 2 - 1
        self.register_buffer("fixed_candidates", fixed.view(cfg.num_slots, s.spawn_candidates, 2),
                             persistent=False)

    def forward(self, position, gestalt, priority, active, error, sample: bool,
                generator: torch.Generator | None = None):
        """Carried state (B, O, 3) / (B, O, G) / (B, O), active (B, O) bool, error (B, 1, H, W)
        -> position, gestalt, priority with every inactive slot re-spawned."""
        b, o = active.shape
        device = error.device

        eps = torch.randn(b, o, self.gestalt_mean.shape[0], generator=generator, device=device) \
            if sample else torch.zeros((), device=device)
        new_gestalt = torch.sigmoid(self.gestalt_mean + self.gestalt_std * eps).expand_as(gestalt)

        # score = sum over pixels of Gaussian(candidate, s=0) * error, computed separably
        if sample:
            cand = torch.rand(b, o, self.candidates, 2, generator=generator, device=device) * 2 - 1
            g_row, g_col = _blob_factors(cand, error.shape[-2:])  # (B, O, K, H), (B, O, K, W)
            score = torch.einsum("bokh,bhw,bokw->bok", g_row, error[:, 0], g_col)
        else:
            cand = self.fixed_candidates.expand(b, -1, -1, -1)  # (B, O, K, 2)
            size = tuple(error.shape[-2:])
            g_row, g_col = derived(self, f"blobs {size}", lambda: _blob_factors(self.fixed_candidates, size),
                                   self.fixed_candidates)  # (O, K, H), (O, K, W): fixed candidates, fixed blobs
            score = torch.einsum("okh,bhw,okw->bok", g_row, error[:, 0], g_col)
        best = score.argmax(-1)  # (B, O)
        location = torch.gather(cand, 2, best[..., None, None].expand(b, o, 1, 2)).squeeze(2)
        new_position = torch.cat([location, self.size.expand(b, o, 1)], dim=-1)

        keep = active.unsqueeze(-1)
        position = torch.where(keep, position, new_position)
        gestalt = torch.where(keep, gestalt, new_gestalt)
        priority = torch.where(active, priority, self.default_priority.expand(b, o))
        return position, gestalt, priority


def _blob_factors(candidates: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The separable factors of size-0 Gaussian blobs at (..., 2) candidate locations."""
    blob = torch.cat([candidates, torch.zeros_like(candidates[..., :1])], dim=-1)  # (..., 3)
    return gaussian_factors(blob, size)
