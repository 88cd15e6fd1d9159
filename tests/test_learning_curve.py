"""`loci curve`: two untrained tiny checkpoints on two short generated videos -> rows by step, a plot."""

from __future__ import annotations

import json

import cv2
import pytest
import torch

from loci_core.cli import main
from loci_core.config import config_from_dict
from loci_core.evaluation.learning_curve import DPI, FIGSIZE
from loci_core.model.checkpoint import load_checkpoint, save_checkpoint
from loci_core.model.loci import Loci

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("curve") / "cater"
    assert main(["generate", "--out", str(root), "--videos", "2", "--frames", "6", "--size", "80x60",
                 "--seed", "3"]) == 0
    return root


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoint, tmp_path_factory):
    """Steps 20 and 5, named so that name order is not step order."""
    cfg = config_from_dict(load_checkpoint(tiny_checkpoint)["config"])
    out = tmp_path_factory.mktemp("curve-ckpts")
    paths = []
    for name, step, seed in (("a.pt", 20, 1), ("b.pt", 5, 2)):
        torch.manual_seed(seed)
        paths.append(save_checkpoint(out / name, Loci(cfg.model), cfg, global_step=step))
    return paths


def test_curve_rows_and_plot(checkpoints, data, tmp_path, capsys):
    prefix = tmp_path / "out" / "curve"
    rc = main(["curve", "--checkpoints", *map(str, checkpoints), "--data", str(data), "--split", "all",
               "--batch", "2", "--device", "cpu", "--no-progress", "--out", str(prefix)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    rows = json.loads(prefix.with_suffix(".json").read_text())
    assert [r["global_step"] for r in rows] == [5, 20]
    assert [r["checkpoint"] for r in rows] == [str(checkpoints[1]), str(checkpoints[0])]
    for r in rows:
        assert set(r) == {"global_step", "checkpoint", "top1", "top5", "l1", "fg_ari", "miou", "mota", "idf1",
                          "best_slot_top1", "video_set"}
        assert r["video_set"].startswith("2 videos, sha1 ")
        assert 0 <= r["top1"] <= r["top5"] <= 1 and r["l1"] >= 0 and 0 <= r["best_slot_top1"] <= 1
        assert r["fg_ari"] is not None and r["idf1"] is not None
    assert "step        5" in captured.out

    image = cv2.imread(str(prefix.with_suffix(".png")))
    assert image is not None and image.shape == (round(FIGSIZE[1] * DPI), round(FIGSIZE[0] * DPI), 3)
    assert image.std() > 10   # something was drawn


def test_curve_extends_an_earlier_curve_of_the_same_videos(checkpoints, data, tmp_path, capsys):
    prefix = tmp_path / "curve"
    args = ["--data", str(data), "--split", "all", "--batch", "2", "--device", "cpu", "--no-progress",
            "--out", str(prefix)]
    assert main(["curve", "--checkpoints", str(checkpoints[0]), *args]) == 0
    first = json.loads(prefix.with_suffix(".json").read_text())
    assert [r["global_step"] for r in first] == [20]
    assert main(["curve", "--checkpoints", str(checkpoints[1]), "--extend", *args]) == 0
    rows = json.loads(prefix.with_suffix(".json").read_text())
    assert [r["global_step"] for r in rows] == [5, 20] and rows[1] == first[0]
    assert main(["curve", "--checkpoints", str(checkpoints[1]), *args]) == 0  # without --extend: replaced
    assert [r["global_step"] for r in json.loads(prefix.with_suffix(".json").read_text())] == [5]
    capsys.readouterr()

    # another video set (one video instead of two) would mix two test sets in one curve
    assert main(["curve", "--checkpoints", str(checkpoints[0]), *args]) == 0
    before = prefix.with_suffix(".json").read_text()
    assert main(["curve", "--checkpoints", str(checkpoints[1]), "--extend", "--videos", "1", *args]) == 2
    err = capsys.readouterr().err
    assert "other videos (2 videos, sha1" in err and "(1 video, sha1" in err
    assert prefix.with_suffix(".json").read_text() == before

    prefix.with_suffix(".json").write_text('{"not": "rows"}')
    assert main(["curve", "--checkpoints", str(checkpoints[1]), "--extend", *args]) == 2
    assert "not a learning curve" in capsys.readouterr().err


def test_curve_refuses_bad_input(checkpoints, data, tmp_path, capsys):
    prefix = tmp_path / "curve"
    args = ["--data", str(data), "--split", "all", "--device", "cpu", "--no-progress", "--out", str(prefix)]
    assert main(["curve", "--checkpoints", str(checkpoints[0]), str(tmp_path / "step-*.pt"), *args]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "pattern" in err and "Traceback" not in err

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["curve", "--checkpoints", str(junk), *args]) == 2
    assert "junk.pt" in capsys.readouterr().err
    assert not prefix.with_suffix(".json").exists()

    with pytest.raises(SystemExit) as exit_:   # argparse: --checkpoints needs at least one path
        main(["curve", "--checkpoints", *args])
    assert exit_.value.code == 2


def test_evaluate_without_baselines_scores_loci_alike(checkpoints, data):
    """The curve scores the baselines only with its last checkpoint; Loci's numbers do not depend on it."""
    from loci_core.evaluation.evaluate import BEST_SLOT, CARRIED, TOP_SLOT, evaluate

    args = dict(split="all", batch=2, progress=False)
    full = evaluate(checkpoints[0], data, **args)
    alone = evaluate(checkpoints[0], data, baselines=False, **args)
    loci_rows = {"loci", TOP_SLOT, CARRIED, BEST_SLOT}
    assert set(full["cater"]) == loci_rows | {"last seen (oracle)", "classical tracker", "chance"}
    assert set(alone["cater"]) == loci_rows and set(alone["tracking"]) == {"loci"}
    assert alone["cater"]["loci"] == full["cater"]["loci"]
    assert alone["cater"][BEST_SLOT] == full["cater"][BEST_SLOT]
    same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # noqa: E731 - NaN == NaN
    assert same(alone["tracking"]["loci"], full["tracking"]["loci"])
