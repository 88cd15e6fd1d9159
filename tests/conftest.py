"""Test-run isolation: every run gets its own DDS domain on loopback and its own log dir.

Set before any test imports rclpy, and inherited by every subprocess a test starts, so
nodes under test never talk to anything outside this machine or to a parallel run.
"""

import os
import random
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ["ROS_LOG_DIR"] = tempfile.mkdtemp(prefix="loci-roslog-")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A freshly initialised (untrained) checkpoint of config/models/tiny.yaml, fixed seed."""
    import torch

    from loci_core.config import load_config
    from loci_core.model.checkpoint import save_checkpoint
    from loci_core.model.loci import Loci

    cfg = load_config(REPO / "config" / "models" / "tiny.yaml")
    torch.manual_seed(0)
    model = Loci(cfg.model)
    return save_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.pt", model, cfg, global_step=0)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module: tiny convolutions run ~40x slower with two OpenMP threads on a
    busy 2-core machine, and one thread keeps model steps predictable."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fresh_compiler():
    """TorchDynamo's compiled graphs dropped, so a test counting the graphs it compiles starts from none:
    graphs of the same shapes, compiled by an earlier test for another model, would be reused."""
    import torch._dynamo

    torch._dynamo.reset()
