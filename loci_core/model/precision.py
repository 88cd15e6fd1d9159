"""Reduced-precision training arithmetic (`train.precision`).

With bfloat16, the encoder's and decoder's convolutions and matrix products run under autocast: oneDNN runs
them on AMX / AVX512-BF16 units several times faster than in float32 (a 3x3 convolution of the paper config's
decoder trunk, forward and backward: 4x), and saves their inputs at half the size. Every residual stream adds its
branch to a float32 skip, so activations between blocks, the model's outputs and state, the predictor (GateL0RD's
eligibility traces accumulate over a whole video), the slot initialiser and the losses stay float32.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 products in hardware (AMX or AVX512-BF16; Linux's /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def cuda_has_bf16(device: torch.device) -> bool:
    """Whether `device` is a CUDA GPU with bfloat16 tensor cores (Ampere and later)."""
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8


def training_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `train.precision` on `device`, or None for float32 throughout. 'auto' chooses
    bfloat16 only where the hardware computes it natively: a CPU with AMX / AVX512-BF16 or a CUDA GPU from
    Ampere on (elsewhere it would run slower than float32). bfloat16 keeps float32's exponent range, so unlike
    float16 it needs no loss scaling."""
    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "auto" and (cpu_has_native_bf16() if device.type == "cpu" else cuda_has_bf16(device)):
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to `dtype` on `device`'s type, or nothing when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def full_precision(device: torch.device):
    """Float32 inside an autocast region (the parts that must not round: see the module docstring)."""
    return torch.autocast(device.type, enabled=False)
