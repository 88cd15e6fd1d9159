"""Ending the subprocesses tests start: ask politely, then insist.

A DDS participant can take longer than a test wants to tear down (a reliable writer waiting for readers that
are gone); a stuck teardown is not what those tests check, so after the grace time the process is killed.
"""

import signal
import subprocess


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, grace_s: float = 10.0) -> int:
    """Send `sig`, wait up to `grace_s`, then SIGKILL; returns the exit status."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
