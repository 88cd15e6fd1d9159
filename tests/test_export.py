"""`loci export`: a training checkpoint loses its resume payload, keeps its weights and background,
gains provenance, and the command refuses what it should."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
import torch

from loci_core.cli import main
from loci_core.config import load_config
from loci_core.model.checkpoint import load_checkpoint, load_model, save_checkpoint
from loci_core.model.loci import Loci
from loci_core.tracking.tracker import OnlineTracker

TRAINING_ONLY = ("optimisers", "ranks", "train_state")


@pytest.fixture()
def training_checkpoint(repo_root, tmp_path):
    """A tiny checkpoint carrying what `Trainer.save` adds, with a recognisable background."""
    cfg = load_config(repo_root / "config" / "models" / "tiny.yaml")
    torch.manual_seed(1)
    model = Loci(cfg.model)
    optimiser = torch.optim.Adam(model.parameters())
    for p in model.parameters():    # one step, so the optimiser state holds real moment tensors
        p.grad = torch.ones_like(p)
    optimiser.step()
    h, w = model.resolution
    background = torch.linspace(0, 1, 3 * h * w).reshape(3, h, w)
    return save_checkpoint(
        tmp_path / "run" / "step-00000123.pt", model, cfg, global_step=123,
        optimisers={"model": optimiser.state_dict()}, background=background, resolution=[h, w],
        ranks=[{"sequence": {"x": torch.zeros(2, 3)}, "rng": torch.zeros(8, dtype=torch.uint8)}],
        train_state={"stage_start": 0, "epoch": 1, "data": "/data/cater", "split": "train", "world": 1})


def test_export_strips_training_payload(training_checkpoint, tmp_path, capsys):
    out = tmp_path / "models" / "tiny.pt"
    assert main(["export", str(training_checkpoint), "--out", str(out), "--note", "first try"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and " MB (from " in printed and "optimisers" in printed

    source, release = load_checkpoint(training_checkpoint), load_checkpoint(out)
    assert not set(TRAINING_ONLY) & set(release)
    assert out.stat().st_size < training_checkpoint.stat().st_size
    assert release["config"] == source["config"] and release["global_step"] == 123
    assert release["resolution"] == source["resolution"]
    assert torch.equal(release["background"], source["background"])
    assert release["model"].keys() == source["model"].keys()
    assert all(torch.equal(release["model"][k], source["model"][k]) for k in source["model"])

    prov = release["provenance"]
    assert prov["source"] == training_checkpoint.name and prov["global_step"] == 123
    assert prov["data"] == "/data/cater" and prov["split"] == "train" and prov["note"] == "first try"
    assert prov["torch"] == torch.__version__
    assert datetime.fromisoformat(prov["exported"]).utcoffset().total_seconds() == 0
    assert not list(out.parent.glob(".*tmp*"))


def test_exported_checkpoint_runs(training_checkpoint, tmp_path):
    out = tmp_path / "tiny.pt"
    assert main(["export", str(training_checkpoint), "--out", str(out)]) == 0
    model, _, data = load_model(out)
    assert data["provenance"]["note"] is None and data["provenance"]["data"] == "/data/cater"
    tracker = OnlineTracker.from_checkpoint(out)
    assert torch.equal(tracker.background[0], data["background"])
    h, w = model.resolution
    assert tracker.step(np.zeros((h, w, 3), np.uint8)).labels.shape == (h, w)


def test_export_without_train_state(tiny_checkpoint, tmp_path):
    """A checkpoint that never saw training (or a release re-exported) still gets provenance."""
    out = tmp_path / "plain.pt"
    assert main(["export", str(tiny_checkpoint), "--out", str(out)]) == 0
    prov = load_checkpoint(out)["provenance"]
    assert prov["data"] is None and prov["split"] is None and prov["global_step"] == 0


def test_export_refuses(training_checkpoint, tmp_path, capsys):
    out = tmp_path / "tiny.pt"
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err and not out.exists()

    junk = tmp_path / "junk.pt"
    torch.save({"weights": torch.zeros(3)}, junk)
    assert main(["export", str(junk), "--out", str(out)]) == 2
    assert "not a loci checkpoint" in capsys.readouterr().err and not out.exists()

    out.write_bytes(b"keep me")
    assert main(["export", str(training_checkpoint), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "--force" in err and "Traceback" not in err
    assert out.read_bytes() == b"keep me"
    assert main(["export", str(training_checkpoint), "--out", str(out), "--force"]) == 0
    assert "provenance" in load_checkpoint(out)

    assert main(["export", str(training_checkpoint), "--out", str(training_checkpoint), "--force"]) == 2
    assert "training checkpoint itself" in capsys.readouterr().err
    assert "optimisers" in load_checkpoint(training_checkpoint)
