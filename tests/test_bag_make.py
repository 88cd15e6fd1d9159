"""Bags made from videos: read back with rosbags and with mcap-ros2-support; clear errors for bad bags."""

import subprocess
import sys

import numpy as np
import pytest
import yaml

from loci_ros import vision_types
from loci_ros.bags import (
    CAMERA_FRAME,
    CAMERA_INFO_TOPIC,
    DEFAULT_START_NS,
    GT_DETECTIONS_TOPIC,
    GT_MASKS_TOPIC,
    IMAGE_TOPIC,
    SCENE_RESET_TOPIC,
    VIDEO_GAP_S,
)
from loci_ros.bags.make import boxes_from_labels, write_videos
from loci_ros.bags.storage import BagError, BagWriter, open_bag
from loci_ros.image_conversion import image_to_numpy
from tests.test_bag_helpers import K, synthetic_video

FPS = 24.0
HASHES = {  # RIHS01 of the standard types (Kilted) and of upstream vision_msgs 4.x
    "sensor_msgs/msg/Image": "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",
    "vision_msgs/msg/Detection2DArray":
        "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
}


@pytest.fixture(scope="module")
def videos():
    return [synthetic_video("video_a", 10, seed=1), synthetic_video("video_b", 4, seed=2)]


@pytest.fixture(scope="module")
def bags(videos, tmp_path_factory):
    """{storage: (bag path, storage, summary)} of the same two videos."""
    made = {}
    for storage in ("mcap", "sqlite3"):
        out = tmp_path_factory.mktemp(storage) / "bag"
        made[storage] = out, storage, write_videos(videos, out, storage=storage, fps=FPS, progress=False)
    return made


@pytest.fixture(params=["mcap", "sqlite3"])
def made_bag(request, bags):
    return bags[request.param]


def read_all(path):
    store = vision_types.typestore()
    with open_bag(path) as reader:
        conns = {c.topic: c for c in reader.connections}
        msgs = [(c.topic, t, store.deserialize_cdr(raw, c.msgtype)) for c, t, raw in reader.messages()]
    return conns, msgs


