"""`loci bag make | play | record | track | eval`: rosbag2 tools that need no ros2cli.

Only argparse here; the work (and the heavy imports) happens in loci_ros.bags.* when a command runs.
Topic layout of made bags: see loci_ros/bags/__init__.py.
"""

from __future__ import annotations

import argparse
import sys

from loci_core.allocator import keep_freed_memory


def register(subparsers) -> None:
    bag = subparsers.add_parser("bag", help="make, play, record, track and score rosbag2 bags",
                                description="rosbag2 tools (mcap or sqlite3, format 9) without ros2cli.")
    sub = bag.add_subparsers(dest="bag_command", metavar="BAG_COMMAND", required=True)

    make = sub.add_parser("make", help="CATER-style videos -> bag with camera and ground-truth topics")
    make.add_argument("--data", required=True, help="dataset root (CATER layout: videos/, scenes/, lists/)")
    make.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    make.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    make.add_argument("--fps", type=float, default=24.0, help="frame rate of the stamps (CATER: 24)")
    which = make.add_mutually_exclusive_group()
    which.add_argument("--videos", type=int, default=None, metavar="N", help="only the first N videos")
    which.add_argument("--video", action="append", default=None, metavar="NAME",
                       help="this video only (repeatable; name with or without .avi)")
    make.add_argument("--split", choices=("train", "test", "all"), default="all",
                      help="which list of the dataset (test = lists/localize/val.txt)")
    make.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                      help="resize frames and masks (default: the videos' size)")
    make.set_defaults(func=_make)

    play = sub.add_parser("play", help="publish a bag with its original timing and /clock")
    play.add_argument("bag")
    play.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    play.add_argument("--loop", action="store_true", help="start again at the end, until Ctrl-C")
    play.add_argument("--topics", nargs="+", default=None, help="only these topics")
    play.add_argument("--remap", nargs="+", default=None, metavar="FROM:=TO",
                      help="publish a topic under another name")
    play.add_argument("--delay", type=float, default=0.5,
                      help="seconds between creating the publishers and the first message (DDS discovery)")
    play.add_argument("--no-clock", dest="clock", action="store_false", help="do not publish /clock")
    play.add_argument("--wait-for-subscribers", action="store_true",
                      help="start only when every played topic has a subscriber")
    play.set_defaults(func=_play)

    rec = sub.add_parser("record", help="record topics into a new bag (Ctrl-C or --duration stops)")
    rec.add_argument("--topics", nargs="+", required=True)
    rec.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    rec.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    rec.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    rec.add_argument("--max-messages", type=int, default=None, help="stop after this many messages")
    rec.add_argument("--use-sim-time", action="store_true", help="stamp with /clock time")
    rec.set_defaults(func=_record)

    track = sub.add_parser("track", help="run the tracker over a bag offline; outputs into a new bag")
    track.add_argument("bag")
    track.add_argument("--checkpoint", default=None, help="Loci checkpoint (.pt); overrides the params file")
    track.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    track.add_argument("--params-file", default=None,
                       help="node parameters file (loci_tracker: ros__parameters:), as config/tracker.yaml")
    track.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (overrides the params file)")
    track.add_argument("--namespace", default="/loci", help="output topics go to NAMESPACE/detections etc.")
    track.add_argument("--image-topic", default="/camera/image_raw")
    track.add_argument("--camera-info-topic", default="/camera/camera_info")
    track.add_argument("--no-scene-reset", dest="reset_on_scene", action="store_false",
                       help="do not reset the tracker at /loci/scene_reset (a new video)")
    track.add_argument("--gap", type=float, default=None, metavar="S",
                       help="reset where bag time jumps by more than S seconds between images, where training "
                            "splits footage into sequences (default 0.5, as training; 0: never)")
    track.add_argument("--no-copy", dest="copy_input", action="store_false",
                       help="write only the tracker outputs, not the input topics")
    track.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    track.set_defaults(func=_track)

    ev = sub.add_parser("eval", help="score the label images of a tracked bag against the data set's ground truth")
    ev.add_argument("bag", metavar="TRACKED_BAG",
                    help="bag with the tracker's label images (`loci bag track` or `loci bag record`)")
    ev.add_argument("--scenes", required=True, metavar="SCENES_BAG",
                    help="the bag `loci bag make` wrote from --data and the tracker was fed from")
    ev.add_argument("--data", required=True, help="the CATER-format data set, with ground_truth/")
    ev.add_argument("--out", default=None, help="directory for results.json and results.md "
                                                "(default: <TRACKED_BAG>-eval next to the bag)")
    ev.add_argument("--masks-topic", default="/loci/masks",
                    help="mono8 label images: 0 = background, k + 1 = entity k")
    ev.add_argument("--detections-topic", default=None,
                    help="Detection2DArray whose box centres give the entity positions, also of hidden entities "
                         "(default: <masks namespace>/detections if the bag has it; '' = label image centroids)")
    ev.set_defaults(func=_eval)


