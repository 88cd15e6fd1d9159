"""Model/training configs: the shipped YAML files, stage overrides, strict keys, round trips."""

from pathlib import Path

import pytest
import yaml

from loci_core.config import (
    ConfigError,
    LociConfig,
    config_from_dict,
    config_stages,
    config_to_dict,
    load_config,
    save_config,
)

MODELS = Path(__file__).resolve().parents[1] / "config" / "models"


@pytest.mark.parametrize("name", ["cater.yaml", "cater-small.yaml", "tiny.yaml"])
def test_shipped_configs_load_and_round_trip(name, tmp_path):
    cfg = load_config(MODELS / name)
    assert isinstance(cfg, LociConfig) and cfg.stage is None
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert load_config(save_config(cfg, tmp_path / "copy.yaml")) == cfg
    for stage in config_stages(MODELS / name):
        staged = load_config(MODELS / name, stage=stage)
        assert staged.stage == stage
        assert config_from_dict(config_to_dict(staged)) == staged


def test_cater_stages_follow_the_paper():
    path = MODELS / "cater.yaml"
    assert config_stages(path) == [1, 2, 3, 4]
    stages = [load_config(path, stage=s) for s in (1, 2, 3, 4)]
    assert [c.model.level for c in stages] == [1, 1, 2, 2]
    assert [c.resolution for c in stages] == [(60, 80), (60, 80), (240, 320), (240, 320)]
    assert [c.train.learning_rate for c in stages] == pytest.approx([1e-4, 3.33333e-5, 3.33333e-5, 1e-5])
    assert [c.train.supervision_factor for c in stages] == pytest.approx([0.01, 0.1, 0.1, 0.3333333])
    base = load_config(path)
    assert (base.model.level, base.model.num_slots, base.model.gestalt_size) == (2, 10, 96)
    assert base.model.latent_size == (15, 20) and base.model.input_size == (240, 320)
    # stage overrides leave everything else alone
    assert stages[3].model.encoder == base.model.encoder and stages[0].train.batch_size == base.train.batch_size


def _write(tmp_path, data) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("data, dotted", [
    ({"model": {"num_slotz": 3}}, "model.num_slotz"),
    ({"model": {"encoder": {"chanels": 3}}}, "model.encoder.chanels"),
    ({"train": {"learning_rte": 1.0}}, "train.learning_rte"),
    ({"modle": {}}, "modle"),
    ({"stages": {2: {"train": {"lr": 1.0}}}}, "stages.2.train.lr"),
    ({"stages": {1: {"optim": {}}}}, "stages.1.optim"),
])
def test_unknown_keys_are_rejected_with_their_dotted_name(tmp_path, data, dotted):
    with pytest.raises(ConfigError, match=f"'{dotted}'"):
        load_config(_write(tmp_path, data))


def test_bad_values_name_the_key_and_file(tmp_path):
    path = _write(tmp_path, {"model": {"num_slots": "many"}})
    with pytest.raises(ConfigError, match=r"cfg\.yaml.*model\.num_slots"):
        load_config(path)
    with pytest.raises(ConfigError, match="model.snitch"):
        load_config(_write(tmp_path, {"model": {"snitch": "sometimes"}}))
    with pytest.raises(ConfigError, match="train.lr_schedule"):
        load_config(_write(tmp_path, {"train": {"lr_schedule": "exponential"}}))
    with pytest.raises(ConfigError, match="train.lr_final_factor"):
        load_config(_write(tmp_path, {"train": {"lr_final_factor": 2.0}}))
    with pytest.raises(ConfigError, match="model.level"):
        load_config(_write(tmp_path, {"model": {"level": 3}}))
    with pytest.raises(ConfigError, match="no stage 7"):
        load_config(MODELS / "cater.yaml", stage=7)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("key, value, bound", [
    ("checkpoint_every", 0, "at least 1"), ("log_every", 0, "at least 1"), ("image_every", 0, "at least 1"),
    ("updates", -5, "at least 1"), ("updates", 0, "at least 1"), ("keep_checkpoints", -1, "at least 0"),
    ("warmup_calls", -2, "at least 0"), ("learning_rate", -1.0e-4, "at least 0"),
    ("learning_rate", float("nan"), "at least 0"), ("eps", 0.0, "greater than 0"),
    ("betas", [0.9, 1.0], r"in \[0, 1\)"),
])
def test_out_of_range_training_values_name_the_key_file_and_range(tmp_path, key, value, bound):
    with pytest.raises(ConfigError, match=rf"cfg\.yaml: train\.{key}(\[1\])? must be {bound}"):
        load_config(_write(tmp_path, {"train": {key: value}}))
    staged = _write(tmp_path, {"stages": {2: {"train": {key: value}}}})
    load_config(staged)                         # the base config is fine; the stage applying it is not
    with pytest.raises(ConfigError, match=rf"train\.{key}"):
        load_config(staged, stage=2)


def test_exponent_strings_are_read_as_numbers(tmp_path):
    # PyYAML reads `1e-4` (no dot) as a string; float fields accept it
    cfg = load_config(_write(tmp_path, {"train": {"learning_rate": "1e-4", "updates": "5e3"}}))
    assert cfg.train.learning_rate == 1e-4 and cfg.train.updates == 5000
