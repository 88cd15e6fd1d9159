"""`loci bag record`: subscribe to topics and write the serialized messages into a new bag.

Subscriptions take raw CDR bytes (`raw=True`), so nothing is decoded. A topic is subscribed as soon
as it appears in the ROS graph, with its publishers' type; the QoS follows the publishers (best
effort if any publisher is best effort, else reliable), as `ros2 bag record` does. Messages are
stamped with the receive time of the node's clock (sim time with `use_sim_time`).
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from loci_ros.bags.rosnode import message_class, ros_node, stop_on_signals
from loci_ros.bags.storage import BagWriter
from loci_ros.vision_types import typestore

# How often (wall seconds) the ROS graph is checked for requested topics that appeared.
DISCOVERY_PERIOD_S = 0.1
QUEUE_DEPTH = 100


@dataclass
class RecordStats:
    recorded: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0


def _qos_for(node, topic: str):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    infos = node.get_publishers_info_by_topic(topic)
    best_effort = any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos)
    reliability = ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE
    return QoSProfile(depth=QUEUE_DEPTH, reliability=reliability)


def record(topics: list[str], out: str | Path, storage: str = "mcap", duration: float | None = None,
           max_messages: int | None = None, use_sim_time: bool = False,
           stop: threading.Event | None = None, ready: threading.Event | None = None) -> RecordStats:
    """Record `topics` into a new bag at `out` until `duration` wall seconds passed, `max_messages` were
    written, `stop` is set, or SIGINT/SIGTERM arrives. `ready` is set once every topic is subscribed."""
    if not topics:
        raise ValueError("no topics to record")
    names = [t if t.startswith("/") else "/" + t for t in topics]
    stop = stop or threading.Event()
    stats = RecordStats(recorded={t: 0 for t in names})
    with BagWriter(out, storage) as bag, ros_node("loci_bag_recorder", use_sim_time) as node, \
            stop_on_signals(stop):
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=node.context)
        executor.add_node(node)
        clock = node.get_clock()
        pending = set(names)

        def writer(topic: str, msgtype: str):
            def on_message(raw: bytes) -> None:
                bag.write(topic, msgtype, clock.now().nanoseconds, raw)
                stats.recorded[topic] += 1
                if max_messages is not None and bag.count >= max_messages:
                    stop.set()
            return on_message

        def subscribe_new_topics() -> None:
            graph = dict(node.get_topic_names_and_types())
            for topic in sorted(pending & graph.keys()):
                msgtype = graph[topic][0]
                if msgtype not in typestore().types:
                    print(f"[bag record] skipping {topic}: type {msgtype} unknown to the bag typestore",
                          file=sys.stderr)
                else:
                    try:
                        cls = message_class(msgtype)
                    except ImportError as err:
                        print(f"[bag record] skipping {topic}: {err}", file=sys.stderr)
                    else:
                        node.create_subscription(cls, topic, writer(topic, msgtype), _qos_for(node, topic),
                                                 raw=True)
                pending.discard(topic)
            if not pending and ready is not None:
                ready.set()

        start = time.monotonic()
        next_check = start
        try:
            while not stop.is_set():
                now = time.monotonic()
                if duration is not None and now - start >= duration:
                    break
                if pending and now >= next_check:
                    subscribe_new_topics()
                    next_check = now + DISCOVERY_PERIOD_S
                executor.spin_once(timeout_sec=DISCOVERY_PERIOD_S / 2)
        finally:
            executor.shutdown()
        stats.wall_s = time.monotonic() - start
        if pending:
            print(f"[bag record] never seen: {', '.join(sorted(pending))}", file=sys.stderr)
    if not any(stats.recorded.values()):
        print(f"[bag record] no messages recorded into {out}", file=sys.stderr)
    return stats

