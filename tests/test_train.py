"""`loci train` end to end on 4 tiny generated videos: finite loss, checkpoints, exact resume,
Ctrl-C, a non-finite loss, and 2-process torchrun on CPU."""

from __future__ import annotations

import csv
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from loci_core.cli import main
from loci_core.model.checkpoint import load_checkpoint, load_model
from loci_core.training.optim import parameter_groups
from loci_core.training.run_dir import RunDir
from tests import test_train_fixtures as fx
from tests.test_train_fixtures import CHECKPOINT_EVERY, REPO, UPDATES, latest_checkpoint, tiny_config

tiny_data, tiny_run = fx.tiny_data, fx.tiny_run    # session fixtures shared with test_eval / test_save

PY = sys.executable


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_training_run_writes_checkpoints_logs_and_config(tiny_run):
    ckpts = RunDir(tiny_run).list_checkpoints()
    assert [p.name for p in ckpts] == [f"step-{s:09d}.pt" for s in range(CHECKPOINT_EVERY, UPDATES + 1,
                                                                          CHECKPOINT_EVERY)]
    ckpt = load_checkpoint(ckpts[-1])
    assert ckpt["global_step"] == UPDATES
    assert ckpt["resolution"] == [60, 80] and tuple(ckpt["background"].shape) == (3, 60, 80)
    assert {"slot_init", "main", "background"} <= set(ckpt["optimisers"])
    rows = _rows(tiny_run)
    assert [int(r["step"]) for r in rows] == list(range(5, UPDATES + 1, 5))
    losses = [float(r["loss/total"]) for r in rows]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert (tiny_run / "config.yaml").is_file()
    assert list((tiny_run / "tb").glob("events.out.tfevents.*"))
    model, cfg, _ = load_model(ckpts[-1])
    assert cfg.train.batch_size == 2


def test_every_parameter_has_an_optimiser_group(tiny_run):
    model, _, _ = load_model(latest_checkpoint(tiny_run))
    groups = parameter_groups(model)
    assert sum(len(g) for g in groups.values()) == len(list(model.parameters()))


def test_resume_from_mid_run_checkpoint_is_exact(tiny_run, tiny_data, tmp_path):
    # A copy of the run as if it had stopped after update 10 (the middle of a sequence: 9 calls each);
    # its logs already go further, as after a crash, and must be cut back to update 10.
    resumed = tmp_path / "resumed"
    shutil.copytree(tiny_run, resumed)
    for ckpt in RunDir(resumed).list_checkpoints()[1:]:
        ckpt.unlink()
    mid = load_checkpoint(resumed / "checkpoints" / f"step-{CHECKPOINT_EVERY:09d}.pt")
    assert mid["train_state"]["call"] != 0 and mid["ranks"][0]["sequence"] is not None
    assert main(["train", "--resume", str(resumed), "--no-progress"]) == 0

    a = load_checkpoint(latest_checkpoint(tiny_run))
    b = load_checkpoint(latest_checkpoint(resumed))
    assert a["global_step"] == b["global_step"] == UPDATES
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name
    assert a["train_state"] == b["train_state"]
    # The logs hold each step once, with the same losses as the uninterrupted run.
    loss = ["step"] + [k for k in _rows(tiny_run)[0] if k.startswith("loss/")]
    def losses(run):
        return [{k: r[k] for k in loss} for r in _rows(run)]

    assert losses(resumed) == losses(tiny_run)


def test_refuses_to_overwrite_a_run(tiny_run, tiny_data, capsys):
    rc = main(["train", "--config", str(tiny_run / "config.yaml"), "--data", str(tiny_data),
               "--out", str(tiny_run), "--no-progress"])
    assert rc == 2
    assert "--resume" in capsys.readouterr().err


