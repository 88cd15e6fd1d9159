"""End-to-end speed of the tracker node against the bare OnlineTracker on the same frames, same run.

    .venv/bin/python bench/node_speed.py [--checkpoint C | --config config/models/cater-small.yaml]
        [--frames 30] [--repeats 2] [--threads 1] [--json bench/results/node_speed.json]

For each input size (80x60 and 320x240) the same generated CATER-style frames go through
  bare: `OnlineTracker.step` in this process (the model plus mapping results to input pixels), and
  node: the `loci_tracker` node in its own process, over loopback DDS (reliable QoS, all four outputs on,
        visibility threshold 0 so every slot is reported): publish a frame, wait for all four outputs.
Bare and node alternate frame by frame (`--repeats` streams per size) so machine load hits both alike.
Reported per frame
(medians over frames; the first frame of a stream, which includes the warm-up calls, is left out):
  latency  image published -> detections received;
  period   image published -> all four outputs received (the lock-step frame time; 1/period = Hz);
  ratio    period / bare step time (the target is <= 1.15); lat.ratio = latency / bare step time.
The node's own rate log line is printed too (its averages include each stream's first frame, which runs the
model's warm-up calls).
Without --checkpoint a freshly initialised checkpoint of --config is used (same compute as a trained one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SIZES = ((60, 80), (240, 320))
TARGET_RATIO = 1.15
OUTPUTS = ("detections", "masks", "debug_image", "markers")


def make_checkpoint(config: Path, directory: Path) -> Path:
    import torch

    from loci_core.checkpoint import save_checkpoint
    from loci_core.config import load_config
    from loci_core.model import Loci

    cfg = load_config(config)
    torch.manual_seed(0)
    return save_checkpoint(directory / "bench.pt", Loci(cfg.model), cfg)


def make_frames(count: int) -> dict[tuple[int, int], np.ndarray]:
    """One generated video at 320x240 and the same video shrunk to 80x60: {size: (T, H, W, 3) uint8}."""
    from loci_core.data.renderer import Renderer
    from loci_core.data.sampler import sample_scene, video_rng

    big = Renderer(SIZES[-1]).render(sample_scene(video_rng(3, 0), num_frames=count, jitter=False)).rgb
    out = {}
    for h, w in SIZES:
        out[(h, w)] = big if (h, w) == big.shape[1:3] else np.stack(
            [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in big])
    return out


class NodeClient:
    """Publishes frames to the node and times its outputs."""

    def __init__(self):
        import rclpy
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_srvs.srv import Trigger
        from vision_msgs.msg import Detection2DArray
        from visualization_msgs.msg import MarkerArray

        self.rclpy = rclpy
        self.node = rclpy.create_node("loci_node_speed")
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub = self.node.create_publisher(Image, "image", qos)
        self.arrival: dict[str, dict[int, float]] = {n: {} for n in OUTPUTS}
        types = {"detections": Detection2DArray, "masks": Image, "debug_image": Image, "markers": MarkerArray}
        for name, msg_type in types.items():
            self.node.create_subscription(msg_type, name, self._store(name), qos)
        self.reset_client = self.node.create_client(Trigger, "reset")
        self.trigger = Trigger

    def _store(self, name):
        def callback(msg):
            header = msg.markers[0].header if name == "markers" else msg.header
            self.arrival[name][header.stamp.sec] = time.perf_counter()
        return callback

    def spin_until(self, condition, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                return False
            self.executor.spin_once(timeout_sec=0.01)
        return True

    def wait_ready(self, process) -> None:
        ready = self.spin_until(lambda: process.poll() is not None or (
            self.pub.get_subscription_count() > 0 and self.reset_client.service_is_ready()
            and all(self.node.count_publishers(n) > 0 for n in OUTPUTS)), timeout=120)
        if not ready or process.poll() is not None:
            raise RuntimeError("the tracker node did not start")

    def reset(self) -> None:
        future = self.reset_client.call_async(self.trigger.Request())
        if not self.spin_until(future.done, timeout=30):
            raise RuntimeError("reset service did not answer")

    def send(self, frame: np.ndarray, stamp: int) -> tuple[float, float]:
        """Publish one frame; (latency to detections, time to all four outputs) in seconds."""
        from std_msgs.msg import Header

        from loci_ros.image_conversion import numpy_to_image

        header = Header(frame_id="camera")
        header.stamp.sec = stamp
        msg = numpy_to_image(frame, "rgb8", header=header)
        t0 = time.perf_counter()
        self.pub.publish(msg)
        if not self.spin_until(lambda: all(stamp in self.arrival[n] for n in OUTPUTS), timeout=60):
            raise RuntimeError(f"no outputs for stamp {stamp}")
        return self.arrival["detections"][stamp] - t0, max(self.arrival[n][stamp] for n in OUTPUTS) - t0

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def measure(tracker, client: NodeClient, frames: np.ndarray, first_stamp: int):
    """One stream through both, frame by frame alternating, so load changes hit both alike.

    Returns per-frame bare step times, node latencies and node periods (seconds), first frame left out."""
    tracker.reset()
    client.reset()
    bare, latency, period = [], [], []
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        tracker.step(frame)
        bare.append(time.perf_counter() - t0)
        lat, per = client.send(frame, first_stamp + i)
        latency.append(lat)
        period.append(per)
    return bare[1:], latency[1:], period[1:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="checkpoint to run (default: fresh one of --config)")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "models" / "cater-small.yaml")
    parser.add_argument("--frames", type=int, default=30, help="frames per pass")
    parser.add_argument("--repeats", type=int, default=2, help="streams per size")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, in this process and the node")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    import rclpy
    import torch

    from loci_core.tracker import OnlineTracker

    torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="loci-node-speed-"))
    checkpoint = args.checkpoint or make_checkpoint(args.config, workdir)
    frames = make_frames(args.frames)
    tracker = OnlineTracker.from_checkpoint(checkpoint, visibility_threshold=0.0)

    log = open(workdir / "node.log", "w")  # noqa: SIM115 - the node process writes it until the end
    node = subprocess.Popen(
        [sys.executable, "-m", "loci_ros.tracker_node", "--ros-args", "--params-file",
         str(REPO / "config" / "tracker.yaml"), "-p", f"checkpoint:={checkpoint}",
         "-p", "input_reliability:=reliable", "-p", "visibility_threshold:=0.0", "-p", "log_period:=5.0"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    rows, client = [], None
    try:
        rclpy.init()
        client = NodeClient()
        client.wait_ready(node)
        stamp = 1
        for size in SIZES:
            bare, latency, period = [], [], []
            for _ in range(args.repeats):
                b, lat, per = measure(tracker, client, frames[size], stamp)
                stamp += len(frames[size])
                bare += b
                latency += lat
                period += per
            b, lt, pr = (1000 * float(np.median(v)) for v in (bare, latency, period))
            model_h, model_w = tracker.resolution
            rows.append({"input": f"{size[1]}x{size[0]}", "model": f"{model_w}x{model_h}",
                         "slots": tracker.num_slots, "bare_ms": b, "latency_ms": lt,
                         "latency_p95_ms": 1000 * float(np.percentile(latency, 95)), "period_ms": pr,
                         "node_hz": 1000 / pr, "bare_hz": 1000 / b, "ratio": pr / b, "latency_ratio": lt / b,
                         "frames": len(bare), "threads": args.threads})
    finally:
        try:
            if client is not None:
                client.close()
            rclpy.try_shutdown()
        finally:
            node.terminate()
            node.wait(timeout=30)
            log.close()

    print(f"checkpoint {checkpoint} ({args.config.name if not args.checkpoint else 'given'}), "
          f"torch threads {args.threads}, {rows[0]['frames']} frames per size")
    print(f"{'input':>8} {'bare ms':>8} {'latency ms':>11} {'p95 ms':>7} {'period ms':>10} {'node Hz':>8} "
          f"{'ratio':>6} {'lat.ratio':>9}  (target: ratio <= {TARGET_RATIO})")
    for r in rows:
        print(f"{r['input']:>8} {r['bare_ms']:8.2f} {r['latency_ms']:11.2f} {r['latency_p95_ms']:7.2f} "
              f"{r['period_ms']:10.2f} {r['node_hz']:8.1f} {r['ratio']:6.3f} {r['latency_ratio']:9.3f}")
    rate_lines = [line for line in (workdir / "node.log").read_text().splitlines() if "tracking at" in line]
    if rate_lines:
        print("node's own log:", rate_lines[-1].split("]: ", 1)[-1])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
