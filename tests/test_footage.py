"""Your own footage as training data: a folder of video files and a rosbag2 image topic, next to the CATER
layout. The same generated videos in all three forms give the same training batches; bags are split into
sequences at scene resets and time gaps; bad input gets a clear error."""

import shutil

import cv2
import numpy as np
import pytest
import yaml

from loci_core.cli import main as loci
from loci_core.config import load_config
from loci_core.data.bag_footage import BagFootage
from loci_core.data.footage import split_names
from loci_core.data.reader import read_split
from loci_core.data.sources import open_video_data
from loci_core.training.run_dir import RunDir
from loci_core.training.trainer import Dist, Position, Trainer
from loci_ros.bag_commands import main as bag
from loci_ros.bags.storage import BagWriter
from loci_ros.image_conversion import numpy_to_image
from loci_ros.vision_types import header, msg_type
from tests.test_train_fixtures import TINY, tiny_config

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"


@pytest.fixture(scope="module")
def three_forms(tmp_path_factory):
    """The same lossless generated videos as (CATER directory, folder of video files, bag)."""
    base = tmp_path_factory.mktemp("forms")
    cater = base / "cater"
    assert loci(["generate", "--out", str(cater), "--videos", "5", "--frames", "12", "--size", "80x60",
                 "--seed", "3", "--lossless", "--no-jitter"]) == 0
    folder = base / "videos"
    folder.mkdir()
    # file names sort in the CATER directory's "all" order; one video re-encoded losslessly as .mkv
    for i, entry in enumerate(read_split(cater, "all")):
        source = cater / "videos" / f"{entry.name}.avi"
        if i == 1:
            cap, writer = cv2.VideoCapture(str(source)), None
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                if writer is None:
                    writer = cv2.VideoWriter(str(folder / f"{i:02d}-{entry.name}.mkv"),
                                             cv2.VideoWriter_fourcc(*"FFV1"), 24, frame.shape[1::-1])
                writer.write(frame)
            writer.release()
        else:
            shutil.copy(source, folder / f"{i:02d}-{entry.name}.avi")
    made = base / "bag"
    assert bag(["make", "--data", str(cater), "--out", str(made), "--split", "all"]) == 0
    return cater, folder, made


def trainer(data, out, **options):
    cfg = load_config(tiny_config(out.parent / f"{out.name}.yaml", batch_size=2, clip_len=6))
    return Trainer(cfg, data, RunDir(out), "cpu", Dist(), split="all", progress=False, data_options=options)


def test_cater_folder_and_bag_give_the_same_batches(three_forms, tmp_path):
    cater, folder, made = three_forms
    background = str(cater / "background.png")
    trainers = [trainer(cater, tmp_path / "a", background=background),
                trainer(folder, tmp_path / "b", background=background),
                trainer(made, tmp_path / "c", background=background, topic="/camera/image_raw")]
    assert [len(t.dataset) for t in trainers] == [5, 5, 5]
    seen = []
    for epoch in range(3):
        for b in range(2):
            batches = []
            for t in trainers:
                t.pos = Position(epoch, b, 0)
                batches.append(t._load_batch())
            for other in batches[1:]:
                assert other["frames"].shape == batches[0]["frames"].shape == (2, 6, 3, 60, 80)
                assert torch_equal(other["frames"], batches[0]["frames"])
                assert torch_equal(other["background"], batches[0]["background"])
            seen.append(batches[0]["frames"])
    # the batches differ from each other (clips and order change per epoch), so the comparison means something
    assert len({f.numpy().tobytes() for f in seen}) == len(seen)
    assert all(torch_equal(t.background, trainers[0].background) for t in trainers)


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_footage_is_decoded_once_into_the_frame_cache(three_forms):
    _, folder, made = three_forms
    for data, options in ((folder, {}), (made, {"topic": "/camera/image_raw"})):
        ds = open_video_data(data, split="all", size=(30, 40), **options)
        first = np.array(ds.frames(ds.names[0]))
        files = sorted(ds.cache.root.glob("30x40/*.frames.u8"))
        assert len(files) == 5  # every sequence decoded in the one pass
        stamps = [f.stat().st_mtime_ns for f in files]
        again = open_video_data(data, split="all", size=(30, 40), **options)
        assert np.array_equal(np.array(again.frames(again.names[0])), first)
        assert [f.stat().st_mtime_ns for f in files] == stamps  # read from the cache, not decoded again
    assert (made.parent / "bag.cache" / "camera_image_raw" / "index.json").is_file()
    assert (folder / "cache" / "index.json").is_file()  # frame counts found once