def test_new_run_refuses_files_of_a_failed_run_and_overwrite_starts_clean(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    # A run that fails before its first checkpoint (a non-finite loss) leaves its config, logs and events.
    failing = tiny_config(tmp_path / "bad.yaml", learning_rate=1.0e30, background_learning_rate=1.0e30,
                          checkpoint_every=1000, log_every=1, updates=200)
    args = ["--data", str(tiny_data), "--out", str(run), "--split", "all", "--device", "cpu", "--no-progress"]
    assert main(["train", "--config", str(failing), *args]) == 1
    left = RunDir(run).run_files()
    assert not RunDir(run).list_checkpoints() and {p.name for p in left} >= {"config.yaml", "metrics.csv"}
    (run / "notes.txt").write_text("mine")
    capsys.readouterr()

    good = tiny_config(tmp_path / "good.yaml", updates=6, checkpoint_every=3, log_every=1)
    assert main(["train", "--config", str(good), *args]) == 2
    err = capsys.readouterr().err
    assert "config.yaml" in err and "metrics.csv" in err and "tb/events.out.tfevents" in err, err
    assert "--out" in err and "--overwrite" in err and "Traceback" not in err
    assert RunDir(run).run_files() == left                         # untouched

    assert main(["train", "--config", str(good), *args, "--overwrite"]) == 0
    assert [int(r["step"]) for r in _rows(run)] == [1, 2, 3, 4, 5, 6]   # one run's rows, each update once
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1
    assert (run / "notes.txt").read_text() == "mine"               # only run files are deleted


def test_resume_refuses_other_settings_but_extends_with_updates(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    saved = (run / "config.yaml").read_text()
    edited = yaml.safe_load(saved)
    edited["train"]["learning_rate"] = 5.0e-4
    (run / "config.yaml").write_text(yaml.safe_dump(edited))
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "config.yaml does not match" in err and "train.learning_rate: 0.001 -> 0.0005" in err, err

    (run / "config.yaml").write_text(saved)
    other = tiny_config(tmp_path / "other.yaml", log_every=1, image_every=3)
    assert main(["train", "--resume", str(run), "--config", str(other), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "train.log_every: 5 -> 1" in err and "train.image_every: 10 -> 3" in err, err
    assert latest_checkpoint(run).name == f"step-{UPDATES:09d}.pt"     # nothing trained

    assert main(["train", "--resume", str(run), "--updates", str(UPDATES + 1), "--no-progress"]) == 0
    assert load_checkpoint(latest_checkpoint(run))["global_step"] == UPDATES + 1


def test_resume_may_change_the_precision_and_keeps_it(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert load_checkpoint(latest_checkpoint(run))["config"]["train"]["precision"] == "float32"
    assert main(["train", "--resume", str(run), "--precision", "bfloat16", "--updates", str(UPDATES + 1),
                 "--no-progress"]) == 0
    assert load_checkpoint(latest_checkpoint(run))["config"]["train"]["precision"] == "bfloat16"
    # a later resume without the option goes on in the precision the run last trained in
    assert main(["train", "--resume", str(run), "--updates", str(UPDATES + 2), "--no-progress"]) == 0
    last = load_checkpoint(latest_checkpoint(run))
    assert last["global_step"] == UPDATES + 2 and last["config"]["train"]["precision"] == "bfloat16"


def test_resume_refuses_data_of_another_size_unless_resized(tiny_run, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["generate", "--out", str(other), "--videos", "4", "--frames", "10", "--size", "64x36",
                 "--seed", "1"]) == 0
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    args = ["train", "--resume", str(run), "--data", str(other), "--updates", str(UPDATES + 1), "--no-progress"]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "80x60" in err and "64x36" in err and "--resize" in err and "Traceback" not in err, err
    assert main([*args, "--resize"]) == 0
    assert load_checkpoint(latest_checkpoint(run))["global_step"] == UPDATES + 1


def test_updates_below_one_are_refused_on_the_command_line(tiny_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--config", str(tiny_config(tmp_path / "cfg.yaml")), "--data", str(tiny_data),
              "--out", str(tmp_path / "run"), "--updates", "-5"])
    assert stop.value.code == 2 and "--updates: must be a whole number of at least 1" in capsys.readouterr().err


def test_sigint_leaves_a_loadable_checkpoint(tiny_data, tmp_path):
    cfg = tiny_config(tmp_path / "cfg.yaml", updates=100000, checkpoint_every=100000, log_every=1)
    run = tmp_path / "run"
    proc = subprocess.Popen([PY, "-m", "loci_core.cli", "train", "--config", str(cfg), "--data", str(tiny_data),
                             "--out", str(run), "--split", "all", "--device", "cpu", "--no-progress"],
                            env=_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (run / "metrics.csv").is_file() and len(_rows(run)) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stopped by signal" in err and "Traceback" not in err
    ckpt = latest_checkpoint(run)
    data = load_checkpoint(ckpt)
    assert data["global_step"] >= 3
    model, _, _ = load_model(ckpt)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _maps_library(pid: int, name: str) -> bool:
    return name in Path(f"/proc/{pid}/maps").read_text()


def _has_open(pid: int, path: Path) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fds / fd) == str(path) for fd in os.listdir(fds))
    except FileNotFoundError:  # an fd closed while we looked
        return False


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/<pid>/maps and fd")
@pytest.mark.parametrize("stage", ["importing torch", "reading the data set"])
def test_ctrl_c_before_the_first_update_is_a_clean_stop(stage, tiny_data, tmp_path):
    # A large background.png keeps the data set's reading (cv2.imread holds it open) long enough to be caught.
    import cv2
    import numpy as np

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data, ignore=shutil.ignore_patterns("cache"))
    ramp = np.linspace(0, 255, 4000 * 3000 * 3).astype(np.uint8).reshape(3000, 4000, 3)
    cv2.imwrite(str(data / "background.png"), ramp)
    cfg = tiny_config(tmp_path / "cfg.yaml")
    run = tmp_path / "run"
    # Ctrl-C as in a terminal: a shell that started this run in the background left SIGINT ignored
    proc = subprocess.Popen([PY, "-m", "loci_core.cli", "train", "--config", str(cfg), "--data", str(data),
                             "--out", str(run), "--split", "all", "--device", "cpu", "--no-progress"],
                            env=_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    reached = {"importing torch": lambda: _maps_library(proc.pid, "libtorch_cpu"),
               "reading the data set": lambda: _has_open(proc.pid, data / "background.png")}[stage]
    deadline = time.time() + 120
    while proc.poll() is None and not reached() and time.time() < deadline:
        time.sleep(0.001)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "loci train: interrupted" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert stage == "importing torch" or "before training started" in err, err
    assert not RunDir(run).list_checkpoints()


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_data, tmp_path, capsys):
    # An absurd learning rate drives the weights to inf within a few updates.
    cfg = tiny_config(tmp_path / "cfg.yaml", learning_rate=1.0e30, background_learning_rate=1.0e30,
                      checkpoint_every=2, updates=200)
    run = tmp_path / "run"
    rc = main(["train", "--config", str(cfg), "--data", str(tiny_data), "--out", str(run), "--split", "all",
               "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "not finite" in err
    kept = RunDir(run).list_checkpoints()
    assert kept and str(kept[-1]) in err          # the message names the last good checkpoint
    for ckpt in kept:
        assert all(torch.isfinite(v).all() for v in load_checkpoint(ckpt)["model"].values())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_stay_in_sync(tiny_data, tmp_path):
    cfg = tiny_config(tmp_path / "cfg.yaml", batch_size=1, updates=6, checkpoint_every=100)
    run = tmp_path / "run"
    torchrun = Path(PY).parent / "torchrun"
    proc = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                           "--master_port", str(_free_port()), "-m", "loci_core.cli", "train", "--config", str(cfg),
                           "--data", str(tiny_data), "--out", str(run), "--split", "all", "--device", "cpu",
                           "--no-progress"],
                          env=_env(), cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Each rank hashes its own parameters; rank 0 compares all digests.
    assert "parameters identical on all 2 processes" in proc.stderr
    ckpt = load_checkpoint(latest_checkpoint(run))
    assert ckpt["global_step"] == 6 and len(ckpt["ranks"]) == 2


def test_init_starts_a_new_stage_from_weights(tiny_run, tiny_data, tmp_path):
    run = tmp_path / "stage2"
    rc = main(["train", "--config", str(tiny_run / "config.yaml"), "--data", str(tiny_data),
               "--out", str(run), "--init", str(latest_checkpoint(tiny_run)), "--updates", "3",
               "--split", "all", "--device", "cpu", "--no-progress"])
    assert rc == 0
    ckpt = load_checkpoint(latest_checkpoint(run))
    # The global step (and with it the schedules) goes on from the previous stage; the stage counts anew.
    assert ckpt["global_step"] == UPDATES + 3 and ckpt["train_state"]["stage_start"] == UPDATES


def test_cosine_schedule_anneals_every_learning_rate_over_the_stage(tiny_run, tiny_data, tmp_path):
    # Stage of 8 updates from the tiny run's weights with a cosine schedule down to 0.1 x the rates.
    cfg = tiny_config(tmp_path / "cosine.yaml", lr_schedule="cosine", lr_final_factor=0.1, updates=8,
                      checkpoint_every=4, log_every=1)
    run = tmp_path / "anneal"
    assert main(["train", "--config", str(cfg), "--data", str(tiny_data), "--out", str(run),
                 "--init", str(latest_checkpoint(tiny_run)), "--split", "all", "--device", "cpu",
                 "--no-progress"]) == 0
    factors = [float(r["schedule/lr_factor"]) for r in _rows(run)]
    expected = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(1, 9)]
    assert factors == pytest.approx(expected, abs=1e-5)  # the factor after each update k (logged then)
    ckpt = load_checkpoint(latest_checkpoint(run))
    train = yaml.safe_load(cfg.read_text())["train"]
    last = expected[-2]  # the rate the final (8th) update stepped with: stage update 7
    main_lr = ckpt["optimisers"]["main"]["param_groups"][0]["lr"]
    slot_lr = ckpt["optimisers"]["slot_init"]["param_groups"][0]["lr"]
    assert main_lr == pytest.approx(train["learning_rate"] * last)
    assert slot_lr == pytest.approx(train["learning_rate"] * train["slot_init_lr_factor"] * last)
