"""`loci demo` (the README's `make demo`): the whole system on built-in, generated data.

1. generate a handful of CATER-style videos (`loci generate`),
2. write them into a rosbag2 (`loci bag make`),
3. start the tracker node with the released model and a recorder of its outputs,
4. replay the bag onto the node over real DDS (`loci bag play`),
5. turn the recorded outputs into an overlay video, score them against the ground truth (as
   `loci bag eval` does), and run `loci eval` (the model offline, CATER table and baselines) on the
   same videos.

Everything goes to `--out` (default demo_out/); every step runs the same command a user would.
DDS stays on this machine: discovery is limited to localhost and a private domain id is drawn.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from loci_core.allocator import keep_freed_memory
from loci_ros.bags import CAMERA_INFO_TOPIC, IMAGE_TOPIC, SCENE_RESET_TOPIC

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = REPO / "models" / "loci-cater-small.pt"
NAMESPACE = "/loci"
OUTPUT_TOPICS = [f"{NAMESPACE}/{name}" for name in ("detections", "masks", "debug_image", "markers")]
NODE_READY_TIMEOUT_S = 120.0
# Wall seconds the recorder is given to discover the node's publishers before playback starts.
DISCOVERY_GRACE_S = 2.0


class DemoError(RuntimeError):
    pass


def _log(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


class Steps:
    """Runs the demo's commands, each with its own log file, and times them."""

    def __init__(self, out: Path, env: dict):
        self.out, self.env, self.times = out, env, {}
        (out / "logs").mkdir(parents=True, exist_ok=True)

    def _cmd(self, args: list[str]) -> list[str]:
        return [sys.executable, "-m", *args]

    def run(self, name: str, args: list[str]) -> None:
        _log(f"{name}: {' '.join(args)}")
        start = time.monotonic()
        with open(self.out / "logs" / f"{name}.log", "w") as log:
            done = subprocess.run(self._cmd(args), cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.times[name] = time.monotonic() - start
        if done.returncode != 0:
            tail = (self.out / "logs" / f"{name}.log").read_text().splitlines()[-15:]
            raise DemoError(f"step '{name}' failed (exit {done.returncode}):\n" + "\n".join(tail))

    def start(self, name: str, args: list[str]) -> tuple[subprocess.Popen, Path]:
        _log(f"{name}: {' '.join(args)}")
        log_path = self.out / "logs" / f"{name}.log"
        log = open(log_path, "w")  # noqa: SIM115 - closed when the process is stopped
        proc = subprocess.Popen(self._cmd(args), cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        proc.log_file = log
        return proc, log_path


def _stop(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.log_file.close()
    return proc.returncode


def _wait_for_line(proc: subprocess.Popen, log_path: Path, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in log_path.read_text():
            return
        if proc.poll() is not None:
            raise DemoError(f"{log_path.stem} exited early:\n" + "\n".join(log_path.read_text().splitlines()[-15:]))
        time.sleep(0.2)
    raise DemoError(f"{log_path.stem} did not report '{needle}' within {timeout:.0f} s")


def _score_node_outputs(data: Path, scenes: Path, tracked: Path) -> tuple[dict, list[np.ndarray]]:
    """`loci bag eval`'s scores of the recorded label images, and the recorded overlays in stamp order."""
    from loci_core.evaluation.evaluate import EvalError
    from loci_ros.bags.evaluate import read_images, score_tracked_bag
    from loci_ros.bags.storage import BagError

    try:
        summary = score_tracked_bag(tracked, scenes, data, masks_topic=f"{NAMESPACE}/masks")
        overlays = read_images(tracked, f"{NAMESPACE}/debug_image")
    except (BagError, EvalError) as err:
        raise DemoError(f"the node's recorded outputs cannot be scored ({err}); see logs/tracker_node.log") from None
    return summary, [overlays[t] for t in sorted(overlays)]


def run_demo(out: Path, checkpoint: Path, videos: int, frames: int, seed: int, size: str, rate: float) -> dict:
    if not checkpoint.is_file():
        raise DemoError(f"checkpoint {checkpoint} not found (the released model lives in models/)")
    if out.exists() and any(out.iterdir()):
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_DOMAIN_ID=os.environ.get("ROS_DOMAIN_ID", str(random.SystemRandom().randint(101, 200))),
               ROS_LOG_DIR=str(out / "logs" / "ros"), PYTHONUNBUFFERED="1")
    steps = Steps(out, env)
    started = time.monotonic()
    data, scenes, tracked = out / "data", out / "scenes_bag", out / "tracked_bag"

    steps.run("generate", ["loci_core.cli", "generate", "--out", str(data), "--videos", str(videos),
                           "--seed", str(seed), "--size", size, "--frames", str(frames), "--workers", "2"])
    steps.run("bag_make", ["loci_core.cli", "bag", "make", "--data", str(data), "--out", str(scenes)])

    node, node_log = steps.start("tracker_node", [
        "loci_ros.tracker_node", "--ros-args", "--params-file", str(REPO / "config" / "tracker.yaml"),
        "-r", f"__ns:={NAMESPACE}", "-r", f"image:={IMAGE_TOPIC}", "-r", f"camera_info:={CAMERA_INFO_TOPIC}",
        "-r", f"scene_reset:={SCENE_RESET_TOPIC}",
        "-p", f"checkpoint:={checkpoint}", "-p", "input_reliability:=reliable"])
    recorder = None
    try:
        _wait_for_line(node, node_log, "ready", NODE_READY_TIMEOUT_S)
        recorder, rec_log = steps.start("record", ["loci_core.cli", "bag", "record", "--topics", *OUTPUT_TOPICS,
                                                   "--out", str(tracked)])
        time.sleep(DISCOVERY_GRACE_S)
        # Only what the node consumes: waiting for subscribers of the ground-truth topics would stall.
        steps.run("bag_play", ["loci_core.cli", "bag", "play", str(scenes), "--rate", str(rate),
                               "--topics", IMAGE_TOPIC, SCENE_RESET_TOPIC, "--wait-for-subscribers",
                               "--delay", "1.0"])
        time.sleep(DISCOVERY_GRACE_S)  # the node's answer to the last frames is still in flight
    finally:
        if recorder is not None:
            _stop(recorder)
        node_rc = _stop(node)
    _log(f"tracker node stopped (exit {node_rc})")

    summary, overlays = _score_node_outputs(data, scenes, tracked)
    if not overlays:
        raise DemoError("the node published no debug images; see logs/tracker_node.log")
    from loci_core.tools.visualize import write_video
    from loci_ros.bags.evaluate import markdown

    write_video(out / "overlay.mp4", overlays, fps=24.0 * rate)
    write_video(out / "overlay.gif", overlays[::3], fps=8.0)

    steps.run("eval", ["loci_core.cli", "eval", "--checkpoint", str(checkpoint), "--data", str(data),
                       "--split", "all", "--resize", "--out", str(out / "eval")])
    node_table = markdown(summary, "tracker node over DDS")
    offline_table = (out / "eval" / "results.md").read_text() if (out / "eval" / "results.md").exists() else ""
    (out / "results.md").write_text(f"# loci demo\n\n{node_table}\n\n## loci eval (offline, same videos)\n\n"
                                    f"{offline_table}\n")
    (out / "node_scores.json").write_text(json.dumps(summary, indent=2, default=float))
    summary["wall_s"] = time.monotonic() - started
    summary["step_s"] = steps.times
    print("\n" + "=" * 72)
    print(f"loci demo: {videos} generated video(s) of {frames} frames, {size}, tracked over ROS 2 DDS")
    print(f"model: {checkpoint.relative_to(REPO) if checkpoint.is_relative_to(REPO) else checkpoint}")
    print(node_table)
    if offline_table:
        print("\n" + offline_table.strip())
    print(f"\noutputs in {out}/: overlay.mp4, overlay.gif, results.md, eval/, scenes_bag/, tracked_bag/, logs/")
    print(f"total {summary['wall_s']:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in steps.times.items()) + ")")
    print("=" * 72)
    return summary


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo_out", help="output directory (replaced)")
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="Loci checkpoint (.pt)")
    p.add_argument("--videos", type=int, default=3)
    p.add_argument("--frames", type=int, default=301, help="frames per video (CATER: 301)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--size", default="320x240", help="camera image size WxH")
    p.add_argument("--rate", type=float, default=0.5, help="playback speed of the bag")


def _run(args) -> int:
    try:
        run_demo(Path(args.out).resolve(), Path(args.checkpoint).resolve(), args.videos, args.frames,
                 args.seed, args.size, args.rate)
    except DemoError as err:
        print(f"loci demo: {err}", file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="generate scenes, track them with the ROS node, write demo_out/",
                              description=__doc__.splitlines()[0])
    _add_arguments(p)
    p.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="loci demo", description=__doc__.splitlines()[0])
    _add_arguments(p)
    args = p.parse_args(argv)
    keep_freed_memory()
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
