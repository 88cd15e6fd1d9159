"""Writer, reader, dataset and commands: the on-disk format round trip, determinism, caching, bad input."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from loci_core.cli import main as loci
from loci_core.data import reader
from loci_core.data.camera import ProjectiveCamera, grid_class
from loci_core.data.dataset import MAX_OBJECTS, CaterVideos
from loci_core.data.renderer import Renderer
from loci_core.data.sampler import sample_scene, video_rng
from loci_core.data.trajectory import containers

FRAMES = 40
ARGS = ["--videos", "4", "--seed", "17", "--size", "80x60", "--frames", str(FRAMES)]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cater") / "set"
    assert loci(["generate", "--out", str(out), *ARGS]) == 0
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout(data_dir):
    names = sorted(p.stem for p in (data_dir / "videos").glob("*.avi"))
    assert names == [f"CLEVR_new_{i:06d}" for i in range(4)]
    for sub, ext in (("scenes", "json"), ("ground_truth", "npz"), ("backgrounds", "png")):
        assert sorted(p.stem for p in (data_dir / sub).glob(f"*.{ext}")) == names
    assert (data_dir / "background.png").is_file()
    train = reader.read_split(data_dir, "train")
    test = reader.read_split(data_dir, "test")
    assert len(train) == 3 and len(test) == 1  # 70 / 30
    assert sorted(e.name for e in train + test) == names
    scene = json.loads((data_dir / "scenes" / f"{names[0]}.json").read_text())
    for key in ("objects", "movements", "camera", "directions", "image_filename"):
        assert key in scene
    obj = scene["objects"][0]
    assert obj["shape"] == "spl" and obj["instance"] == "Spl_0"
    assert sorted(obj["locations"], key=int) == [str(t) for t in range(FRAMES)]
    assert np.array(scene["camera"]["matrix"]).shape == (4, 4)


def test_same_seed_gives_identical_bytes(data_dir, tmp_path):
    again = tmp_path / "again"
    assert loci(["generate", "--out", str(again), *ARGS, "--workers", "2"]) == 0
    assert _files(again) == _files(data_dir)


def test_round_trip_matches_the_sampler_and_renderer(data_dir):
    name = "CLEVR_new_000001"
    scene = reader.read_scene(data_dir / "scenes" / f"{name}.json")
    original = sample_scene(video_rng(17, 1), FRAMES)
    assert np.allclose(scene.locations, original.locations)
    assert np.allclose(scene.cameras, original.cameras)
    assert scene.movements == original.movements
    assert [o.instance for o in scene.objects] == [o.instance for o in original.objects]
    rendered = Renderer((60, 80)).render(original)
    video = reader.read_video(data_dir / "videos" / f"{name}.avi", FRAMES)
    assert video.shape == (FRAMES, 60, 80, 3)
    assert np.abs(video.astype(int) - rendered.rgb).mean() < 4  # MJPG is lossy, but close
    gt = reader.read_ground_truth(data_dir / "ground_truth" / f"{name}.npz", FRAMES, len(scene.objects))
    assert np.array_equal(gt["ids"], rendered.ids)
    labels = {e.name: e.label for e in reader.read_split(data_dir, "all")}
    assert labels[name] == grid_class(original.locations[0, -1])


def test_lossless_video_is_exact(tmp_path):
    out = tmp_path / "lossless"
    assert (
        loci(
            ["generate", "--out", str(out), "--videos", "1", "--size", "40x30", "--frames", "5", "--lossless"]
        )
        == 0
    )
    scene = reader.read_scene(out / "scenes" / "CLEVR_new_000000.json")
    video = reader.read_video(out / "videos" / "CLEVR_new_000000.avi", 5)
    assert np.array_equal(video, Renderer((30, 40)).render(scene).rgb)


def test_dataset_items(data_dir):
    ds = CaterVideos(data_dir, split="all", size=(30, 40))
    assert len(ds) == 4
    item = ds[0]
    name = item["name"]
    scene = ds.scene(name)
    t = FRAMES
    assert item["frames"].dtype == torch.uint8 and item["frames"].shape == (t, 3, 30, 40)
    assert item["background"].dtype == torch.float32 and item["background"].shape == (3, 30, 40)
    assert 0 <= item["background"].min() and item["background"].max() <= 1
    assert item["snitch_screen"].shape == (t, 2) and item["snitch_world"].shape == (t, 3)
    expected = ProjectiveCamera(scene.cameras[-1]).world_to_screen(scene.locations[0, -1])
    assert np.allclose(item["snitch_screen"][-1].numpy(), expected, atol=1e-5)
    assert item["label"] == grid_class(scene.locations[0, -1])
    assert item["contained"].dtype == torch.bool
    assert np.array_equal(item["contained"].numpy(), containers(scene)[0] >= 0)
    assert item["instance_ids"].shape == (t, 30, 40) and item["instance_ids"].dtype == torch.uint8
    k = len(scene.objects)
    assert item["object_states"].shape == (t, MAX_OBJECTS) and (item["object_states"][:, k:] == -1).all()
    assert item["visible_fraction"].shape == (t, MAX_OBJECTS)
    assert item["object_screen"].shape == (t, MAX_OBJECTS, 2) and item["num_objects"] == k
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["frames"].shape == (2, t, 3, 30, 40)


def test_cache_is_built_once_and_reused(data_dir, monkeypatch):
    ds = CaterVideos(data_dir, split="train", size=(30, 40), cache_dir=data_dir / "cache_test")
    first = ds[0]["frames"]
    cached = list((data_dir / "cache_test" / "30x40").glob("*.frames.u8"))
    assert len(cached) == 1 and cached[0].stat().st_size == FRAMES * 3 * 30 * 40

    def no_decoding(*args, **kwargs):
        raise AssertionError("the video was decoded again")

    monkeypatch.setattr(reader, "read_video", no_decoding)
    again = CaterVideos(data_dir, split="train", size=(30, 40), cache_dir=data_dir / "cache_test")
    assert torch.equal(again[0]["frames"], first)


def test_truncated_cache_is_rebuilt(data_dir):
    cache = data_dir / "cache_cut"
    first = CaterVideos(data_dir, split="train", size=(30, 40), cache_dir=cache)[0]["frames"]
    (cached,) = (cache / "30x40").glob("*.frames.u8")
    with open(cached, "r+b") as f:  # as a full disk or an interrupted copy leaves it
        f.truncate(cached.stat().st_size // 2)
    again = CaterVideos(data_dir, split="train", size=(30, 40), cache_dir=cache)[0]["frames"]
    assert torch.equal(again, first)
    assert cached.stat().st_size == FRAMES * 3 * 30 * 40


def test_clips(data_dir):
    ds = CaterVideos(data_dir, split="all", size=(30, 40), clip_len=8, seed=3)
    a, b = ds[1], ds[1]
    assert a["frames"].shape[0] == 8 and a["start"] == b["start"]
    whole = np.array(ds.frames(a["name"]))
    assert np.array_equal(a["frames"].numpy(), whole[a["start"] : a["start"] + 8])
    starts = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        starts.add(ds[1]["start"])
    assert len(starts) > 1
    fixed = CaterVideos(data_dir, split="all", size=(30, 40), clip_len=8, clip_start="fixed")[1]
    assert fixed["start"] == FRAMES - 8 and fixed["clip_label"] == fixed["label"]


# ---- bad input ------------------------------------------------------------------------------------------
@pytest.fixture()
def broken(data_dir, tmp_path) -> Path:
    copy = tmp_path / "broken"
    shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns("cache*"))
    return copy


def test_missing_scene_json(broken):
    (broken / "scenes" / "CLEVR_new_000002.json").unlink()
    ds = CaterVideos(broken, split="all", size=(30, 40))
    index = [e.name for e in ds.entries].index("CLEVR_new_000002")
    with pytest.raises(reader.CaterFormatError, match=r"CLEVR_new_000002\.json: scene JSON is missing"):
        ds[index]


def test_truncated_video(broken, tmp_path):
    video = broken / "videos" / "CLEVR_new_000000.avi"
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        reader.CaterFormatError, match=r"CLEVR_new_000000\.avi: (truncated video|no decodable)"
    ):
        reader.read_video(video, FRAMES)


def test_frame_count_mismatch(broken):
    path = broken / "scenes" / "CLEVR_new_000000.json"
    scene = json.loads(path.read_text())
    for obj in scene["objects"]:
        obj["locations"] = {k: v for k, v in obj["locations"].items() if int(k) < FRAMES - 5}
    path.write_text(json.dumps(scene))
    with pytest.raises(reader.CaterFormatError, match=r"CLEVR_new_000000\.avi: frame count mismatch"):
        reader.read_video(broken / "videos" / "CLEVR_new_000000.avi", FRAMES - 5)
    with pytest.raises(reader.CaterFormatError, match="frame count mismatch|truncated"):
        CaterVideos(broken, split="all", size=(30, 40)).frames("CLEVR_new_000000")


def test_unknown_shape_name(broken):
    path = broken / "scenes" / "CLEVR_new_000003.json"
    scene = json.loads(path.read_text())
    scene["objects"][3]["shape"] = "torus"
    path.write_text(json.dumps(scene))
    with pytest.raises(
        reader.CaterFormatError, match=r"CLEVR_new_000003\.json: objects\[3\] has unknown shape name 'torus'"
    ):
        reader.read_scene(path)


def test_other_bad_input(broken):
    with pytest.raises(reader.CaterFormatError, match="data set directory does not exist"):
        CaterVideos(broken / "nope")
    (broken / "lists" / "localize" / "val.txt").write_text("CLEVR_new_000001.avi seven\n")
    with pytest.raises(reader.CaterFormatError, match=r"val\.txt:1: expected"):
        reader.read_split(broken, "test")
    (broken / "lists" / "localize" / "train.txt").unlink()
    with pytest.raises(reader.CaterFormatError, match=r"train\.txt: split list is missing"):
        CaterVideos(broken, split="train")
    (broken / "videos" / "CLEVR_new_000001.avi").unlink()
    with pytest.raises(reader.CaterFormatError, match=r"CLEVR_new_000001\.avi: video file is missing"):
        reader.read_video(broken / "videos" / "CLEVR_new_000001.avi")
    bad_json = broken / "scenes" / "CLEVR_new_000002.json"
    bad_json.write_text("{not json")
    with pytest.raises(reader.CaterFormatError, match="not valid JSON"):
        reader.read_scene(bad_json)


def test_real_cater_layout_without_extras(broken):
    """Real CATER: only videos, scenes (no camera/loci entries) and lists."""
    for sub in ("ground_truth", "backgrounds"):
        shutil.rmtree(broken / sub)
    (broken / "background.png").unlink()
    for path in (broken / "scenes").glob("*.json"):
        scene = json.loads(path.read_text())
        for key in ("camera", "lights", "loci"):
            scene.pop(key)
        path.write_text(json.dumps(scene))
    item = CaterVideos(broken, split="all", size=(30, 40))[0]
    assert "instance_ids" not in item and item["frames"].shape == (FRAMES, 3, 30, 40)
    assert item["background"].shape == (3, 30, 40)  # median of frames
    assert item["camera"].shape == (FRAMES, 4, 4)


def test_commands(data_dir, tmp_path, capsys):
    png = tmp_path / "p.png"
    assert loci(["data", "preview", str(data_dir), "--out", str(png)]) == 0
    assert png.stat().st_size > 1000 and png.with_suffix(".gif").stat().st_size > 1000
    assert loci(["data", "stats", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "contained_end" in out and "videos" in out
    assert loci(["data", "stats", "--simulate", "3", "--frames", "61"]) == 0
    assert loci(["data", "stats", str(tmp_path / "missing")]) == 1
    assert "error:" in capsys.readouterr().err
