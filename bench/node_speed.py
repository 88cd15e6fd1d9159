"""End-to-end speed of the tracker node against the bare OnlineTracker on the same frames, same run.

    .venv/bin/python bench/node_speed.py [--checkpoint C | --config config/models/cater-small.yaml]
        [--frames 30] [--repeats 2] [--blocks 20] [--block-frames 12] [--overdrive 1.5] [--threads 1]
        [--decode]
        [--json bench/results/node_speed.json]
    .venv/bin/python bench/node_speed.py --realtime [--seconds 60] [--fps 12] [--load-procs 2]
        [--node-settings auto legacy] [--checkpoint models/loci-cater-small.pt] [--json ...]

For each input size (80x60 and 320x240) the same generated CATER-style frames go through
  bare: `OnlineTracker.step` in this process (the model plus mapping results to input pixels), built from
        the node's parameters (config/tracker.yaml and the overrides below: same camera model, seed ...), and
  node: the `loci_tracker` node in its own process, over loopback DDS (reliable QoS, visibility threshold 0
        so every slot is reported, queue_frames 0 = real time),
with two sets of subscribers: `detections` alone (the issue's path, image -> detections; the node builds
only what somebody subscribes to) and all four outputs (detections, masks, debug_image, markers: a viewer
on everything, the worst case). Bare and node are timed in pairs, side by side, so that the machine's
slower and faster spells hit both alike:
  latency     lock step, `--repeats` passes over the frames: a bare step on frame i, then frame i published
              to the node and its outputs awaited; latency = image published -> detections received;
              lat.ratio = median over frames of latency / bare step time.
  throughput  `--blocks` blocks in turn: bare steps on `--block-frames` frames, then a camera publishing the
              same frames faster than the model runs (`--overdrive` x that block's bare rate) for as long as
              the bare steps took; the node tracks the newest frame; node period = time between completed
              frames (all subscribed outputs arrived); ratio = median over blocks of node period / bare
              step time (the target: <= 1.15), with its interquartile range.
The first frame of a row, which runs the model's warm-up calls, is left out.
The client takes the outputs as serialised bytes and reads only their stamps, as a C++ consumer (RViz)
pays microseconds to decode them; decoding in Python (--decode) cost this client 2.8 ms per MarkerArray of
17 markers (2-core Xeon VM, loaded), CPU the node then shares on a 2-core machine.
The node's own rate log line is printed too (stale frames it skipped while busy, time per frame).
Without --checkpoint a freshly initialised checkpoint of --config is used (same compute as a trained one).

--realtime: a camera on a busy computer. A 320x240 stream at --fps (12) goes to the node with every output
subscribed (reliable QoS, queue_frames 0: the node skips what it cannot keep up with), for --seconds alone and
then for --seconds beside --load-procs processes that each spin on a core. Per phase: the share of frames
answered (all four outputs arrived), latency percentiles (image published -> detections received) and the
node's model step time (median of its rate log lines, log_period 2 s). Each --node-settings runs in a fresh node
process: `auto` (torch_threads 0, omp_wait_policy auto: the node's defaults, one passive thread per core),
`legacy` (one thread per core with libgomp's spin-then-sleep wait policy, as the node ran before it chose them;
against `auto` the wait policy's part alone) and `one-thread` (torch_threads 1). The node's torch threads are
its own choice here (no OMP_NUM_THREADS from --threads). Default checkpoint: models/loci-cater-small.pt.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

    from loci_core.config import load_config
    from loci_core.model.checkpoint import save_checkpoint
    from loci_core.model.loci import Loci

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
    """Publishes frames to the node and times the outputs it subscribes to."""

    def __init__(self, decode: bool):
        import rclpy
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_srvs.srv import Trigger
        from vision_msgs.msg import Detection2DArray
        from visualization_msgs.msg import MarkerArray

        self.node = rclpy.create_node("loci_node_speed")
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub = self.node.create_publisher(Image, "image", self.qos)
        self.types = {"detections": Detection2DArray, "masks": Image, "debug_image": Image,
                      "markers": MarkerArray}
        self.arrival: dict[str, dict[int, float]] = {n: {} for n in OUTPUTS}
        self.last_arrival = 0.0
        self.subscriptions: dict[str, object] = {}
        self.decode = decode
        self.reset_client = self.node.create_client(Trigger, "reset")
        self.trigger = Trigger

    def subscribe(self, names: tuple[str, ...]) -> None:
        """Subscribe to exactly `names`, and wait until the node's publishers have seen the change."""
        for name in set(self.subscriptions) - set(names):
            self.node.destroy_subscription(self.subscriptions.pop(name))
        for name in set(names) - set(self.subscriptions):
            self.subscriptions[name] = self.node.create_subscription(self.types[name], name, self._store(name),
                                                                     self.qos, raw=not self.decode)
        if not self.spin_until(lambda: all(self.node.count_subscribers(n) == (n in names) for n in OUTPUTS),
                               timeout=30):
            raise RuntimeError("subscriptions did not settle")
        self.spin_until(lambda: False, timeout=0.5)  # the node's own graph view follows within this

    def _store(self, name):
        def callback(msg):
            if self.decode:
                sec = (msg.markers[0].header if name == "markers" else msg.header).stamp.sec
            else:  # CDR: 4-byte encapsulation, then the header's stamp (a MarkerArray: after its count)
                at = 8 if name == "markers" else 4
                sec = int.from_bytes(msg[at:at + 4], "little", signed=True)
            self.arrival[name][sec] = self.last_arrival = time.perf_counter()
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

    def _complete(self, stamp: int) -> bool:
        return all(stamp in self.arrival[n] for n in self.subscriptions)

    def send(self, frame: np.ndarray, stamp: int) -> float:
        """Publish one frame, wait for all subscribed outputs; the latency to its detections in seconds."""
        from std_msgs.msg import Header

        from loci_ros.image_conversion import numpy_to_image

        header = Header(frame_id="camera")
        header.stamp.sec = stamp
        msg = numpy_to_image(frame, "rgb8", header=header)
        t0 = time.perf_counter()
        self.pub.publish(msg)
        if not self.spin_until(lambda: self._complete(stamp), timeout=60):
            raise RuntimeError(f"no outputs for stamp {stamp}")
        return self.arrival["detections"][stamp] - t0

    def stream(self, frames: np.ndarray, rate_hz: float, seconds: float, first_stamp: int):
        """Publish `frames` (cycled) at `rate_hz` for `seconds`, as a camera would, then collect outputs.

        Returns (frames completed per second, latencies to detections in seconds, next free stamp)."""
        sent = self._publish_for(frames, rate_hz, seconds, first_stamp)
        # the frame being tracked when the camera stopped (and the newest one queued) still come out
        self._drain(quiet_s=max(0.05, 4 / rate_hz))
        complete = sorted(s for s in sent if s != first_stamp and self._complete(s))
        if len(complete) < 3:
            raise RuntimeError(f"only {len(complete)} frames came out of the node while streaming")
        done = [max(self.arrival[n][s] for n in self.subscriptions) for s in complete]
        rate = (len(done) - 1) / (done[-1] - done[0])
        latency = [self.arrival["detections"][s] - sent[s] for s in complete]
        return rate, latency, first_stamp + len(sent)

    def _publish_for(self, frames: np.ndarray, rate_hz: float, seconds: float, first_stamp: int) -> dict:
        """Publish `frames` (cycled) at `rate_hz` for `seconds`; {stamp: publication time}."""
        from loci_ros.image_conversion import numpy_to_image

        msgs = [numpy_to_image(f, "rgb8") for f in frames]
        sent: dict[int, float] = {}
        interval = 1.0 / rate_hz
        start = time.perf_counter()
        while (now := time.perf_counter()) - start < seconds:
            due = start + len(sent) * interval
            if now >= due:
                msg = msgs[len(sent) % len(msgs)]
                stamp = first_stamp + len(sent)
                msg.header.stamp.sec = stamp
                msg.header.frame_id = "camera"
                sent[stamp] = time.perf_counter()
                self.pub.publish(msg)
            else:
                self.executor.spin_once(timeout_sec=due - now)
        return sent

    def stream_all(self, frames: np.ndarray, rate_hz: float, seconds: float, first_stamp: int) -> None:
        """Stream as `stream` does, then wait until nothing more comes; `sent_at` = {stamp: publication time}."""
        self.sent_at = self._publish_for(frames, rate_hz, seconds, first_stamp)
        self._drain(quiet_s=1.0)

    def _drain(self, quiet_s: float) -> None:
        """Spin until no output has arrived for `quiet_s` seconds."""
        self.spin_until(lambda: time.perf_counter() - self.last_arrival > quiet_s, timeout=5.0)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def measure(tracker, client: NodeClient, frames: np.ndarray, stamp: int, args) -> tuple[dict, int]:
    """Lock-step latency and streaming throughput of the node with the client's current subscriptions, each
    paired with bare steps taken right next to it. Returns the row's numbers and the next free stamp.

    Pairing is what makes a 15 % line measurable on a shared VM: there the same step runs at 11-12 ms for a
    few hundred milliseconds, then at 16-18 ms for the next few hundred (seen on the 2-core AMD EPYC VM, one
    process, same frames), so bare and node timed in separate blocks of seconds differ by that alone."""
    tracker.reset()
    client.reset()
    bare, latency = [], []
    for i, frame in enumerate(np.concatenate([frames] * args.repeats)):
        b = _timed(tracker.step, frame)  # lock step: bare step, then the same frame through the node
        lat = client.send(frame, stamp + i)
        if i:  # the first frame runs the model's warm-up calls
            bare.append(b)
            latency.append(lat)
    stamp += len(frames) * args.repeats
    block_bare, block_node, stream_latency = [], [], []
    for j in range(args.blocks):  # throughput: short bare and streamed blocks in turn
        block = frames[(j * args.block_frames) % len(frames):][:args.block_frames]
        b = float(np.median([_timed(tracker.step, f) for f in block]))
        hz, lat, stamp = client.stream(block, args.overdrive / b, len(block) * b, stamp)
        block_bare.append(b)
        block_node.append(1 / hz)
        stream_latency += lat
    b, lt = 1000 * float(np.median(bare)), 1000 * float(np.median(latency))
    ratios = np.array(block_node) / np.array(block_bare)
    return {"bare_ms": b, "latency_ms": lt, "latency_p95_ms": 1000 * float(np.percentile(latency, 95)),
            "latency_ratio": float(np.median(np.array(latency) / np.array(bare))),
            "bare_hz": 1 / float(np.median(block_bare)), "node_hz": 1 / float(np.median(block_node)),
            "ratio": float(np.median(ratios)), "ratio_iqr": [float(q) for q in np.percentile(ratios, [25, 75])],
            "stream_latency_ms": 1000 * float(np.median(stream_latency)),
            "frames": len(bare), "blocks": args.blocks}, stamp


