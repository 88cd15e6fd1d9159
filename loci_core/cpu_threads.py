"""How many intra-op threads the model's CPU step uses, and how idle OpenMP threads wait, chosen for the cores
this process actually gets.

PyTorch runs each operator on OpenMP threads that meet at a barrier after it. libgomp lets a thread waiting
there spin for a while before it sleeps. With as many threads as cores and other busy processes beside them, a
spinning thread burns the time slice that the thread it waits for needs, so a step slows far beyond the share of
the cores left to it. Fewer threads than busy cores, and threads that sleep instead of spinning, avoid that.

libgomp reads its wait policy (OMP_WAIT_POLICY) once, when torch loads it: `apply_wait_policy` must run before
torch is imported. The thread count can change at any time (`torch.set_num_threads`), so a caller can follow
the load with `OtherLoad` and `plan_threads`.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

WAIT_POLICIES = ("auto", "passive", "active", "default")


@dataclass(frozen=True)
class ThreadPlan:
    threads: int
    wait_policy: str  # passive | active | default (libgomp's own: spin briefly, then sleep)
    cores: int
    load: float  # cores' worth of CPU other processes used when the plan was made


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. set by taskset or a container's cpuset)."""
    return len(os.sched_getaffinity(0))


def plan_threads(threads: int, wait_policy: str, cores: int, load: float) -> ThreadPlan:
    """Threads and wait policy for a process allowed `cores` cores while other processes keep `load` of them busy.

    threads 0 = one per core the load leaves free (at least one); wait_policy 'auto' = passive whenever the
    threads share their cores with other work, else libgomp's default."""
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0 = automatic), got {threads}")
    if wait_policy not in WAIT_POLICIES:
        raise ValueError(f"wait policy must be one of {', '.join(WAIT_POLICIES)}, got {wait_policy!r}")
    free = max(0.0, cores - load)
    chosen = threads or max(1, min(cores, round(free)))
    if wait_policy == "auto":
        # half a core of slack: a quiet machine's background load should not make threads sleep
        wait_policy = "passive" if chosen > 1 and chosen > free + 0.5 else "default"
    return ThreadPlan(threads=chosen, wait_policy=wait_policy, cores=cores, load=load)


def apply_wait_policy(policy: str) -> str:
    """Set OMP_WAIT_POLICY for the OpenMP runtime torch loads; returns the policy in force, in words.

    An OMP_WAIT_POLICY already in the environment wins (the user's choice), and once torch is loaded the
    policy libgomp read then stays."""
    if "OMP_WAIT_POLICY" in os.environ:
        return f"{os.environ['OMP_WAIT_POLICY'].lower()} (OMP_WAIT_POLICY)"
    if "torch" in sys.modules:
        return "libgomp default (torch was loaded before the policy could be set)"
    if policy == "default":
        return "libgomp default"
    os.environ["OMP_WAIT_POLICY"] = policy.upper()
    return policy


class OtherLoad:
    """CPU that other processes use on this process's cores, in cores, averaged between calls of `since_last`.

    From the kernel's per-core busy time (/proc/stat) less this process's own CPU time: a busy node does not
    count itself as load. Without /proc/stat the 1-minute load average stands in (it includes this process)."""

    def __init__(self):
        self._cores = sorted(os.sched_getaffinity(0))
        self._last = self._sample()

    def since_last(self) -> float:
        now = self._sample()
        if now is None or self._last is None:
            self._last = now
            return os.getloadavg()[0]
        (busy0, own0, wall0), (busy1, own1, wall1) = self._last, now
        self._last = now
        if wall1 <= wall0:
            return 0.0
        return min(float(len(self._cores)), max(0.0, (busy1 - busy0 - (own1 - own0)) / (wall1 - wall0)))

    def measure(self, seconds: float) -> float:
        """The load over the next `seconds` (this process sleeping meanwhile)."""
        self.since_last()
        time.sleep(seconds)
        return self.since_last()

    def _sample(self):
        """(busy seconds of this process's cores, this process's CPU seconds, monotonic time) or None."""
        try:
            with open("/proc/stat") as f:
                lines = f.read().splitlines()
        except OSError:
            return None
        tick = os.sysconf("SC_CLK_TCK")
        busy = 0
        wanted = {f"cpu{c}" for c in self._cores}
        for line in lines:
            fields = line.split()
            if fields and fields[0] in wanted:  # user nice system idle iowait irq softirq steal ...
                values = [int(v) for v in fields[1:9]]
                busy += sum(values) - values[3] - values[4]
        own = os.times()
        return busy / tick, own.user + own.system, time.monotonic()