def expected_box(labels, k):
    ys, xs = np.nonzero(labels == k + 1)
    return (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_contents_read_back_with_rosbags(made_bag, videos):
    path, storage, summary = made_bag
    assert summary["frames"] == 14 and summary["videos"] == ["video_a", "video_b"]
    conns, msgs = read_all(path)
    assert {t: c.msgtype for t, c in conns.items()} == {
        IMAGE_TOPIC: "sensor_msgs/msg/Image", CAMERA_INFO_TOPIC: "sensor_msgs/msg/CameraInfo",
        GT_DETECTIONS_TOPIC: "vision_msgs/msg/Detection2DArray", GT_MASKS_TOPIC: "sensor_msgs/msg/Image",
        SCENE_RESET_TOPIC: "std_msgs/msg/Header"}
    for topic, conn in conns.items():
        if conn.msgtype in HASHES:
            assert conn.digest == HASHES[conn.msgtype], topic
    stamps = [t for _, t, _ in msgs]
    assert stamps == sorted(stamps)

    by_topic = {topic: [(t, m) for top, t, m in msgs if top == topic] for topic in conns}
    frames = np.concatenate([v.frames for v in videos])
    ids = np.concatenate([v.instance_ids for v in videos])
    assert len(by_topic[IMAGE_TOPIC]) == len(frames)
    for i, (t, img) in enumerate(by_topic[IMAGE_TOPIC]):
        assert img.encoding == "rgb8" and img.header.frame_id == CAMERA_FRAME
        assert vision_types.stamp_ns(img.header) == t
        np.testing.assert_array_equal(image_to_numpy(img), frames[i])
    for i, (_, mask) in enumerate(by_topic[GT_MASKS_TOPIC]):
        assert mask.encoding == "mono8"
        np.testing.assert_array_equal(image_to_numpy(mask), ids[i])
    for i, (t, dets) in enumerate(by_topic[GT_DETECTIONS_TOPIC]):
        assert vision_types.stamp_ns(dets.header) == t
        assert [d.id for d in dets.detections] == ["0", "2"]  # object 1 never visible
        for det in dets.detections:
            k = int(det.id)
            assert vision_types.box_xyxy(det) == pytest.approx(expected_box(ids[i], k))
            hyp = det.results[0].hypothesis
            assert (hyp.class_id, hyp.score) == (["cube", "cone", "spl"][k], [1.0, 0.0, 0.75][k])
    for _, info in by_topic[CAMERA_INFO_TOPIC]:
        np.testing.assert_allclose(info.k.reshape(3, 3), K)
        assert (info.width, info.height) == (64, 48)

    # 24 fps inside a video; the next video starts after a gap; a scene_reset announces each video
    image_t = np.array([t for t, _ in by_topic[IMAGE_TOPIC]])
    assert image_t[0] == DEFAULT_START_NS
    np.testing.assert_allclose(np.diff(image_t[:10]), 1e9 / FPS, atol=1)
    assert image_t[10] - image_t[9] >= VIDEO_GAP_S * 1e9
    resets = by_topic[SCENE_RESET_TOPIC]
    assert [h.frame_id for _, h in resets] == ["video_a", "video_b"]
    assert [t for t, _ in resets] == [image_t[0], image_t[10]]


def test_standard_metadata(made_bag):
    path, storage, _ = made_bag
    meta = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9 and meta["storage_identifier"] == storage
    hashes = {t["topic_metadata"]["name"]: t["topic_metadata"]["type_description_hash"]
              for t in meta["topics_with_message_count"]}
    assert hashes[GT_DETECTIONS_TOPIC] == HASHES["vision_msgs/msg/Detection2DArray"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning:mcap_ros2.*")
def test_mcap_readable_by_mcap_ros2(bags, videos):
    from mcap_ros2.reader import read_ros2_messages

    path = bags["mcap"][0]
    (mcap_file,) = path.glob("*.mcap")
    decoded = {}
    for item in read_ros2_messages(str(mcap_file)):
        decoded.setdefault(item.channel.topic, []).append(item.ros_msg)
    first = decoded[GT_DETECTIONS_TOPIC][0]
    ids = videos[0].instance_ids[0]
    assert [d.id for d in first.detections] == ["0", "2"]
    box = first.detections[0].bbox
    x0, y0, x1, y1 = expected_box(ids, 0)
    assert (box.center.position.x, box.size_x, box.size_y) == ((x0 + x1) / 2, x1 - x0, y1 - y0)
    image = decoded[IMAGE_TOPIC][3]
    pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width, 3)
    np.testing.assert_array_equal(pixels, videos[0].frames[3])
    assert len(decoded[IMAGE_TOPIC]) == 14 and len(decoded[SCENE_RESET_TOPIC]) == 2


def test_boxes_from_labels():
    labels = np.zeros((6, 8), np.uint8)
    labels[1:3, 2:5] = 4
    labels[5, 7] = 1
    assert boxes_from_labels(labels) == {3: (2, 1, 5, 3), 0: (7, 5, 8, 6)}
    assert boxes_from_labels(np.zeros((3, 3), np.uint8)) == {}


def test_bad_bags_raise_clear_errors(tmp_path, bags):
    with pytest.raises(BagError, match="does not exist"):
        with open_bag(tmp_path / "missing"):
            pass
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "metadata.yaml").write_text("rosbag2_bagfile_information: [")
    with pytest.raises(BagError, match="garbage.*cannot be opened"):
        with open_bag(garbage):
            pass
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not an mcap file" * 10)
    with pytest.raises(BagError, match="junk.mcap"):
        with open_bag(junk):
            pass
    existing, storage, _ = bags["sqlite3"]
    with pytest.raises(BagError, match="exists already"):
        BagWriter(existing, storage)
    with pytest.raises(BagError, match="unknown bag storage"):
        BagWriter(tmp_path / "new", "rosbag1")


