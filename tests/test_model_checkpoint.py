"""Checkpoints: round trip, extras, resolution growth on load, clear errors."""

import pytest
import torch

from loci_core.config import load_config
from loci_core.model.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from loci_core.model.loci import Loci


def test_tiny_checkpoint_fixture_loads(tiny_checkpoint):
    model, cfg, data = load_model(tiny_checkpoint)
    assert not model.training and model.resolution == (60, 80) and data["global_step"] == 0
    assert cfg.model.num_slots == model.num_slots


def test_round_trip_reproduces_outputs(tmp_path, repo_root):
    cfg = load_config(repo_root / "config/models/tiny.yaml")
    torch.manual_seed(3)
    model = Loci(cfg.model).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    background = torch.rand(3, 60, 80)
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, cfg, global_step=42, background=background,
                           note="hello")
    assert not list(path.parent.glob(".*tmp*"))  # written atomically, nothing left behind
    loaded, loaded_cfg, data = load_model(path)
    assert loaded_cfg == cfg and data["global_step"] == 42 and data["note"] == "hello"
    assert torch.equal(data["background"], background)
    frames = torch.rand(2, 1, 3, 60, 80)
    outs = []
    for m in (model, loaded):
        state = m.initial_state(1)
        with torch.no_grad():
            for frame in frames:
                out, state = m.step(frame, state, background[None])
        outs.append(out.prediction)
    assert torch.equal(outs[0], outs[1])


def test_errors_name_the_problem(tmp_path, tiny_checkpoint):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a loci checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    data = load_checkpoint(tiny_checkpoint)
    data["config"]["model"]["gestalt_size"] = 20
    torch.save(data, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(tmp_path / "mismatch.pt")
    data["config"]["model"]["gestalt_sise"] = 20
    torch.save(data, tmp_path / "badcfg.pt")
    with pytest.raises(CheckpointError, match="model.gestalt_sise"):
        load_model(tmp_path / "badcfg.pt")
    with pytest.raises(CheckpointError, match="level 3"):
        load_model(tiny_checkpoint, level=3)
