"""`loci bag play`: publish a bag's messages with their original timing, plus /clock (like `ros2 bag play`).

Messages go out as the stored CDR bytes (rclpy publishes bytes as already-serialized data), so no
message is decoded. /clock carries bag time, also between messages (every CLOCK_PERIOD_S of wall time),
so nodes run with `use_sim_time:=true` follow the bag.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from loci_ros.bags.rosnode import message_class, ros_node, stop_on_signals
from loci_ros.bags.storage import BagError, open_bag

CLOCK_TOPIC = "/clock"
# /clock is published at least this often (wall seconds) while waiting for the next message.
CLOCK_PERIOD_S = 0.05
# Publisher queue depth: replay bursts (several topics at one stamp) must not overwrite each other.
QUEUE_DEPTH = 100
# Longest wait for subscribers when asked to wait for them.
WAIT_TIMEOUT_S = 30.0
# At the end, wait up to this long for subscribers to acknowledge the last messages.
LINGER_S = 1.0


@dataclass
class PlayStats:
    published: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    bag_s: float = 0.0
    loops: int = 0


def _parse_remaps(remaps: list[str] | None) -> dict[str, str]:
    out = {}
    for item in remaps or []:
        old, sep, new = item.partition(":=")
        if not sep or not old or not new:
            raise ValueError(f"bad remap {item!r}: expected FROM:=TO")
        out[old] = new
    return out


def play(bag: str | Path, rate: float = 1.0, loop: bool = False, topics: list[str] | None = None,
         delay: float = 0.5, clock: bool = True, remaps: list[str] | None = None,
         wait_for_subscribers: bool = False, stop: threading.Event | None = None) -> PlayStats:
    """Play `bag` until its end (or forever with `loop`, until `stop` is set or SIGINT/SIGTERM).

    `delay` wall seconds pass between creating the publishers and the first message, so subscribers
    can discover them (DDS discovery takes ~0.1-0.3 s on loopback). With `wait_for_subscribers`, playing
    also waits (up to WAIT_TIMEOUT_S) until every played topic has a subscriber.
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    renamed = _parse_remaps(remaps)
    stop = stop or threading.Event()
    with open_bag(bag) as reader:
        available = {c.topic: c.msgtype for c in reader.connections}
        wanted = topics or sorted(available)
        unknown = [t for t in wanted if t not in available]
        if unknown:
            raise BagError(f"bag {bag} has no topic {', '.join(unknown)} "
                           f"(it has: {', '.join(sorted(available))})")
        with ros_node("loci_bag_player") as node, stop_on_signals(stop):
            publishers = _publishers(node, {t: available[t] for t in wanted}, renamed)
            if not publishers:
                raise BagError(f"bag {bag}: none of the topics {', '.join(wanted)} can be published")
            clock_pub = _ClockPublisher(node) if clock else None
            stop.wait(delay)
            if wait_for_subscribers:
                _wait_for_subscribers(publishers, stop)
            stats = PlayStats(published={t: 0 for t in publishers})
            connections = [c for c in reader.connections if c.topic in publishers]
            wall_begin = time.monotonic()
            while not stop.is_set():
                _play_once(reader.messages(connections=connections), publishers, clock_pub, rate, stop, stats)
                stats.loops += 1
                if not loop or not any(stats.published.values()):
                    break
            stats.wall_s = time.monotonic() - wall_begin
            # reliable delivery of the last messages before the publishers go away
            from rclpy.duration import Duration

            for pub in publishers.values():
                pub.wait_for_all_acked(Duration(seconds=LINGER_S))
    return stats


def _publishers(node, types: dict[str, str], renamed: dict[str, str]) -> dict:
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    qos = QoSProfile(depth=QUEUE_DEPTH, reliability=ReliabilityPolicy.RELIABLE)
    publishers = {}
    for topic, msgtype in types.items():
        try:
            cls = message_class(msgtype)
        except ImportError as err:
            print(f"[bag play] skipping {topic}: {err}", file=sys.stderr)
            continue
        publishers[topic] = node.create_publisher(cls, renamed.get(topic, topic), qos)
    return publishers


class _ClockPublisher:
    """/clock in bag time; never goes backwards within one pass."""

    def __init__(self, node):
        from rclpy.qos import QoSProfile
        from rosgraph_msgs.msg import Clock

        self._msg_type = Clock
        self._pub = node.create_publisher(Clock, CLOCK_TOPIC, QoSProfile(depth=1))
        self.last_ns = 0

    def publish(self, t_ns: int) -> None:
        if t_ns >= self.last_ns:
            msg = self._msg_type()
            msg.clock.sec, msg.clock.nanosec = divmod(int(t_ns), 1_000_000_000)
            self._pub.publish(msg)
            self.last_ns = t_ns


def _play_once(messages, publishers: dict, clock: _ClockPublisher | None, rate: float,
               stop: threading.Event, stats: PlayStats) -> None:
    """One pass over the bag: message k goes out (t_k - t_0) / rate wall seconds after the first."""
    first_ns = None
    wall_start = time.monotonic()
    if clock is not None:
        clock.last_ns = 0
    for conn, t_ns, raw in messages:
        if first_ns is None:
            first_ns = t_ns
        target = wall_start + (t_ns - first_ns) / 1e9 / rate
        # wait for the message's time, keeping /clock moving at bag speed meanwhile
        while (left := target - time.monotonic()) > 0 and not stop.is_set():
            stop.wait(min(left, CLOCK_PERIOD_S))
            if clock is not None:
                elapsed_ns = int((time.monotonic() - wall_start) * rate * 1e9)
                clock.publish(min(first_ns + elapsed_ns, t_ns))
        if stop.is_set():
            return
        if clock is not None:
            clock.publish(t_ns)
        publishers[conn.topic].publish(bytes(raw))
        stats.published[conn.topic] += 1
        stats.bag_s = max(stats.bag_s, (t_ns - first_ns) / 1e9)


def _wait_for_subscribers(publishers: dict, stop: threading.Event) -> None:
    end = time.monotonic() + WAIT_TIMEOUT_S
    while not stop.is_set():
        missing = [t for t, pub in publishers.items() if pub.get_subscription_count() == 0]
        if not missing:
            return
        if time.monotonic() > end:
            print(f"[bag play] no subscriber after {WAIT_TIMEOUT_S:.0f} s on {', '.join(missing)}; "
                  "playing anyway", file=sys.stderr)
            return
        stop.wait(0.05)
