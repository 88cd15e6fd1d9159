"""Small synthetic videos with ground truth for the bag tests (moving boxes on a noisy background).

Imported by the other tests/test_bag_*.py files."""

import numpy as np

from loci_ros.bags.make import Video

HEIGHT, WIDTH = 48, 64
K = np.array([[70.0, 0.0, 31.5], [0.0, 70.0, 23.5], [0.0, 0.0, 1.0]])


def synthetic_video(name: str, frames: int, seed: int) -> Video:
    """Object 0 slides right, object 2 stays, object 1 never appears (ids must skip it)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (frames, HEIGHT, WIDTH, 3), dtype=np.uint8)
    ids = np.zeros((frames, HEIGHT, WIDTH), np.uint8)
    for t in range(frames):
        ids[t, 5:15, 2 + t:12 + t] = 1
        ids[t, 30:41, 40:47] = 3
    images[ids == 1] = (200, 30, 30)
    images[ids == 3] = (30, 30, 200)
    visible = np.tile([1.0, 0.0, 0.75], (frames, 1))
    return Video(name, images, ids, visible, ["cube", "cone", "spl"], K)


def test_synthetic_video_is_consistent():
    video = synthetic_video("v", 3, seed=0)
    assert video.frames.shape == (3, HEIGHT, WIDTH, 3) and video.instance_ids.shape == (3, HEIGHT, WIDTH)
    assert set(np.unique(video.instance_ids)) == {0, 1, 3}
    assert (video.frames[video.instance_ids == 1] == (200, 30, 30)).all()
