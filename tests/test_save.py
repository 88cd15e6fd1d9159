"""`loci save` end to end on the tiny training run."""

from __future__ import annotations

import numpy as np
from PIL import Image

from loci_core.cli import main
from loci_core.data.reader import read_split
from loci_core.model.checkpoint import load_model
from loci_core.tools.latents import load_latents
from loci_core.tools.save_latents import OVERLAY_FPS
from tests import test_train_fixtures as fx
from tests.test_train_fixtures import latest_checkpoint

tiny_data, tiny_run = fx.tiny_data, fx.tiny_run    # session fixtures shared with test_train / test_eval

FRAMES = 10  # frames per video of tiny_data


def test_save_end_to_end(tiny_run, tiny_data, tmp_path, capsys):
    ckpt = latest_checkpoint(tiny_run)
    out = tmp_path / "save"
    assert main(["save", "--checkpoint", str(ckpt), "--data", str(tiny_data), "--video", "1",
                 "--out", str(out), "--device", "cpu"]) == 0
    model, cfg, _ = load_model(ckpt)
    O, G = cfg.model.num_slots, cfg.model.gestalt_size
    lat = load_latents(out / "latents.npz")
    assert lat.gestalt.shape == (FRAMES - 1, O, G) and lat.position.shape == (FRAMES - 1, O, 3)
    assert lat.meta["resolution"] == [60, 80] and lat.meta["video"] == read_split(tiny_data, "all")[1].name
    assert np.isfinite(lat.position).all() and ((lat.visibility >= 0) & (lat.visibility <= 1)).all()
    for k in range(O):
        one = load_latents(out / f"slot-{k}.npz")
        assert one.slots == 1 and np.array_equal(one.gestalt[:, 0], lat.gestalt[:, k])
    sheets = sorted((out / "sheets").glob("step-*.png"))
    assert len(sheets) == FRAMES - 1
    with Image.open(sheets[0]) as im:
        assert im.width > 3 * 80 and im.height > 2 * 60
    with Image.open(out / "overlay.gif") as gif:
        # Pillow merges identical consecutive frames into one longer frame: count play time instead.
        total = 0
        for i in range(gif.n_frames):
            gif.seek(i)
            total += gif.info["duration"]
    assert total == (FRAMES - 1) * int(1000 / OVERLAY_FPS)
    assert "latents:" in capsys.readouterr().out


def test_save_mp4_by_name_and_bad_index(tiny_run, tiny_data, tmp_path, capsys):
    ckpt = str(latest_checkpoint(tiny_run))
    out = tmp_path / "mp4"
    assert main(["save", "--checkpoint", ckpt, "--data", str(tiny_data), "--video", "CLEVR_new_000002",
                 "--out", str(out), "--format", "mp4", "--no-sheets", "--device", "cpu"]) == 0
    assert (out / "overlay.mp4").stat().st_size > 0 and not (out / "sheets").exists()
    capsys.readouterr()
    assert main(["save", "--checkpoint", ckpt, "--data", str(tiny_data), "--video", "99", "--out", str(out),
                 "--device", "cpu"]) == 2
    assert "out of range" in capsys.readouterr().err
