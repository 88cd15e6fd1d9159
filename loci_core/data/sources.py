"""Which video source `--data` names: a CATER-format directory, a rosbag2 (with `--topic`) or a folder of
video files, opened as one torch Dataset type or the other with the same items, so commands that read
videos (train, eval, save, data stats/preview) take all three with the same options.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from loci_core.data.footage import VIDEO_SUFFIXES, FootageError, FootageVideos, VideoFolder

BAG_SUFFIXES = (".mcap", ".db3")


def add_footage_arguments(p: argparse.ArgumentParser) -> None:
    """The options for --data besides the CATER layout (README: "Your own camera")."""
    p.add_argument("--topic", help="--data is a rosbag2: its sensor_msgs/Image or CompressedImage topic")
    p.add_argument("--background", type=Path, metavar="IMG",
                   help="empty-scene image for every video (default: the data set's own; footage: the "
                        "per-pixel temporal median of each sequence)")
    p.add_argument("--cache", type=Path, metavar="DIR",
                   help="frame cache directory (default: DIR/cache, for a bag BAG.cache/ next to it)")
    p.add_argument("--gap", type=float, metavar="S",
                   help="--data is a rosbag2: a jump of more than S seconds between frames starts a new "
                        "sequence (default 0.5; /loci/scene_reset messages start one too)")


def data_options(args: argparse.Namespace) -> dict:
    """The footage options the user gave, as open_video_data keywords (stored in checkpoints for --resume)."""
    return {k: (str(v) if isinstance(v, Path) else v)
            for k in ("topic", "background", "cache", "gap") if (v := getattr(args, k, None)) is not None}


def data_kind(path: Path) -> str:
    """'cater', 'bag' or 'videos'."""
    path = Path(path)
    if not path.exists():
        raise FootageError(f"{path}: data set does not exist")
    if path.is_file():
        if path.suffix in BAG_SUFFIXES:
            return "bag"
        hint = " (give the folder that holds it)" if path.suffix.lower() in VIDEO_SUFFIXES else ""
        raise FootageError(f"{path}: not a data set directory, a folder of videos or a rosbag2{hint}")
    if (path / "metadata.yaml").is_file():
        return "bag"
    if (path / "lists").is_dir() or (path / "scenes").is_dir():
        return "cater"
    return "videos"


def open_video_data(path: str | Path, split: str = "train", size: tuple[int, int] = (240, 320),
                    clip_len: int | None = None, clip_start: str | int = "random", seed: int = 0,
                    topic: str | None = None, background: str | Path | None = None,
                    cache: str | Path | None = None, gap: float | None = None, min_frames: int = 2,
                    lead: int = 12):
    """A CaterVideos or FootageVideos over `path`; `seed` also draws the footage's train/test split. `lead`:
    for clip_start 'containment' (CATER data; footage takes random windows instead)."""
    from loci_core.data.dataset import CaterVideos

    path = Path(path)
    kind = data_kind(path)
    if kind != "bag" and (topic is not None or gap is not None):
        raise FootageError(f"{path}: --topic and --gap are for rosbag2 data, this is a "
                           f"{'CATER-format directory' if kind == 'cater' else 'folder of videos'}")
    if kind == "cater":
        return CaterVideos(path, split=split, size=size, clip_len=clip_len, clip_start=clip_start, seed=seed,
                           lead=lead, cache_dir=cache, background=background)
    if kind == "bag":
        from loci_core.data.bag_footage import DEFAULT_GAP_S, BagFootage

        source = BagFootage(path, topic, DEFAULT_GAP_S if gap is None else gap, cache_dir=cache)
    else:
        source = VideoFolder(path, cache_dir=cache)
    return FootageVideos(source, split=split, size=size, clip_len=clip_len, clip_start=clip_start, seed=seed,
                         background=background, min_frames=min_frames)