def test_truncated_mcap_is_reported(tmp_path, videos):
    out = tmp_path / "bag"
    write_videos(videos[1:], out, storage="mcap", progress=False)
    (mcap_file,) = out.glob("*.mcap")
    mcap_file.write_bytes(mcap_file.read_bytes()[: mcap_file.stat().st_size // 2])
    with pytest.raises(BagError, match=str(out)):
        with open_bag(out) as reader:
            list(reader.messages())


def test_cli_reports_bad_bag_without_traceback(tmp_path, repo_root):
    done = subprocess.run([sys.executable, "-m", "loci_core.cli", "bag", "play", str(tmp_path / "nope")],
                          cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "nope does not exist" in done.stderr and "Traceback" not in done.stderr


def test_intrinsics_from_cater_matrix_reproject_like_the_matrix():
    from loci_core.data.camera import CATER_MATRIX, PinholeCamera, ProjectiveCamera, screen_to_pixel
    from loci_ros.bags.sources import intrinsics_k

    width, height = 320, 240
    k = intrinsics_k(CATER_MATRIX, width, height)
    assert k[0, 0] == pytest.approx(350.0, abs=0.5) and k[1, 1] == pytest.approx(350.0, abs=0.5)
    # a pinhole camera with this K at the matrix's pose images world points where the matrix does
    cam = ProjectiveCamera(CATER_MATRIX)
    _, view = cam.decompose()
    optical_to_gl = np.diag([1.0, -1.0, -1.0, 1.0])
    pinhole = PinholeCamera(k, width, height, np.linalg.inv(optical_to_gl @ view))
    points = np.random.default_rng(0).uniform(-3, 3, (20, 3)) * [1, 1, 0.3]
    uv = pinhole.world_to_pixel(points)
    rows_cols = screen_to_pixel(cam.world_to_screen(points), (height, width))
    np.testing.assert_allclose(uv[:, ::-1], rows_cols, atol=0.1)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from loci_core.data.generate import GenerateOptions, generate_dataset

    root = tmp_path_factory.mktemp("cater")
    generate_dataset(root, 3, seed=0, opts=GenerateOptions(size=(60, 80), frames=6), progress=False)
    return root


def test_make_from_generated_cater_data(generated, tmp_path):
    from loci_core.data import reader
    from loci_ros.bag_commands import main

    out = tmp_path / "bag"
    assert main(["make", "--data", str(generated), "--out", str(out), "--videos", "2", "--storage", "sqlite3",
                 "--size", "30", "40"]) == 0
    conns, msgs = read_all(out)
    names = [e.name for e in reader.read_split(generated, "all")][:2]
    assert [m.frame_id for topic, _, m in msgs if topic == SCENE_RESET_TOPIC] == names
    images = [m for topic, _, m in msgs if topic == IMAGE_TOPIC]
    assert len(images) == 12 and (images[0].width, images[0].height) == (40, 30)
    scene = reader.read_scene(generated / "scenes" / f"{names[0]}.json")
    gt = reader.read_ground_truth(generated / "ground_truth" / f"{names[0]}.npz", 6, len(scene.objects))
    dets = next(m for topic, _, m in msgs if topic == GT_DETECTIONS_TOPIC)
    for det in dets.detections:
        k = int(det.id)
        assert det.results[0].hypothesis.class_id == scene.objects[k].shape
        assert det.results[0].hypothesis.score == pytest.approx(gt["visible_fraction"][0, k])
    info = next(m for topic, _, m in msgs if topic == CAMERA_INFO_TOPIC)
    assert info.k[0] == pytest.approx(2.1875 * 40 / 2, rel=0.05)  # CATER's 35 mm lens at 40 px width


def test_make_picks_videos_and_reports_bad_input(generated, tmp_path, capsys):
    from loci_ros.bag_commands import main

    name = "CLEVR_new_000002"
    one = tmp_path / "one"
    assert main(["make", "--data", str(generated), "--out", str(one), "--video", name + ".avi"]) == 0
    _, msgs = read_all(one)
    assert [m.frame_id for topic, _, m in msgs if topic == SCENE_RESET_TOPIC] == [name]
    assert main(["make", "--data", str(generated), "--out", str(tmp_path / "x"), "--video", "nope"]) == 1
    assert "nope is not in" in capsys.readouterr().err
    assert main(["make", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "y")]) == 1
    assert "does not exist" in capsys.readouterr().err
