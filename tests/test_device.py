"""`--device`: one resolver (loci_core/device.py) and one clear error in every command that takes it."""

from __future__ import annotations

import pytest
import torch

from loci_core.cli import main
from loci_core.device import DeviceError, resolve_device
from loci_core.tracking.tracker import OnlineTracker
from tests import test_train_fixtures as fx
from tests.test_train_fixtures import tiny_config

tiny_data = fx.tiny_data

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch that sees no CUDA device")


def test_cpu_and_auto_resolve_and_unknown_names_are_refused():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))
    for name in ("gpu", "cuda:x", ""):
        with pytest.raises(DeviceError, match="auto, cpu, cuda or cuda:N"):
            resolve_device(name)


@no_cuda
def test_cuda_without_a_gpu_is_a_device_error():
    for name in ("cuda", "cuda:1"):
        with pytest.raises(DeviceError, match=rf"--device {name}, but no CUDA device is available"):
            resolve_device(name)


@no_cuda
def test_online_tracker_refuses_cuda_with_the_same_error(tiny_checkpoint):
    with pytest.raises(DeviceError, match="no CUDA device is available"):
        OnlineTracker.from_checkpoint(tiny_checkpoint, device="cuda")


@no_cuda
@pytest.mark.parametrize("command", ["train", "eval", "save", "curve", "readout"])
def test_every_command_says_no_cuda_in_one_line(command, tiny_checkpoint, tiny_data, tmp_path, capsys):
    data, ckpt, out = str(tiny_data), str(tiny_checkpoint), str(tmp_path / "out")
    args = {"train": ["--config", str(tiny_config(tmp_path / "cfg.yaml")), "--data", data, "--out", out,
                      "--split", "all", "--no-progress"],
            "eval": ["--checkpoint", ckpt, "--data", data, "--split", "all", "--out", out, "--no-progress"],
            "save": ["--checkpoint", ckpt, "--data", data, "--video", "0", "--out", out],
            "curve": ["--checkpoints", ckpt, "--data", data, "--split", "all", "--out", out, "--no-progress"],
            "readout": ["--checkpoint", ckpt, "--data", data, "--out", out + ".pt", "--no-progress"]}
    rc = main([command, *args[command], "--device", "cuda"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith(f"loci {command}: error: --device cuda, but no CUDA device is available"), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
