"""End to end on footage without labels: a bag of the generator's moving-camera videos (sqlite3 storage)
trains a tiny model for a few hundred updates on the CPU; then `loci eval` (no ground truth: image error,
slot usage, entities), `loci save`, `loci bag track` and the live tracker node all run on the checkpoint.

The videos have 48 frames: the moving camera's first keyframe move spans frames 0-30, and the objects'
first actions start within them too (in 16 frames nothing moves yet)."""

import csv
import json

import cv2
import numpy as np
import pytest

from loci_core.cli import main as loci
from loci_ros.bag_commands import main as bag
from tests.test_footage import frames_at, write_bag
from tests.test_train_fixtures import tiny_config

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs.msg")

from tests.test_node import THRESHOLD, ros, running_node  # noqa: E402,F401 - ros is a fixture

TOPIC = "/camera/image_raw"
VIDEOS, FRAMES = 4, 48
UPDATES = 300

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def moving_bag(tmp_path_factory):
    base = tmp_path_factory.mktemp("moving")
    assert loci(["generate", "--out", str(base / "cater"), "--videos", str(VIDEOS), "--frames", str(FRAMES),
                 "--size", "80x60", "--seed", "2", "--moving-camera"]) == 0
    assert bag(["make", "--data", str(base / "cater"), "--out", str(base / "bag"), "--storage", "sqlite3"]) == 0
    return base / "bag"


@pytest.fixture(scope="module")
def trained(moving_bag, one_thread):
    """The run directory of UPDATES updates of config/models/tiny.yaml on the bag's image topic."""
    run = moving_bag.parent / "run"
    cfg = tiny_config(moving_bag.parent / "tiny.yaml", batch_size=2, clip_len=8, updates=UPDATES,
                      checkpoint_every=100, log_every=20, image_every=UPDATES)
    assert loci(["train", "--config", str(cfg), "--data", str(moving_bag), "--topic", TOPIC, "--split", "all",
                 "--out", str(run), "--device", "cpu", "--no-progress"]) == 0
    return run


def checkpoint(run):
    return sorted((run / "checkpoints").glob("step-*.pt"))[-1]


def test_bag_trains_end_to_end(trained, moving_bag, tiny_checkpoint):
    from loci_core.evaluation.evaluate import evaluate

    assert checkpoint(trained).name == f"step-{UPDATES:09d}.pt"
    rows = list(csv.DictReader((trained / "metrics.csv").open()))
    image = [float(r["loss/image"]) for r in rows if r.get("loss/image")]
    assert len(image) == UPDATES // 20 and all(np.isfinite(image))
    # learning, not only running (the training loss rises while the background fades in, so it cannot
    # tell): the trained model predicts the bag's next frames far better than the same weights untrained
    # (0.096 -> 0.010 mean squared error in a run of this test)
    mse = {name: evaluate(ckpt, moving_bag, split="all", progress=False,
                          data_options={"topic": TOPIC})["summary"]["image_mse"]
           for name, ckpt in (("untrained", tiny_checkpoint), ("trained", checkpoint(trained)))}
    assert mse["trained"] < 0.5 * mse["untrained"], mse


def test_eval_without_ground_truth(trained, moving_bag, capsys):
    out = trained / "eval"
    assert loci(["eval", "--checkpoint", str(checkpoint(trained)), "--data", str(moving_bag), "--topic", TOPIC,
                 "--split", "all", "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "no ground truth" in printed and "image MSE" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["kind"] == "footage" and results["videos"] == VIDEOS
    assert "median" in results["background"]
    summary = results["summary"]
    assert 0 < summary["image_mse"] < 1 and np.isfinite(summary["psnr_db"])
    assert 0 < summary["repeat_frame_mse"] < 1  # the camera and the objects move
    assert 0 <= summary["visible_slots_per_frame"] <= 3
    for seq in results["sequences"]:
        assert seq["frames"] == FRAMES and seq["entities"] == len(seq["lifetimes"]) <= 3
        assert all(1 <= life <= FRAMES - 1 for life in seq["lifetimes"])
        cap = cv2.VideoCapture(seq["overlay"])
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES - 1  # one overlay frame per prediction
        cap.release()


def test_save_on_a_bag(trained, moving_bag):
    out = trained / "latents"
    assert loci(["save", "--checkpoint", str(checkpoint(trained)), "--data", str(moving_bag), "--topic", TOPIC,
                 "--video", "1", "--out", str(out), "--device", "cpu", "--no-sheets"]) == 0
    with np.load(out / "latents.npz") as z:
        assert z["position"].shape[:2] == (FRAMES - 1, 3)
    assert (out / "overlay.gif").is_file()


def test_bag_track_on_footage(trained, moving_bag, capsys):
    out = moving_bag.parent / "tracked"
    assert bag(["track", str(moving_bag), "--checkpoint", str(checkpoint(trained)), "--out", str(out)]) == 0
    assert f"tracked {VIDEOS * FRAMES} frames ({VIDEOS} scene resets)" in capsys.readouterr().out


def test_bag_track_compressed_images_resets_at_gaps(trained, tmp_path, capsys):
    frames = frames_at([0.0, 0.1, 0.2, 3.0, 3.1], seed=4)
    write_bag(tmp_path / "png", [(t, cv2.resize(f, (80, 60))) for t, f in frames], topic=TOPIC, compressed=True)
    assert bag(["track", str(tmp_path / "png"), "--checkpoint", str(checkpoint(trained)),
                "--out", str(tmp_path / "tracked")]) == 0
    assert "tracked 5 frames (1 scene resets)" in capsys.readouterr().out
    assert bag(["track", str(tmp_path / "png"), "--checkpoint", str(checkpoint(trained)), "--gap", "0",
                "--out", str(tmp_path / "tracked2")]) == 0
    assert "tracked 5 frames (0 scene resets)" in capsys.readouterr().out


@pytest.mark.ros
def test_node_runs_on_the_trained_checkpoint(ros, trained, moving_bag, tmp_path):  # noqa: F811
    from loci_core.data.sources import open_video_data

    ds = open_video_data(moving_bag, split="all", size=(60, 80), topic=TOPIC)
    video = np.array(ds.frames(ds.names[0])).transpose(0, 2, 3, 1)
    with running_node(checkpoint(trained), tmp_path / "node.log", video[0]) as (process, client, _):
        for t, frame in enumerate(video[1:6], start=2):
            outputs = client.send(frame, stamp=t)
            assert outputs["masks"].height == 60 and outputs["masks"].width == 80
            assert outputs["detections"] is not None
        assert process.poll() is None
    assert THRESHOLD > 0
