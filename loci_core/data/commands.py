"""CLI: `loci generate`, `loci data preview`, `loci data stats`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _size(text: str) -> tuple[int, int]:
    """'320x240' (W x H, like CATER's folder names) -> (H, W)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"size must look like 320x240 (width x height), got {text!r}"
        ) from err
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return h, w


def register(subparsers) -> None:
    gen = subparsers.add_parser(
        "generate", help="generate a CATER-style data set (videos, scenes, ground truth)",
        description="Generate CATER-style videos in CATER's on-disk layout, with instance masks, per-object "
                    "states and the empty-scene background as extra ground truth (docs/cater.md).")
    gen.add_argument("--out", required=True, type=Path, help="output directory")
    gen.add_argument("--videos", type=int, default=10, help="number of videos")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--size", type=_size, default=(240, 320), help="WxH, default 320x240 (CATER)")
    gen.add_argument("--frames", type=int, default=301, help="frames per video (CATER: 301 = frames 0..300)")
    gen.add_argument("--moving-camera", action="store_true", help="CATER's moving-camera variant")
    gen.add_argument(
        "--no-jitter", action="store_true", help="exactly the CATER camera (no per-video jitter)"
    )
    gen.add_argument("--workers", type=int, default=1, help="parallel processes")
    gen.add_argument("--lossless", action="store_true", help="store FFV1 instead of MJPG in the .avi")
    gen.add_argument("--supersample", type=int, default=1, help="odd anti-aliasing factor (colours only)")
    gen.set_defaults(func=_generate)

    from loci_core.data.sources import add_footage_arguments

    data = subparsers.add_parser("data", help="inspect data sets: CATER-format, video folders, rosbag2 topics",
                                 description="Inspect a data set: a contact sheet of one video, or statistics "
                                             "of its sequences and of the snitch's containment.")
    sub = data.add_subparsers(dest="data_command", metavar="{preview,stats}")
    prev = sub.add_parser("preview", help="contact sheet PNG + animated GIF of one video with masks overlaid")
    prev.add_argument("dir", type=Path)
    prev.add_argument("--video", help="video name (default: the first in the data set)")
    prev.add_argument("--out", type=Path, help="PNG path (default DIR/preview.png; the GIF goes next to it)")
    prev.add_argument("--no-gif", action="store_true")
    prev.add_argument("--size", type=_size, default=(240, 320), help="footage: frame size shown, WxH")
    add_footage_arguments(prev)
    prev.set_defaults(func=_preview)
    stats = sub.add_parser("stats", help="snitch containment statistics (docs/cater.md)")
    stats.add_argument("dir", type=Path, nargs="?", help="data set directory")
    stats.add_argument("--simulate", type=int, metavar="N", help="sample N scenes instead of reading DIR")
    stats.add_argument("--seed", type=int, default=0, help="for --simulate; footage: the split's seed "
                                                            "(train.seed)")
    add_footage_arguments(stats)
    stats.add_argument("--frames", type=int, default=301)
    stats.set_defaults(func=_stats)


def _fail(err: Exception) -> int:
    print(f"error: {err}", file=sys.stderr)
    return 1


def _generate(args) -> int:
    from loci_core.data.generate import GenerateOptions, generate_dataset

    if args.videos < 1 or args.frames < 1 or args.workers < 1:
        return _fail(ValueError("--videos, --frames and --workers must be at least 1"))
    if args.supersample < 1 or args.supersample % 2 == 0:
        return _fail(ValueError("--supersample must be an odd positive integer"))
    opts = GenerateOptions(
        size=args.size,
        frames=args.frames,
        jitter=not args.no_jitter,
        moving_camera=args.moving_camera,
        lossless=args.lossless,
        supersample=args.supersample,
    )
    try:
        labels = generate_dataset(args.out, args.videos, args.seed, opts, workers=args.workers)
    except OSError as err:
        return _fail(err)
    print(f"wrote {len(labels)} videos to {args.out}")
    return 0


def _footage(args, size=(240, 320), seed=0):
    """The footage dataset DIR names, or None for a CATER-format directory."""
    from loci_core.data.sources import data_kind, data_options, open_video_data

    options = data_options(args)
    if data_kind(args.dir) == "cater" and not {"topic", "gap"} & set(options):
        return None
    return open_video_data(args.dir, split="all", size=size, seed=seed, **options)


def _preview(args) -> int:
    from loci_core.data.preview import animated_gif, contact_sheet, footage_preview
    from loci_core.data.reader import CaterFormatError, read_split

    try:
        footage = _footage(args, args.size)
        if footage is not None:
            name = args.video or footage.names[0]
            if name not in footage.names:
                raise CaterFormatError(f"{args.dir}: no sequence {name!r} (it has {', '.join(footage.names[:10])})")
            for path in footage_preview(footage, name, args.out or _default_preview(args), gif=not args.no_gif):
                print(f"wrote {path}")
            print(f"background: {footage.background_source()}")
            return 0
        name = args.video or read_split(args.dir, "all")[0].name
        png = args.out or args.dir / "preview.png"
        contact_sheet(args.dir, name, png)
        print(f"wrote {png}")
        if not args.no_gif:
            gif = animated_gif(args.dir, name, Path(png).with_suffix(".gif"))
            print(f"wrote {gif}")
    except (CaterFormatError, IndexError, OSError) as err:
        return _fail(err)
    return 0


def _default_preview(args) -> Path:
    """Next to a bag (which is a directory of its own files), inside a video folder."""
    from loci_core.data.sources import data_kind

    return (args.dir.parent / f"{args.dir.name}-preview.png" if data_kind(args.dir) == "bag"
            else args.dir / "preview.png")


def _stats(args) -> int:
    from loci_core.data.reader import CaterFormatError
    from loci_core.data.stats import directory_stats, footage_table, format_table, simulate

    try:
        footage = _footage(args, seed=args.seed) if args.dir is not None and not args.simulate else None
        if footage is not None:
            print(footage_table(footage, args.seed))
            return 0
        if args.simulate:
            result = simulate(args.simulate, args.seed, args.frames, progress=True)
        elif args.dir is not None:
            result = directory_stats(args.dir, progress=True)
        else:
            return _fail(ValueError("give a data set DIR or --simulate N"))
    except (CaterFormatError, OSError, ValueError) as err:
        return _fail(err)
    print(format_table(result))
    return 0
