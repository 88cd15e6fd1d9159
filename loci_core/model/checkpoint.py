"""Checkpoints: one torch file holding plain data (no pickled classes).

    {"format": "loci-checkpoint", "version": 1,
     "config": resolved config dict (loci_core.config.config_to_dict),
     "model": model state_dict, "global_step": int, ...extra}

Extras (optimiser states, `background` (3, H, W) of the training data, ...) are added by the
caller via `save_checkpoint(..., **extra)` and come back in the dict from `load_checkpoint`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..config import ConfigError, LociConfig, config_from_dict, config_to_dict
from .loci import Loci

FORMAT = "loci-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that is missing, not a loci checkpoint, or does not fit its config."""


def save_checkpoint(path: str | Path, model: Loci, cfg: LociConfig, global_step: int = 0, **extra) -> Path:
    """Write atomically (temporary file + rename): a crash never leaves a half-written checkpoint."""
    cfg_dict = config_to_dict(cfg)
    cfg_dict["model"]["level"] = model.level  # the level the weights were last used at
    data = {"format": FORMAT, "version": VERSION, "config": cfg_dict,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "global_step": int(global_step), **extra}
    return write_checkpoint(path, data)


def write_checkpoint(path: str | Path, data: dict) -> Path:
    """Write a checkpoint dict as it is (e.g. one rebuilt from `load_checkpoint`), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(data, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed save (disk full) must not leave a hidden half-file
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint dict (tensors on the CPU); raises CheckpointError with the path and reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a non-checkpoint file
        raise CheckpointError(f"{path}: not a readable torch checkpoint "
                              f"({type(err).__name__}: {err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a loci checkpoint (no format '{FORMAT}' marker)")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {data.get('version')}, this loci reads {VERSION}")
    for key in ("config", "model", "global_step"):
        if key not in data:
            raise CheckpointError(f"{path}: checkpoint lacks '{key}'")
    return data


def load_model(path: str | Path, device="cpu", level: int | None = None) -> tuple[Loci, LociConfig, dict]:
    """Build the model of a checkpoint, load its weights, optionally switch its resolution level.

    A checkpoint trained at level 1 loads into level 2 (`level=2`): the level-2 branches start
    at ~0, so the model renders the nearest-upsampled level-1 output until they are trained.
    Returns (model in eval mode, config with model.level set, checkpoint dict)."""
    data = load_checkpoint(path)
    try:
        cfg = config_from_dict(data["config"], source=f"{path} (config)")
    except ConfigError as err:
        raise CheckpointError(str(err)) from None
    if level is not None:
        if not 1 <= level <= cfg.model.max_level:
            raise CheckpointError(f"{path}: level {level} not available "
                                  f"(model has levels 1..{cfg.model.max_level})")
        cfg.model.level = level
    model = Loci(cfg.model)
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the config: {err}") from None
    return model.to(device).eval(), cfg, data