def _fail(err: Exception | str, code: int = 1) -> int:
    print(f"loci bag: {err}", file=sys.stderr)
    return code


def _make(args: argparse.Namespace) -> int:
    from loci_ros.bags.make import write_videos
    from loci_ros.bags.sources import cater_videos
    from loci_ros.bags.storage import BagError

    try:
        videos = cater_videos(args.data, split=args.split, limit=args.videos, names=args.video,
                              size=tuple(args.size) if args.size else None)
        summary = write_videos(videos, args.out, storage=args.storage, fps=args.fps)
    except (BagError, FileNotFoundError, ValueError) as err:
        return _fail(err)
    print(f"wrote {summary['bag']}: {len(summary['videos'])} videos, {summary['frames']} frames, "
          f"{summary['messages']} messages")
    return 0


def _play(args: argparse.Namespace) -> int:
    from loci_ros.bags.player import play
    from loci_ros.bags.storage import BagError

    try:
        stats = play(args.bag, rate=args.rate, loop=args.loop, topics=args.topics, delay=args.delay,
                     clock=args.clock, remaps=args.remap, wait_for_subscribers=args.wait_for_subscribers)
    except (BagError, ValueError) as err:
        return _fail(err)
    total = sum(stats.published.values())
    print(f"played {total} messages ({stats.bag_s:.2f} s of bag time) in {stats.wall_s:.2f} s, "
          f"{stats.loops} pass(es)")
    return 0


def _record(args: argparse.Namespace) -> int:
    from loci_ros.bags.recorder import record
    from loci_ros.bags.storage import BagError

    try:
        stats = record(args.topics, args.out, storage=args.storage, duration=args.duration,
                       max_messages=args.max_messages, use_sim_time=args.use_sim_time)
    except (BagError, ValueError) as err:
        return _fail(err)
    counts = ", ".join(f"{t}: {n}" for t, n in stats.recorded.items())
    print(f"recorded into {args.out} in {stats.wall_s:.1f} s ({counts})")
    return 0


def _track(args: argparse.Namespace) -> int:
    from loci_ros.bags.storage import BagError
    from loci_ros.bags.track import track_bag

    try:
        stats = track_bag(args.bag, args.out, checkpoint=args.checkpoint, params_file=args.params_file,
                          storage=args.storage, namespace=args.namespace, image_topic=args.image_topic,
                          camera_info_topic=args.camera_info_topic, reset_on_scene=args.reset_on_scene,
                          copy_input=args.copy_input, device=args.device,
                          **({} if args.gap is None else {"gap_s": args.gap or None}))
    except (BagError, FileNotFoundError, ValueError, RuntimeError, KeyError) as err:
        return _fail(err)
    print(f"tracked {stats.frames} frames ({stats.resets} scene resets) into {args.out}: "
          + ", ".join(f"{t}: {n}" for t, n in stats.written.items()))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from loci_core.data.reader import CaterFormatError
    from loci_core.evaluation.evaluate import EvalError
    from loci_ros.bags.evaluate import default_out, report, score_tracked_bag, write_results
    from loci_ros.bags.storage import BagError
    from loci_ros.image_conversion import ImageLayoutError

    out = args.out or default_out(args.bag)
    try:
        summary = score_tracked_bag(args.bag, args.scenes, args.data, masks_topic=args.masks_topic,
                                    detections_topic=args.detections_topic)
        write_results(summary, out)
    except (BagError, EvalError, CaterFormatError, ImageLayoutError, OSError) as err:
        # 2 as `loci eval` exits for inputs it cannot score, so scripts running both treat them alike
        return _fail(" ".join(str(err).split()), code=2)
    print(report(summary))
    print(f"\nwritten to {out}/ (results.json, results.md)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m loci_ros.bag_commands make|play|record|track|eval ...`: the bag tools without the rest of
    the `loci` command (whose other sub-commands import torch at start-up)."""
    parser = argparse.ArgumentParser(prog="loci")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bag", *(sys.argv[1:] if argv is None else argv)])
    keep_freed_memory()
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
