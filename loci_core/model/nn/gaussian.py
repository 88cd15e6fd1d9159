"""Gaussian position maps ("where" made spatial) and priority-based occlusion of them."""

from __future__ import annotations

import torch


def _axis(n: int, device, dtype) -> torch.Tensor:
    """Grid coordinates 2i/(n-1) - 1 in [-1, 1] (a single cell sits at 0)."""
    if n == 1:
        return torch.zeros(1, device=device, dtype=dtype)
    return torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype)


def gaussian_factors(position: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The separable factors of `gaussian_maps`: rows (..., h) and columns (..., w).

    position (..., 3) = (p_row, p_col, s); p clipped to [-1, 1], s to [0, 1]."""
    h, w = size
    p_row = position[..., 0:1].clamp(-1, 1)
    p_col = position[..., 1:2].clamp(-1, 1)
    s = position[..., 2:3].clamp(0, 1)
    # sigma in grid units: (1 + max(h, w) * s) / n, i.e. about half a pixel at s = 0, at any resolution
    spread = 1 + max(h, w) * s
    rows = _axis(h, position.device, position.dtype)
    cols = _axis(w, position.device, position.dtype)
    g_row = _tail_to_zero(torch.exp(-0.5 * ((rows - p_row) * (h / spread)) ** 2))  # (..., h)
    g_col = _tail_to_zero(torch.exp(-0.5 * ((cols - p_col) * (w / spread)) ** 2))  # (..., w)
    return g_row, g_col


# Far tails of the Gaussians underflow into subnormal floats (below 1.2e-38), and x86 CPUs compute with
# subnormal operands many times slower (bench/subnormal_tails.py measures it).
# Factors below TAIL are set to exactly 0; relative to the peak of 1 that is far below float32 resolution.
TAIL = 1e-10


def _tail_to_zero(g: torch.Tensor) -> torch.Tensor:
    return g.masked_fill(g < TAIL, 0.0)


def gaussian_maps(position: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """position (..., 3) -> maps (..., h, w), peak value 1 at (p_row, p_col)."""
    g_row, g_col = gaussian_factors(position, size)
    return g_row.unsqueeze(-1) * g_col.unsqueeze(-2)


def prioritize(maps: torch.Tensor, priority: torch.Tensor) -> torch.Tensor:
    """Occlusion ordering: out_o = relu(G_o - sum_{i != o} sigmoid(R_i - R_o) * G_i).

    maps (B, O, h, w), priority (B, O) (larger = in front) -> (B, O, h, w)."""
    order = torch.sigmoid(priority.unsqueeze(1) - priority.unsqueeze(2))  # (B, O, O): [b, o, i]
    order = order * (1 - torch.eye(priority.shape[1], device=maps.device, dtype=maps.dtype))
    occluders = torch.einsum("boi,bihw->bohw", order, maps)
    return torch.relu(maps - occluders)


def others(maps: torch.Tensor) -> torch.Tensor:
    """For each slot o, the sum of the other slots' maps: (B, O, ...) -> (B, O, ...)."""
    return maps.sum(1, keepdim=True) - maps
