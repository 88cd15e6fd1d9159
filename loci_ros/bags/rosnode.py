"""What the player and the recorder share: an rclpy node in its own context, message classes by name,
and a clean stop on Ctrl-C / SIGTERM (so a recorder killed by a test still closes its bag)."""

from __future__ import annotations

import importlib
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def message_class(msgtype: str) -> Any:
    """'sensor_msgs/msg/Image' -> the rclpy class sensor_msgs.msg.Image (ImportError if not installed)."""
    package, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError) as err:
        raise ImportError(f"message type {msgtype} is not installed for rclpy ({err})") from None


@contextmanager
def ros_node(name: str, use_sim_time: bool = False) -> Iterator[Any]:
    """A node in a private rclpy context (no global init, no rclpy signal handlers), torn down on exit."""
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions

    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    overrides = [Parameter("use_sim_time", Parameter.Type.BOOL, True)] if use_sim_time else []
    node = rclpy.create_node(name, context=context, parameter_overrides=overrides)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """Set `stop` on SIGINT/SIGTERM while inside (main thread only; elsewhere the caller's event rules)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
