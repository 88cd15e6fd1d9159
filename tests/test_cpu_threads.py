"""loci_core.cpu_threads: the model's thread count and OpenMP wait policy for the cores a process gets."""

import os
import subprocess
import sys

import pytest

from loci_core.cpu_threads import available_cores, plan_threads


def test_threads_are_one_per_core_unless_given():
    assert plan_threads(0, "auto", cores=2).threads == 2
    assert plan_threads(0, "auto", cores=1).threads == 1
    assert plan_threads(3, "auto", cores=2).threads == 3       # an explicit count is kept


def test_auto_wait_policy_sleeps_with_more_than_one_thread():
    assert plan_threads(0, "auto", cores=2).wait_policy == "passive"
    assert plan_threads(0, "auto", cores=1).wait_policy == "default"  # one thread never waits for another
    assert plan_threads(2, "active", cores=2).wait_policy == "active"
    assert plan_threads(2, "default", cores=2).wait_policy == "default"
    with pytest.raises(ValueError, match="wait policy"):
        plan_threads(0, "spin", cores=2)
    with pytest.raises(ValueError, match="threads"):
        plan_threads(-1, "auto", cores=2)


def test_cores_are_the_affinity(tmp_path):
    """A process pinned to one core (as taskset or a container's cpuset does) counts one core."""
    code = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); " \
           "from loci_core.cpu_threads import available_cores; print(available_cores())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["1"], done.stderr
    assert available_cores() == len(os.sched_getaffinity(0))


def test_wait_policy_is_set_only_before_torch_loads():
    code = ("import os; from loci_core.cpu_threads import apply_wait_policy as a; print(a('passive')); "
            "print(os.environ.get('OMP_WAIT_POLICY')); import torch; os.environ.pop('OMP_WAIT_POLICY'); "
            "print(a('active'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.stdout.splitlines() == ["passive", "PASSIVE",
                                        "libgomp default (torch was loaded before the policy could be set)"], \
        done.stderr
    done = subprocess.run([sys.executable, "-c", code.split("; print(os.environ")[0]], capture_output=True,
                          text=True, timeout=60, env=dict(env, OMP_WAIT_POLICY="ACTIVE"))
    assert done.stdout.strip() == "active (OMP_WAIT_POLICY)", done.stderr  # the user's setting wins

