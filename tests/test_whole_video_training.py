"""Whole-video training and containment windows: windows start just before the snitch goes under a cone,
the snitch targets a sequence cannot know are masked out of the loss, a run of whole videos mixed with
windows resumes exactly from a checkpoint taken mid-video, and `--max-minutes` ends a run with a
checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from loci_core.cli import main
from loci_core.data.dataset import CaterVideos
from loci_core.data.trajectory import containers
from loci_core.model.checkpoint import load_checkpoint
from loci_core.training.losses import snitch_loss
from loci_core.training.run_dir import RunDir
from tests import test_train_fixtures as fx
from tests.test_train_fixtures import latest_checkpoint, tiny_config

tiny_data = fx.tiny_data

LEAD = 5


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory) -> Path:
    """6 videos of 120 frames: long enough for the snitch to go under a cone in most of them."""
    root = tmp_path_factory.mktemp("whole") / "cater"
    assert main(["generate", "--out", str(root), "--videos", "6", "--frames", "120", "--size", "80x60",
                 "--seed", "5"]) == 0
    return root


def _snitch_onsets(ds: CaterVideos, index: int) -> np.ndarray:
    sc = ds.scene(ds.entries[index].name)
    inside = containers(sc)[sc.snitch_index] >= 0
    return np.flatnonzero(inside[1:] & ~inside[:-1]) + 1


def test_windows_start_shortly_before_a_containment(long_videos):
    ds = CaterVideos(long_videos, split="all", size=(60, 80), clip_len=40, clip_start="containment", lead=LEAD)
    with_onsets = 0
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            onsets = _snitch_onsets(ds, i)
            room = ds.scene(item["name"]).num_frames - 40
            if len(onsets) == 0:
                continue
            with_onsets += 1
            # the window ends on the last frame when the containment comes too late for a whole window
            assert any(o - LEAD <= item["start"] <= o or item["start"] == room for o in onsets), (
                item["name"], item["start"], onsets)
            if item["start"] != room:
                assert item["contained"][:LEAD + 1].any()   # the snitch goes under within the lead
    assert with_onsets >= 6                                 # at least two videos with a containment


def test_snitch_known_means_seen_since_the_sequence_began(long_videos):
    whole = CaterVideos(long_videos, split="all", size=(60, 80))
    checked_hidden_start = False
    for i in range(len(whole)):
        full = whole[i]
        visible = full["object_states"].numpy()[:, whole.scene(full["name"]).snitch_index] == 0
        assert full["snitch_known"].numpy().tolist() == np.maximum.accumulate(visible).tolist()
        onsets = _snitch_onsets(whole, i)
        if len(onsets) == 0:
            continue
        # a window that starts while the snitch is inside a cone: unknown until the snitch is seen again
        start = int(onsets[0]) + 2
        if start + 20 > len(visible) or visible[start]:
            continue
        window = CaterVideos(long_videos, split="all", size=(60, 80), clip_len=20, clip_start=start)[i]
        known = window["snitch_known"].numpy()
        seen = visible[start:start + 20]
        assert not known[0]
        assert known.tolist() == np.maximum.accumulate(seen).tolist()
        checked_hidden_start = True
    assert checked_hidden_start


def test_snitch_loss_ignores_unknown_targets():
    torch.manual_seed(0)
    answer = torch.randn(4, 2, requires_grad=True)
    target = torch.randn(4, 2)
    known = torch.tensor([True, False, True, False])
    garbage = target.clone()
    garbage[~known] = 1000.0                  # what the target says where it cannot be known does not count
    loss = snitch_loss(answer, garbage, known)
    assert loss.item() == pytest.approx(snitch_loss(answer[known], target[known]).item())
    loss.backward()
    assert torch.equal(answer.grad[~known], torch.zeros(2, 2))
    assert snitch_loss(answer, target, torch.zeros(4, dtype=torch.bool)).item() == 0.0


def test_whole_videos_mixed_with_windows_resume_exactly_mid_video(tiny_data, tmp_path):
    # 10-frame videos: a whole-video batch is 2 + 9 = 11 calls, a window batch 2 + 5 = 7; 30 updates cross
    # several batch boundaries of both kinds, and the checkpoint at update 13 falls inside a video.
    cfg = tiny_config(tmp_path / "cfg.yaml", clip_len=None, window_share=0.5, window_len=6, window_lead=2,
                      checkpoint_every=13, updates=30)
    run = tmp_path / "run"
    args = ["--data", str(tiny_data), "--split", "all", "--device", "cpu", "--no-progress"]
    assert main(["train", "--config", str(cfg), "--out", str(run), *args]) == 0
    mid = load_checkpoint(run / "checkpoints" / "step-000000013.pt")
    assert mid["train_state"]["call"] != 0 and mid["ranks"][0]["sequence"] is not None

    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    for ckpt in RunDir(resumed).list_checkpoints()[1:]:
        ckpt.unlink()
    assert main(["train", "--resume", str(resumed), "--no-progress"]) == 0
    a, b = load_checkpoint(latest_checkpoint(run)), load_checkpoint(latest_checkpoint(resumed))
    assert a["global_step"] == b["global_step"] == 30
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name


def test_window_batches_are_drawn_by_share_and_reproducibly(tiny_data, tmp_path):
    from loci_core.config import load_config
    from loci_core.training.trainer import Dist, Trainer

    cfg = load_config(tiny_config(tmp_path / "cfg.yaml", clip_len=None, window_share=0.25, window_len=6))
    trainer = Trainer(cfg, tiny_data, RunDir(tmp_path / "run"), torch.device("cpu"), Dist(), split="all",
                      progress=False)
    draws = [trainer.is_window_batch(e, b) for e in range(100) for b in range(2)]
    assert draws == [trainer.is_window_batch(e, b) for e in range(100) for b in range(2)]
    assert 0.15 < np.mean(draws) < 0.35
    trainer.pos.epoch, trainer.pos.batch = next((e, b) for e in range(100) for b in range(2)
                                                if trainer.is_window_batch(e, b))
    assert trainer._load_batch()["frames"].shape[1] == 6
    cfg.train.window_share = 0.0
    assert not any(trainer.is_window_batch(e, b) for e in range(100) for b in range(2))


def test_max_minutes_ends_with_a_checkpoint(tiny_data, tmp_path, capsys):
    cfg = tiny_config(tmp_path / "cfg.yaml", updates=100000, checkpoint_every=100000)
    run = tmp_path / "run"
    rc = main(["train", "--config", str(cfg), "--data", str(tiny_data), "--out", str(run), "--split", "all",
               "--device", "cpu", "--no-progress", "--max-minutes", "0.05"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "time box" in err and "--resume" in err
    ckpt = load_checkpoint(latest_checkpoint(run))
    assert 0 < ckpt["global_step"] < 100000
    assert main(["train", "--config", str(cfg), "--data", str(tiny_data), "--out", str(tmp_path / "r2"),
                 "--max-minutes", "0", "--no-progress"]) == 2
