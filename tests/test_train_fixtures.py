"""Session fixtures shared by test_train.py, test_eval.py and test_save.py (imported there).

tiny_data: 4 generated CATER-style videos of 10 frames at 80x60 (H2's `loci generate`).
tiny_run: a run directory of config/models/tiny.yaml trained for 30 updates on them, with
checkpoints every 10 updates. Both are built once per test session, whichever module asks first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "config" / "models" / "tiny.yaml"
UPDATES = 30
CHECKPOINT_EVERY = 10
_built: dict[str, Path] = {}


def tiny_config(path: Path, **train) -> Path:
    """tiny.yaml with training overrides (batch 2 fits 4 videos; frequent checkpoints and logs)."""
    data = yaml.safe_load(TINY.read_text())
    data["train"].update({"batch_size": 2, "checkpoint_every": CHECKPOINT_EVERY, "keep_checkpoints": 10,
                          "log_every": 5, "image_every": 10, "updates": UPDATES})
    data["train"].update(train)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    if "data" not in _built:
        from loci_core.cli import main

        root = tmp_path_factory.mktemp("h4data") / "cater"
        assert main(["generate", "--out", str(root), "--videos", "4", "--frames", "10", "--size", "80x60",
                     "--seed", "1"]) == 0
        _built["data"] = root
    return _built["data"]


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory) -> Path:
    if "run" not in _built:
        from loci_core.cli import main

        base = tmp_path_factory.mktemp("h4run")
        cfg = tiny_config(base / "tiny.yaml")
        run = base / "run"
        assert main(["train", "--config", str(cfg), "--data", str(tiny_data), "--out", str(run),
                     "--split", "all", "--device", "cpu", "--no-progress"]) == 0
        _built["run"] = run
    return _built["run"]


def latest_checkpoint(run: Path) -> Path:
    return sorted((run / "checkpoints").glob("step-*.pt"))[-1]
