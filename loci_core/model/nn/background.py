"""Static background: the image comes from the data (passed into every call); the model only
learns where the background shows, as a per-pixel mask logit map at full resolution.

The original also had an unused per-pixel colour bias (3 x H x W) and a "clock" parameter for
the fade-in; the fade-in is now an explicit schedule (loci_core.model.schedules), the bias is gone."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BackgroundMask(nn.Module):
    def __init__(self, input_size: tuple[int, int], init: float):
        super().__init__()
        self.mask = nn.Parameter(torch.full((1, 1, *input_size), float(init)))

    def forward(self, resolution: tuple[int, int]) -> torch.Tensor:
        """Mask logits at `resolution`: (1, 1, H, W), average-pooled from the full-resolution map."""
        if tuple(self.mask.shape[2:]) == tuple(resolution):
            return self.mask
        return F.adaptive_avg_pool2d(self.mask, resolution)
