"""Typed configuration of the Loci model and its training, read from and written to YAML.

A config file has three top-level sections::

    model:   {...}        ModelConfig: architecture and the model's constants
    train:   {...}        TrainConfig: optimisation, losses, schedules, bookkeeping
    stages:               optional per-stage overrides of the two sections above
      1: {model: {level: 1}, train: {learning_rate: 1.0e-4}}
      ...

`load_config(path, stage=n)` returns the base config with stage n's overrides applied;
`stage=None` returns the base config itself (for CATER: the evaluation config, level 2).
Every key is checked: an unknown key raises `ConfigError` naming its dotted path
(e.g. ``stages.2.train.learning_rte``), so a typo never silently falls back to a default.

Numbers may be written as YAML numbers or as strings like ``1e-4`` (PyYAML reads exponent
notation without a dot as a string; we accept it for float fields).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SNITCH_MODES = ("off", "probe", "joint")
READOUTS = ("slot", "temporal")
IMPLEMENTATIONS = ("reference", "fast")
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("float32", "bfloat16", "auto")
ENCODER_INPUTS = 12
"""channels of the encoder's per-slot input image (frame 3, error 1, masks 3, appearance 3, positions 2)"""


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and/or dotted key."""


@dataclass
class EncoderConfig:
    channels: int = 48
    """width of the encoder trunk on the latent grid"""
    level1_channels: int = 24
    """width of the features at level-1 resolution (latent grid x4): level-1 frames are channel-
    duplicated to this width, level-2 frames are downsampled to it"""
    num_layers: int = 3
    """residual blocks per trunk stage and per head"""
    std_bias: float = -10.0
    """the size output is mean(sigmoid(c + std_bias)): a large negative bias keeps slots small at first"""


@dataclass
class DecoderConfig:
    channels: int = 48
    """width of the decoder trunk on the latent grid"""
    num_layers: int = 5
    """residual blocks of the shared trunk (the first maps gestalt_size -> channels)"""
    level2_expansion: int = 4
    """the level-2 refinement branches widen to expansion x output channels (48->4->1, 48->12->3)"""


@dataclass
class PredictorConfig:
    heads: int = 2
    """attention heads; the hidden width is heads x (gestalt_size + 4)"""
    layers: int = 2
    """number of (attention + GateL0RD) layers"""
    reg_lambda: float = 1e-10
    """L0 penalty on GateL0RD gate openings (gradient-only, as in the original)"""
    exact_bptt: bool = False
    """True: GateL0RD keeps its graph across steps (exact BPTT) instead of eligibility traces.
    For checking the traces only; the training loop must then not detach the state."""
    priority_gain: float = 10.0
    """priority encoder: R = priority_scale * (w_p * (priority_gain * r + priority_noise * eps) + w_i * o)"""
    priority_noise: float = 0.1
    """std of the priority noise (training only unless model.noise_in_eval)"""


@dataclass
class SlotInitConfig:
    priority_scale: float = 25.0
    """default depth order: slot o starts with priority priority_scale * o; also scales learned priorities"""
    activity_threshold: float = 0.5
    """a slot is active once the running max of its mask exceeds this; inactive slots are re-spawned"""
    spawn_candidates: int = 10
    """error-guided spawning: candidate positions scored against the error map per inactive slot"""
    spawn_seed: int = 0
    """seed of the fixed (Sobol) candidate set used when spawning is deterministic (eval)"""


@dataclass
class ModelConfig:
    level: int = 2
    """resolution level: frames are latent_size x 4**level (1: 60x80, 2: 240x320 for CATER)"""
    num_slots: int = 10
    input_size: tuple[int, int] = (240, 320)
    """(H, W) at the highest level; fixes how many levels the model holds (input = latent x 4**max_level)"""
    latent_size: tuple[int, int] = (15, 20)
    """(h, w) of the encoder/decoder grid"""
    gestalt_size: int = 96
    colour_bias: float = -2.5
    """slot colour = sigmoid(rgb_logit + colour_bias): an untrained slot renders dark (~0.08)"""
    branch_init: float = 1e-12
    """initial value of the learnable scales of residual branches (the network starts as its skips)"""
    up_branch_init: float = 1e-16
    """initial value of the branch scales of the decoder's up-convolutions and of the size output"""
    background_mask_init: float = 1.0
    """initial background mask logit (per pixel)"""
    snitch: str = "joint"
    """snitch read-out head: 'off' (none), 'probe' (its gradient stops at the slot states, so the
    model stays unsupervised) or 'joint' (the paper's setting: the supervision reaches the model)"""
    readout: str = "slot"
    """which snitch read-out (when model.snitch is not 'off'): 'slot' (the paper's: a soft choice of slot in
    each frame on its own) or 'temporal' (a causal read-out over the slots' history that answers with one
    slot; nn/temporal_readout.py)"""
    readout_width: int = 32
    """memory width per slot of the temporal read-out"""
    noise_in_eval: bool = False
    """the original applies binarising/priority/read-out noise and random spawning also in eval;
    we switch them off in eval mode unless this is true"""
    implementation: str = "fast"
    """'fast' (the speed layer, model/fast/) or 'reference' (the plain blocks of model/nn/, slower): the
    same function on the same parameters"""
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    slots: SlotInitConfig = field(default_factory=SlotInitConfig)

    @property
    def max_level(self) -> int:
        return _max_level(self.input_size, self.latent_size)

    @property
    def resolution(self) -> tuple[int, int]:
        """(H, W) of the frames at the current level."""
        return resolution_at(self, self.level)


