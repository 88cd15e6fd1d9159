"""The temporal snitch read-out: causal (a later frame never changes an earlier answer), answers with one
slot, trains jointly with `loci train` and on frozen slots with `loci readout`, and the checkpoint it
writes runs in `loci eval` and `OnlineTracker`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from loci_core.cli import main
from loci_core.config import load_config
from loci_core.model.checkpoint import load_checkpoint, load_model
from loci_core.model.loci import Loci
from loci_core.model.nn.temporal_readout import TemporalReadout
from loci_core.tracking.tracker import OnlineTracker
from loci_core.training.losses import snitch_slot_loss, snitch_slot_targets
from tests import test_train_fixtures as fx
from tests.test_train_fixtures import TINY, latest_checkpoint, tiny_config

tiny_data, tiny_run = fx.tiny_data, fx.tiny_run


def _temporal_model() -> Loci:
    cfg = load_config(TINY)
    cfg.model.readout = "temporal"
    torch.manual_seed(0)
    return Loci(cfg.model).eval()


def test_changing_a_later_frame_never_changes_an_earlier_answer():
    model = _temporal_model()
    torch.manual_seed(1)
    frames = torch.rand(8, 1, 3, 60, 80)
    background = torch.zeros(1, 3, 60, 80)

    def answers(frames):
        state, scores, snitch = model.initial_state(1), [], []
        with torch.no_grad():
            for frame in frames:
                out, state = model.step(frame, state, background)
                scores.append(out.snitch_scores.clone())
                snitch.append(out.snitch.clone())
        return scores, snitch

    scores, snitch = answers(frames)
    changed = frames.clone()
    changed[5] = torch.rand(1, 3, 60, 80)
    scores2, snitch2 = answers(changed)
    for t in range(5):
        assert torch.equal(scores[t], scores2[t]) and torch.equal(snitch[t], snitch2[t]), t
    assert not torch.equal(scores[5], scores2[5])            # the changed frame itself does count


def test_the_answer_is_the_position_of_the_best_scored_slot():
    model = _temporal_model()
    state = model.initial_state(2)
    with torch.no_grad():
        for _ in range(3):
            out, state = model.step(torch.rand(2, 3, 60, 80), state, torch.zeros(1, 3, 60, 80))
    best = out.snitch_scores.argmax(1)
    assert torch.equal(out.snitch, out.position[torch.arange(2), best, :2])
    assert torch.allclose(out.snitch_weights.sum(1), torch.ones(2))
    assert state.readout_hidden.shape == (2, model.num_slots, model.cfg.readout_width)


def test_slot_targets_are_the_nearest_slot_and_only_where_knowable_and_near():
    position = torch.tensor([[[0.0, 0.0, 0.1], [0.5, 0.5, 0.1]]] * 3)
    target = torch.tensor([[0.45, 0.5], [0.0, 0.05], [0.9, -0.9]])
    slot, counts = snitch_slot_targets(position, target, torch.tensor([True, False, True]))
    assert slot[:2].tolist() == [1, 0] and counts.tolist() == [True, False, False]
    scores = torch.tensor([[0.0, 5.0], [9.0, -9.0], [9.0, -9.0]])
    assert snitch_slot_loss(scores, slot, counts).item() == pytest.approx(
        torch.nn.functional.cross_entropy(scores[:1], slot[:1]).item())


def test_module_memory_passes_between_nearby_slots():
    # one step with slot 0 marked in memory: the message reaches the slot next to it more than a far one
    torch.manual_seed(0)
    readout = TemporalReadout(4, width=8)
    position = torch.tensor([[[0.0, 0.0, 0.1], [0.0, 0.05, 0.1], [0.9, 0.9, 0.1]]])
    hidden = torch.zeros(1, 3, 8)
    marked = hidden.clone()
    marked[0, 0] = 3.0
    args = (torch.zeros(1, 3, 4), position, torch.ones(1, 3), torch.zeros(1, 3))
    _, plain = readout(*args, hidden)
    _, after = readout(*args, marked)
    moved = (after - plain).norm(dim=-1)[0]
    assert moved[1] > 2 * moved[2]


def test_joint_training_with_the_temporal_readout(tiny_data, tmp_path):
    cfg = tiny_config(tmp_path / "cfg.yaml", updates=12, checkpoint_every=12, log_every=4)
    text = cfg.read_text().replace("snitch: probe", "snitch: joint\n  readout: temporal")
    cfg.write_text(text)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--data", str(tiny_data), "--out", str(run), "--split", "all",
                 "--device", "cpu", "--no-progress"]) == 0
    model, loaded, _ = load_model(latest_checkpoint(run))
    assert loaded.model.readout == "temporal" and model.temporal_readout is not None
    assert model.predictor.readout is None
    with open(run / "metrics.csv") as f:
        header, *rows = [line.strip().split(",") for line in f]
    snitch = [float(r[header.index("loss/snitch")]) for r in rows]
    assert all(np.isfinite(snitch)) and max(snitch) > 0


def test_loci_readout_trains_on_frozen_slots_and_the_result_runs(tiny_run, tiny_data, tmp_path, capsys):
    source = latest_checkpoint(tiny_run)
    out = tmp_path / "temporal.pt"
    rc = main(["readout", "--checkpoint", str(source), "--data", str(tiny_data), "--out", str(out),
               "--epochs", "3", "--batch", "2", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    model, cfg, data = load_model(out)
    assert cfg.model.readout == "temporal"
    assert [h["epoch"] for h in data["readout_training"]["history"]] == [1, 2, 3]
    # the slots are the source's, untouched
    before = load_checkpoint(source)["model"]
    for name, value in data["model"].items():
        if not name.startswith("temporal_readout."):
            assert torch.equal(value, before[name]), name
    eval_dir = tmp_path / "eval"
    assert main(["eval", "--checkpoint", str(out), "--data", str(tiny_data), "--split", "all", "--videos", "2",
                 "--out", str(eval_dir), "--device", "cpu", "--no-progress"]) == 0
    assert "loci" in json.loads((eval_dir / "results.json").read_text())["cater"]
    tracker = OnlineTracker.from_checkpoint(out)
    for _ in range(3):
        tracker.step(np.zeros((60, 80, 3), np.uint8))
    assert main(["readout", "--checkpoint", str(source), "--data", str(tiny_data), "--out", str(source)]) == 2
