"""Noise that pushes outputs towards binary values, drawn from an explicit generator."""

from __future__ import annotations

import torch


def binarize_noise(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """x + x(1 - x) * eps, eps ~ N(0, 1), for x in [0, 1].

    The noise vanishes only at 0 and 1, so a network downstream of it learns to saturate x."""
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + x * (1 - x) * eps


def normal_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
