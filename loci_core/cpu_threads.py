"""How many intra-op threads the model's CPU step uses, and how idle OpenMP threads wait, chosen for the cores
this process actually gets.

PyTorch runs each operator on OpenMP threads that meet at a barrier after it. libgomp lets a thread waiting
there spin for a while before it sleeps. With as many threads as cores and other busy processes beside them, a
spinning thread burns the time slice that the thread it waits for needs, so a step slows far beyond the share of
the cores left to it. Fewer threads than busy cores, and threads that sleep instead of spinning, avoid that.

libgomp reads its wait policy (OMP_WAIT_POLICY) once, when torch loads it: `apply_wait_policy` must run before
torch is imported. The thread count can change at any time (`torch.set_num_threads`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

WAIT_POLICIES = ("auto", "passive", "active")


@dataclass(frozen=True)
class ThreadPlan:
    threads: int
    wait_policy: str  # passive | active | libgomp default (no OMP_WAIT_POLICY set)
    cores: int
    load: float  # runnable processes on the machine (1-minute average) when the plan was made


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. set by taskset or a container's cpuset)."""
    return len(os.sched_getaffinity(0))


def machine_load() -> float:
    """Runnable processes averaged over the last minute, all cores together."""
    return os.getloadavg()[0]


def plan_threads(threads: int, wait_policy: str, cores: int, load: float) -> ThreadPlan:
    """Threads and wait policy for a process allowed `cores` cores on a machine with `load` runnable processes.

    threads 0 = one per core the load leaves free (at least one); wait_policy 'auto' = passive whenever the
    threads share their cores with other work, else libgomp's default (spin briefly, then sleep)."""
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