def _timed(step, frame) -> float:
    t0 = time.perf_counter()
    step(frame)
    return time.perf_counter() - t0


REALTIME_SIZE = (240, 320)
NODE_SETTINGS = ("auto", "legacy", "one-thread")
BUSY_LOOP = "while True:\n    pass\n"


def node_settings(name: str) -> dict:
    """Node parameters of a --node-settings name."""
    if name == "auto":
        return {"torch_threads": 0, "omp_wait_policy": "auto"}
    if name == "legacy":
        return {"torch_threads": len(os.sched_getaffinity(0)), "omp_wait_policy": "default"}
    if name == "one-thread":
        return {"torch_threads": 1, "omp_wait_policy": "auto"}
    raise ValueError(f"unknown node settings {name!r} (one of {', '.join(NODE_SETTINGS)})")


def start_node(params_file: Path, params: dict, log_path: Path, env: dict) -> subprocess.Popen:
    log = open(log_path, "w")  # noqa: SIM115 - the node process writes it until it ends
    return subprocess.Popen(
        [sys.executable, "-m", "loci_ros.tracker_node", "--ros-args", "--params-file", str(params_file),
         *[arg for name, value in params.items() for arg in ("-p", f"{name}:={value}")]],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)


def model_step_ms(log_text: str) -> list[float]:
    """The mean model step (ms) of each of the node's rate log lines, in order."""
    return [float(m) for m in re.findall(r"tracking at [\d.]+ Hz: ([\d.]+) ms model", log_text)]