@dataclass
class TrainConfig:
    batch_size: int = 16
    clip_len: int | None = None
    """frames per training sequence; null = whole videos (the paper: one state per 301-frame video)"""
    window_share: float = 0.0
    """share of batches that are windows of window_len frames starting shortly before the snitch goes
    under a cone (instead of clip_len sequences): more containment-carry-reveal events per update"""
    window_len: int = 96
    """frames per window (a hide-carry-reveal spell lasts 37-74+ frames)"""
    window_lead: int = 12
    """a window starts up to this many frames before the containment it is drawn for"""
    warmup_calls: int = 10
    """calls on the first frame before each sequence (the original's 'teacher_forcing'); the
    regularisers are off during them"""
    learning_rate: float = 1e-4
    """encoder, decoder and predictor (RAdam)"""
    slot_init_lr_factor: float = 30.0
    """the slot initialiser's Adam uses learning_rate x this, stepped only at a sequence's first call"""
    background_learning_rate: float = 1e-4
    lr_schedule: str = "constant"
    """'constant' (the paper) or 'cosine': every learning rate falls along a half cosine from its value to
    lr_final_factor x its value over the stage's `updates` (counted from the stage's first update)"""
    lr_final_factor: float = 0.0
    precision: str = "float32"
    """arithmetic of the encoder's and decoder's convolutions in training: 'float32', 'bfloat16' (autocast; the
    residual streams, predictor, slot initialiser, losses and optimisers stay float32) or 'auto' (bfloat16 where the
    hardware has it natively: a CPU with AMX or AVX512-BF16, a CUDA GPU from Ampere on; else float32)"""
    betas: tuple[float, float] = (0.9, 0.999)
    slot_init_betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-16
    entity_pretraining_steps: int = 30000
    """updates (optimiser steps = frames) with a black background and foreground-only targets;
    after them the background fades in"""
    std_ramp_rate: float = 1e-4
    """encoder size output is scaled by tanh(std_ramp_rate * global_step) (the original's clock
    advanced by the learning rate per update; we keep the stage-1 rate for the whole run)"""
    background_ramp_rate: float = 1e-4
    """background fade-in: tanh(background_ramp_rate * (global_step - entity_pretraining_steps) / 2)"""
    supervision_factor: float = 0.01
    """weight of the snitch-tracking loss (needs model.snitch != 'off')"""
    position_regularizer: float = 1.0
    position_factor: float = 0.01
    """internal factor of the position-smoothness loss (total weight = regularizer x factor)"""
    object_regularizer: float = 1.0
    time_regularizer: float = 1.0
    time_factor: float = 0.1
    """internal factor of the temporal-consistency loss"""
    foreground_threshold: float = 0.1
    """a pixel is foreground where RMS over channels of (frame - background) exceeds this"""
    updates: int = 100000
    """length of the stage in optimiser steps (one per frame)"""
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3
    """the newest checkpoints kept; 0 keeps them all"""
    log_every: int = 100
    image_every: int = 2000
    seed: int = 0
    num_workers: int = 2


@dataclass
class LociConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stage: int | None = None
    """which stage's overrides were applied (None: the base config)"""

    @property
    def resolution(self) -> tuple[int, int]:
        return self.model.resolution


def _max_level(input_size, latent_size) -> int:
    ratio = input_size[0] / latent_size[0]
    level = round(math.log(ratio, 4)) if ratio > 0 else 0
    if level < 1 or tuple(input_size) != (latent_size[0] * 4 ** level, latent_size[1] * 4 ** level):
        raise ConfigError(f"model.input_size {list(input_size)} must be model.latent_size "
                          f"{list(latent_size)} times 4 or 16")
    if level > 2:
        raise ConfigError(f"model.input_size {list(input_size)}: at most 2 resolution levels are supported")
    return level