def test_background_is_estimated_per_sequence_without_an_image(tmp_path, capsys):
    """A square crossing a fixed texture: the temporal median is the texture without the square."""
    folder = tmp_path / "moving"
    folder.mkdir()
    texture = np.random.default_rng(5).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    for name, row in (("a", 10), ("b", 40)):
        writer = cv2.VideoWriter(str(folder / f"{name}.mkv"), cv2.VideoWriter_fourcc(*"FFV1"), 24, (80, 60))
        for t in range(12):
            frame = texture.copy()
            frame[row:row + 10, 6 * t:6 * t + 10] = (255, 0, 0)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
    ds = open_video_data(folder, split="all", size=(60, 80))
    assert "median" in ds.background_source()
    for name in ds.names:
        assert np.array_equal(ds.background(name), texture)
        assert not np.array_equal(np.array(ds.frames(name)[0]).transpose(1, 2, 0), texture)
    assert loci(["data", "stats", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "2 sequences" in out and "median" in out
    given = tmp_path / "given.png"
    cv2.imwrite(str(given), np.zeros((30, 40, 3), np.uint8))
    assert loci(["data", "stats", str(folder), "--background", str(given)]) == 0
    assert f"the given image {given}" in capsys.readouterr().out


def test_splits_by_sequence_are_reproducible_from_the_seed():
    names = [f"s{i}" for i in range(20)]
    train, test = split_names(names, "train", 4), split_names(names, "test", 4)
    assert sorted(train + test) == sorted(names) and not set(train) & set(test)
    assert len(test) == 2 and train == [n for n in names if n in train]  # source order kept
    assert split_names(names, "test", 4) == test
    assert any(split_names(names, "test", s) != test for s in range(5, 10))
    assert split_names(["only"], "train", 0) == ["only"] and split_names(["only"], "test", 0) == []


def write_bag(path, frames_by_time, topic="/cam/image", compressed=False, resets=()):
    """A bag with one image topic: frames_by_time [(bag time ns, rgb)], scene resets [(time ns, name)]."""
    with BagWriter(path) as writer:
        for t, name in resets:
            writer.write("/loci/scene_reset", "std_msgs/msg/Header", t, header(t, name))
        for t, rgb in frames_by_time:
            if compressed:
                ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                msg = msg_type(COMPRESSED)(header=header(t, "cam"), format="png", data=png.ravel())
                writer.write(topic, COMPRESSED, t, msg)
            else:
                bgr = np.ascontiguousarray(rgb[..., ::-1])
                writer.write(topic, IMAGE, t, numpy_to_image(bgr, "bgr8", header(t, "cam"), msg_type(IMAGE)))


def frames_at(times_s, seed=0):
    rng = np.random.default_rng(seed)
    return [(int(t * 1e9), rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)) for t in times_s]


def test_bag_sequences_split_at_time_gaps_and_resets(tmp_path):
    frames = frames_at([0.0, 0.1, 0.2, 0.3, 2.0, 2.1, 2.2, 2.3, 2.4])
    write_bag(tmp_path / "gaps", frames, resets=[(int(2.2e9), "later")])
    seqs = BagFootage(tmp_path / "gaps", "/cam/image").sequences()
    assert [(s.name, s.num_frames) for s in seqs] == [("0000", 4), ("0001", 2), ("0002-later", 3)]
    seqs = BagFootage(tmp_path / "gaps", "/cam/image", gap_s=5.0).sequences()
    assert [s.num_frames for s in seqs] == [6, 3]
    ds = open_video_data(tmp_path / "gaps", split="all", size=(24, 32), topic="/cam/image", gap=5.0)
    decoded = np.concatenate([np.array(ds.frames(n)) for n in ds.names]).transpose(0, 2, 3, 1)
    # written as bgr8, read back as the same RGB pixels
    assert np.array_equal(decoded, np.stack([f for _, f in frames]))


def test_compressed_image_topic(tmp_path):
    frames = frames_at([0.0, 0.05, 0.1, 0.15], seed=1)
    write_bag(tmp_path / "png", frames, compressed=True)
    ds = open_video_data(tmp_path / "png", split="all", size=(24, 32), topic="/cam/image")
    assert ds.names == ["0000"]
    assert np.array_equal(np.array(ds.frames("0000")).transpose(0, 2, 3, 1), np.stack([f for _, f in frames]))


# ------------------------------------------------------------------------------------------------
# Bad input: clear messages, from the command line as a user meets them


def train_error(capsys, tmp_path, data, *extra, clip_len=6) -> str:
    cfg = tiny_config(tmp_path / "cfg.yaml", batch_size=1, clip_len=clip_len)
    code = loci(["train", "--config", str(cfg), "--data", str(data), "--out", str(tmp_path / "run"), "--split",
                 "all", "--device", "cpu", "--no-progress", *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def test_bag_without_the_topic(three_forms, capsys, tmp_path):
    err = train_error(capsys, tmp_path, three_forms[2], "--topic", "/front/image")
    assert "has no topic /front/image" in err and "/camera/image_raw" in err
    err = train_error(capsys, tmp_path, three_forms[2])
    assert "--topic" in err and "/camera/image_raw" in err and "/ground_truth/masks" in err


def test_topic_of_another_type(three_forms, capsys, tmp_path):
    err = train_error(capsys, tmp_path, three_forms[2], "--topic", "/camera/camera_info")
    assert "/camera/camera_info carries sensor_msgs/msg/CameraInfo" in err


def test_folder_without_decodable_video(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no videos here")
    assert "no video files" in train_error(capsys, tmp_path, empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "clip.mp4").write_bytes(b"\x00not a video" * 100)
    (broken / "other.mkv").write_bytes(b"")
    err = train_error(capsys, tmp_path, broken)
    assert "none of its 2 video file(s)" in err and "clip.mp4" in err


def test_sequences_shorter_than_the_warm_up(three_forms, capsys, tmp_path):
    cater, _, _ = three_forms
    short = tmp_path / "short"
    short.mkdir()
    shutil.copy(cater / "videos" / f"{read_split(cater, 'all')[0].name}.avi", short / "long.avi")
    writer = cv2.VideoWriter(str(short / "tiny.avi"), cv2.VideoWriter_fourcc(*"FFV1"), 24, (80, 60))
    for _ in range(3):
        writer.write(np.zeros((60, 80, 3), np.uint8))
    writer.release()
    err = train_error(capsys, tmp_path, short, clip_len=6)
    assert "shorter than the 6 frames" in err and "tiny (3)" in err and "long" not in err.split("needs")[1]


def test_topic_on_a_cater_directory(three_forms, capsys, tmp_path):
    err = train_error(capsys, tmp_path, three_forms[0], "--topic", "/camera/image_raw")
    assert "--topic and --gap are for rosbag2 data" in err


@pytest.mark.slow
def test_footage_options_are_kept_for_resume(three_forms, tmp_path, one_thread):
    _, folder, _ = three_forms
    cfg = tiny_config(tmp_path / "cfg.yaml", batch_size=2, clip_len=4, updates=6, checkpoint_every=3)
    background = str(three_forms[0] / "background.png")
    assert loci(["train", "--config", str(cfg), "--data", str(folder), "--out", str(tmp_path / "run"),
                 "--split", "all", "--device", "cpu", "--no-progress", "--background", background,
                 "--updates", "3"]) == 0
    run = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert run["train"]["clip_len"] == 4
    assert loci(["train", "--resume", str(tmp_path / "run"), "--device", "cpu", "--no-progress",
                 "--updates", "6"]) == 0
    import torch

    ckpt = torch.load(sorted((tmp_path / "run" / "checkpoints").glob("step-*.pt"))[-1], weights_only=True)
    assert ckpt["train_state"]["data_options"] == {"background": background}
    assert TINY.is_file()


def test_preview_of_a_bag_says_which_background(three_forms, capsys):
    made = three_forms[2]
    assert loci(["data", "preview", str(made), "--topic", "/camera/image_raw", "--size", "80x60"]) == 0
    out = capsys.readouterr().out
    png = made.parent / "bag-preview.png"
    assert f"wrote {png}" in out and "background: estimated" in out
    sheet = cv2.imread(str(png))
    assert sheet.shape == (2 * 60, 4 * 80, 3)  # 7 frames and the background panel
    assert png.with_suffix(".gif").is_file()
    assert loci(["data", "preview", str(made), "--topic", "/camera/image_raw", "--video", "nope"]) == 1
    assert "no sequence 'nope'" in capsys.readouterr().err


def test_entity_statistics_from_visibility():
    from loci_core.evaluation.footage import entity_stats

    visible = np.zeros((10, 3), bool)
    visible[2:5, 0] = True          # one run of 3 frames
    visible[1:3, 1] = visible[6:9, 1] = True   # lost and found again: lifetime 1..8
    stats = entity_stats(visible)
    assert stats["entities"] == 2 and stats["lifetimes"] == [3, 8]
    assert stats["visible_runs"] == [1, 2] and stats["visible_share"] == [1.0, 5 / 8]


def test_reading_a_bag_imports_no_ros(three_forms, tmp_path):
    """loci_core reads bags with rosbags alone: no rclpy or ROS message packages get imported."""
    import subprocess
    import sys

    script = (f"import sys\nfrom loci_core.data.sources import open_video_data\n"
              f"ds = open_video_data({str(three_forms[2])!r}, split='all', size=(30, 40), topic='/camera/image_raw', "
              f"cache={str(tmp_path / 'c')!r})\nassert ds[0]['frames'].shape == (12, 3, 30, 40)\n"
              "ros = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'rosidl_runtime_py', "
              "'sensor_msgs', 'std_msgs', 'loci_ros'))\nprint(ros)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_unsupported_image_encoding_is_named(tmp_path, capsys):
    with BagWriter(tmp_path / "depth") as writer:
        for i in range(4):
            t = int(i * 1e8)
            writer.write("/depth", IMAGE, t, numpy_to_image(np.zeros((24, 32), np.uint16), "16UC1", header(t, "cam"),
                                                             msg_type(IMAGE)))
    assert loci(["data", "preview", str(tmp_path / "depth"), "--topic", "/depth"]) == 1
    err = capsys.readouterr().err
    assert "/depth, frame 0: image encoding '16UC1' is not supported" in err and "rgb8" in err