def realtime_phase(client: NodeClient, frames: np.ndarray, args, stamp: int, log_path: Path) -> tuple[dict, int]:
    """Stream for args.seconds at args.fps; the phase's numbers and the next free stamp."""
    lines_before = len(model_step_ms(log_path.read_text()))
    client.stream_all(frames, args.fps, args.seconds, stamp)
    sent = client.sent_at
    answered = [s for s in sent if client._complete(s)]
    latency = np.array([client.arrival["detections"][s] - sent[s] for s in answered]) * 1000
    steps = model_step_ms(log_path.read_text())[lines_before:]
    pct = {f"latency_p{q}_ms": float(np.percentile(latency, q)) if len(latency) else float("nan")
           for q in (50, 90, 99)}
    return {"sent": len(sent), "answered": len(answered), "answered_share": len(answered) / max(1, len(sent)),
            **pct, "latency_max_ms": float(latency.max()) if len(latency) else float("nan"),
            "step_ms_median": float(np.median(steps)) if steps else float("nan"),
            "step_ms_max": float(max(steps)) if steps else float("nan")}, stamp + len(sent)


def realtime(args) -> int:
    import rclpy

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    workdir = Path(tempfile.mkdtemp(prefix="loci-node-realtime-"))
    checkpoint = args.checkpoint or REPO / "models" / "loci-cater-small.pt"
    frames = make_frames(args.frames)[REALTIME_SIZE]
    params_file = REPO / "config" / "tracker.yaml"
    rows = []
    rclpy.init()
    try:
        for name in args.node_settings:
            params = {"checkpoint": str(checkpoint), "input_reliability": "reliable", "log_period": 2.0,
                      **node_settings(name)}
            log_path = workdir / f"node-{name}.log"
            node = start_node(params_file, params, log_path, env)
            client = NodeClient(decode=False)
            load: list[subprocess.Popen] = []
            try:
                client.wait_ready(node)
                client.subscribe(OUTPUTS)
                client.send(frames[0], 1)  # warm-up: the model's first calls
                stamp = 2
                for phase in ("alone", "loaded"):
                    if phase == "loaded":
                        load = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(args.load_procs)]
                        time.sleep(args.settle)
                    row, stamp = realtime_phase(client, frames, args, stamp, log_path)
                    rows.append({"settings": name, "phase": phase, "load_procs": len(load), "fps": args.fps,
                                 "seconds": args.seconds, **row})
                    print(f"{name:>7} {phase:>7}: answered {row['answered']}/{row['sent']} "
                          f"({100 * row['answered_share']:.1f} %), latency p50/p90/p99 {row['latency_p50_ms']:.0f}/"
                          f"{row['latency_p90_ms']:.0f}/{row['latency_p99_ms']:.0f} ms (max "
                          f"{row['latency_max_ms']:.0f}), model step median {row['step_ms_median']:.1f} ms "
                          f"(max of 2 s means {row['step_ms_max']:.1f})", flush=True)
            finally:
                for p in load:
                    p.kill()
                    p.wait()
                client.close()
                node.terminate()
                node.wait(timeout=30)
            ready = [line for line in log_path.read_text().splitlines() if "ready:" in line or "threads" in line]
            for line in ready:
                print("   node:", line.split("]: ", 1)[-1][:240])
    finally:
        rclpy.try_shutdown()
    for name in args.node_settings:
        alone, loaded = [r for r in rows if r["settings"] == name]
        print(f"{name}: model step under load / alone = {loaded['step_ms_median'] / alone['step_ms_median']:.2f}x "
              f"(target <= 3); answered alone {100 * alone['answered_share']:.1f} % (target >= 95)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="checkpoint to run (default: fresh one of --config)")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "models" / "cater-small.yaml")
    parser.add_argument("--frames", type=int, default=30, help="length of the generated video (per input size)")
    parser.add_argument("--repeats", type=int, default=2, help="lock-step passes over the frames")
    parser.add_argument("--blocks", type=int, default=20, help="throughput blocks (bare, then streamed) per row")
    parser.add_argument("--block-frames", type=int, default=12, help="frames per throughput block")
    parser.add_argument("--overdrive", type=float, default=1.5,
                        help="throughput streams publish at this multiple of the bare tracker's rate")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, in this process and the node")
    parser.add_argument("--decode", action="store_true",
                        help="the client decodes every output into Python messages (default: stamps only)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--realtime", action="store_true", help="the real-time scenario (see above) instead")
    parser.add_argument("--seconds", type=float, default=60.0, help="--realtime: length of each phase")
    parser.add_argument("--fps", type=float, default=12.0, help="--realtime: camera rate")
    parser.add_argument("--load-procs", type=int, default=2, help="--realtime: busy processes in the loaded phase")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="--realtime: seconds between starting the load and streaming")
    parser.add_argument("--node-settings", nargs="+", default=["auto", "legacy"], choices=NODE_SETTINGS,
                        help="--realtime: node thread settings to compare, each in a fresh node")
    args = parser.parse_args()
    if args.realtime:
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
        return realtime(args)

    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    import rclpy
    import torch

    from loci_ros.bags.track import node_parameters
    from loci_ros.tracker_setup import make_tracker

    torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="loci-node-speed-"))
    checkpoint = args.checkpoint or make_checkpoint(args.config, workdir)
    frames = make_frames(args.frames)
    params = {"checkpoint": str(checkpoint), "input_reliability": "reliable", "visibility_threshold": 0.0,
              "log_period": 5.0}
    params_file = REPO / "config" / "tracker.yaml"
    # the bare tracker is the node's own: same parameters (camera model, seed, background ...)
    tracker = make_tracker(node_parameters(params_file, params))

    log = open(workdir / "node.log", "w")  # noqa: SIM115 - the node process writes it until the end
    node = subprocess.Popen(
        [sys.executable, "-m", "loci_ros.tracker_node", "--ros-args", "--params-file", str(params_file),
         *[arg for name, value in params.items() for arg in ("-p", f"{name}:={value}")]],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    rows, client = [], None
    try:
        rclpy.init()
        client = NodeClient(args.decode)
        client.wait_ready(node)
        stamp = 1
        for size in SIZES:
            for outputs in (("detections",), OUTPUTS):
                client.subscribe(outputs)
                row, stamp = measure(tracker, client, frames[size], stamp, args)
                model_h, model_w = tracker.resolution
                rows.append({"input": f"{size[1]}x{size[0]}", "outputs": "+".join(outputs),
                             "model": f"{model_w}x{model_h}", "slots": tracker.num_slots, **row,
                             "threads": args.threads, "overdrive": args.overdrive, "client_decodes": args.decode})
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
          f"torch threads {args.threads}; per row {rows[0]['frames']} lock-step frames and {args.blocks} blocks "
          f"of {args.block_frames} frames; client "
          f"{'decodes the outputs' if args.decode else 'reads stamps only'}")
    print(f"{'':17} {'lock step':-^36} | {'throughput (blocks)':-^52}")
    print(f"{'input':>8} {'outputs':>8} {'bare ms':>8} {'latency':>8} {'p95':>6} {'ratio':>6} | {'bare Hz':>8} "
          f"{'node Hz':>8} {'ratio':>6} {'IQR':>10} {'latency':>8}  (target: ratio <= {TARGET_RATIO})")
    for r in rows:
        print(f"{r['input']:>8} {'all 4' if '+' in r['outputs'] else r['outputs'][:8]:>8} {r['bare_ms']:8.2f} "
              f"{r['latency_ms']:8.2f} {r['latency_p95_ms']:6.1f} {r['latency_ratio']:6.3f} | {r['bare_hz']:8.1f} "
              f"{r['node_hz']:8.1f} {r['ratio']:6.3f} {r['ratio_iqr'][0]:4.2f}-{r['ratio_iqr'][1]:4.2f} "
              f"{r['stream_latency_ms']:8.2f}")
    rate_lines = [line for line in (workdir / "node.log").read_text().splitlines() if "tracking at" in line]
    if rate_lines:
        print("node's own log:", rate_lines[-1].split("]: ", 1)[-1])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
