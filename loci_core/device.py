"""The torch device of every command and of the tracker: one answer to `--device`, one error message.

`auto` picks the first GPU when torch sees one, else the CPU; `cuda` and `cuda:N` must exist, so a
CPU-only torch fails here with a sentence instead of deep inside torch with an AssertionError.
"""

from __future__ import annotations

import torch

CHOICES = "auto, cpu, cuda or cuda:N"


class DeviceError(ValueError):
    """A device this torch cannot use; the message names the asked-for device and why."""


def resolve_device(name: str | torch.device, index: int = 0, flag: str = "--device") -> torch.device:
    """The torch.device for `name` (auto | cpu | cuda | cuda:N); `index` is the GPU a plain `cuda` or
    `auto` means (a process's local rank). `flag` names the setting in the error message."""
    text = str(name).strip()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(text)
    except RuntimeError:
        raise DeviceError(f"unknown {flag} {text!r} ({CHOICES})") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise DeviceError(f"unsupported {flag} {text!r} ({CHOICES})")
    if not torch.cuda.is_available():
        why = "this torch is built without CUDA" if torch.version.cuda is None else "torch sees no GPU"
        raise DeviceError(f"{flag} {text}, but no CUDA device is available ({why})")
    number = index if device.index is None else device.index
    count = torch.cuda.device_count()
    if number >= count:
        raise DeviceError(f"{flag} {text}, but there is no CUDA device {number} (this machine has {count})")
    return torch.device("cuda", number)


def add_device_argument(parser) -> None:
    """The `--device` option every command shares (resolved by `resolve_device`)."""
    parser.add_argument("--device", default="auto", help=f"torch device: {CHOICES} (auto: a GPU if torch sees one)")