def resolution_at(model_cfg: ModelConfig, level: int) -> tuple[int, int]:
    h, w = model_cfg.latent_size
    return h * 4 ** level, w * 4 ** level


# ----------------------------------------------------------------------------- dict <-> dataclass

def _coerce(value, annotation, key: str):
    """Check/convert one YAML value to the annotated type; raise ConfigError naming `key`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    if dataclasses.is_dataclass(annotation):
        return _from_dict(annotation, value, key)
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {annotation}")  # a bug in this module, not in the file


def _from_dict(cls, data, prefix: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in names:
            dotted = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"unknown config key '{dotted}' (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name in names:
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], f"{prefix}.{name}" if prefix else name)
    return cls(**kwargs)


def _to_plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _validate(cfg: LociConfig) -> LociConfig:
    m = cfg.model
    max_level = m.max_level  # raises on a bad input/latent size
    if not 1 <= m.level <= max_level:
        raise ConfigError(f"model.level {m.level} must be between 1 and {max_level} for input_size "
                          f"{list(m.input_size)}")
    if m.snitch not in SNITCH_MODES:
        raise ConfigError(f"model.snitch must be one of {SNITCH_MODES}, got {m.snitch!r}")
    if m.readout not in READOUTS:
        raise ConfigError(f"model.readout must be one of {READOUTS}, got {m.readout!r}")
    if m.implementation not in IMPLEMENTATIONS:
        raise ConfigError(f"model.implementation must be one of {IMPLEMENTATIONS}, got {m.implementation!r}")
    if m.readout_width < 1:
        raise ConfigError(f"model.readout_width must be positive, got {m.readout_width}")
    for key, value in (("model.num_slots", m.num_slots), ("model.gestalt_size", m.gestalt_size),
                       ("model.encoder.channels", m.encoder.channels),
                       ("model.decoder.channels", m.decoder.channels),
                       ("model.predictor.heads", m.predictor.heads),
                       ("model.slots.spawn_candidates", m.slots.spawn_candidates),
                       ("train.batch_size", cfg.train.batch_size)):
        if value < 1:
            raise ConfigError(f"{key} must be positive, got {value}")
    enc = m.encoder
    if enc.channels % enc.level1_channels:
        raise ConfigError(f"model.encoder.channels ({enc.channels}) must be a multiple of "
                          f"model.encoder.level1_channels ({enc.level1_channels})")
    if max_level >= 2 and enc.level1_channels % ENCODER_INPUTS:
        raise ConfigError(f"model.encoder.level1_channels ({enc.level1_channels}) must be a multiple of "
                          f"{ENCODER_INPUTS} (the encoder's input channels) for level 2")
    if cfg.train.clip_len is not None and cfg.train.clip_len < 2:
        raise ConfigError(f"train.clip_len must be >= 2 frames or null, got {cfg.train.clip_len}")
    if not 0.0 <= cfg.train.window_share <= 1.0:
        raise ConfigError(f"train.window_share must be in [0, 1], got {cfg.train.window_share}")
    if cfg.train.window_len < 2 or cfg.train.window_lead < 0:
        raise ConfigError(f"train.window_len must be >= 2 and train.window_lead >= 0, got "
                          f"{cfg.train.window_len} / {cfg.train.window_lead}")
    if cfg.train.lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"train.lr_schedule must be one of {LR_SCHEDULES}, got {cfg.train.lr_schedule!r}")
    if cfg.train.precision not in PRECISIONS:
        raise ConfigError(f"train.precision must be one of {PRECISIONS}, got {cfg.train.precision!r}")
    if not 0.0 <= cfg.train.lr_final_factor <= 1.0:
        raise ConfigError(f"train.lr_final_factor must be in [0, 1], got {cfg.train.lr_final_factor}")
    _check_train_ranges(cfg.train)
    return cfg


def _check_train_ranges(t: TrainConfig) -> None:
    """Counts, intervals and weights that have no meaning below a bound (an interval of 0 divides by zero)."""
    at_least = (("updates", t.updates, 1), ("checkpoint_every", t.checkpoint_every, 1),
                ("log_every", t.log_every, 1), ("image_every", t.image_every, 1),
                ("keep_checkpoints", t.keep_checkpoints, 0), ("warmup_calls", t.warmup_calls, 0),
                ("entity_pretraining_steps", t.entity_pretraining_steps, 0), ("num_workers", t.num_workers, 0),
                ("learning_rate", t.learning_rate, 0), ("background_learning_rate", t.background_learning_rate, 0),
                ("slot_init_lr_factor", t.slot_init_lr_factor, 0), ("std_ramp_rate", t.std_ramp_rate, 0),
                ("background_ramp_rate", t.background_ramp_rate, 0),
                ("supervision_factor", t.supervision_factor, 0),
                ("position_regularizer", t.position_regularizer, 0), ("position_factor", t.position_factor, 0),
                ("object_regularizer", t.object_regularizer, 0), ("time_regularizer", t.time_regularizer, 0),
                ("time_factor", t.time_factor, 0), ("foreground_threshold", t.foreground_threshold, 0))
    for key, value, low in at_least:
        if not value >= low:  # also rejects NaN
            raise ConfigError(f"train.{key} must be at least {low}, got {value}")
    if not t.eps > 0:
        raise ConfigError(f"train.eps must be greater than 0, got {t.eps}")
    for key, pair in (("betas", t.betas), ("slot_init_betas", t.slot_init_betas)):
        for i, beta in enumerate(pair):
            if not 0.0 <= beta < 1.0:
                raise ConfigError(f"train.{key}[{i}] must be in [0, 1), got {beta}")


def config_from_dict(data: dict, stage: int | None = None, source: str = "config") -> LociConfig:
    """Build a validated LociConfig from a plain dict (a parsed file or a checkpoint's copy).

    `stages` (if present) are validated, and stage `stage`'s overrides applied."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    data = dict(data)
    stages = data.pop("stages", None) or {}
    if not isinstance(stages, dict):
        raise ConfigError(f"{source}: 'stages' must be a mapping of stage number -> overrides")
    unknown = set(data) - {"model", "train", "stage"}
    if unknown:
        raise ConfigError(f"{source}: unknown config key '{sorted(unknown)[0]}' "
                          "(known: model, train, stages)")
    for number, override in stages.items():
        if not isinstance(number, int) or not isinstance(override, dict):
            raise ConfigError(f"{source}: stages.{number} must be an integer key with a mapping of overrides")
        bad = set(override) - {"model", "train"}
        if bad:
            raise ConfigError(f"{source}: unknown config key 'stages.{number}.{sorted(bad)[0]}'")
        try:
            _from_dict(ModelConfig, override.get("model"), f"stages.{number}.model")
            _from_dict(TrainConfig, override.get("train"), f"stages.{number}.train")
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
    resolved_stage = data.pop("stage", None)
    if stage is not None:
        if stage not in stages:
            raise ConfigError(f"{source}: no stage {stage} (stages: {sorted(stages) or 'none'})")
        data = _merge(data, stages[stage])
        resolved_stage = stage
    try:
        cfg = LociConfig(model=_from_dict(ModelConfig, data.get("model"), "model"),
                         train=_from_dict(TrainConfig, data.get("train"), "train"),
                         stage=_coerce(resolved_stage, int | None, "stage"))
        return _validate(cfg)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def config_to_dict(cfg: LociConfig) -> dict:
    """The resolved config as plain YAML-able data (no `stages`: the overrides are applied)."""
    return _to_plain(cfg)


def config_differences(old: LociConfig, new: LociConfig, ignore: tuple[str, ...] = ()) -> list[str]:
    """'dotted.key: old -> new' for every setting that differs (keys in `ignore` left out)."""
    def flat(value, prefix=""):
        if isinstance(value, dict):
            return {k: v for key, sub in value.items() for k, v in flat(sub, f"{prefix}{key}.").items()}
        return {prefix[:-1]: value}

    a, b = flat(config_to_dict(old)), flat(config_to_dict(new))
    return [f"{key}: {a.get(key)!r} -> {b.get(key)!r}" for key in dict.fromkeys([*a, *b])
            if key not in ignore and a.get(key) != b.get(key)]


def _read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return data if data is not None else {}


def load_config(path: str | Path, stage: int | None = None) -> LociConfig:
    """Read a model/training config file; `stage` applies that stage's overrides."""
    return config_from_dict(_read_yaml(path), stage=stage, source=str(path))


def config_stages(path: str | Path) -> list[int]:
    """The stage numbers a config file defines, in order (empty if it has none)."""
    data = _read_yaml(path)
    return sorted((data.get("stages") or {}) if isinstance(data, dict) else {})


def save_config(cfg: LociConfig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return path
