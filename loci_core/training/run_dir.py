"""A training run's directory: what it holds and how it is written.

    <run>/config.yaml            the resolved config of the run (stage overrides applied)
    <run>/checkpoints/step-<N>.pt   the last K checkpoints, each written atomically
    <run>/metrics.csv            one row per logged update (columns fixed by the first row)
    <run>/tb/                    TensorBoard events: the same scalars plus image grids

Checkpoints are written by loci_core.model.checkpoint (tmp file + os.replace), so a crash never leaves
a half-written `step-*.pt`; leftovers of an interrupted write are temporary names this module
ignores. On resume the CSV and TensorBoard logs are cut back to the checkpoint's step, so the
logs of a resumed run read exactly like those of an uninterrupted one.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

_CKPT = re.compile(r"^step-(\d+)\.pt$")
_CKPT_LEFTOVER = re.compile(r"^\.step-\d+\.pt\.tmp\d+$")  # an interrupted checkpoint write
_TB_EVENTS = "events.out.tfevents.*"


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.metrics_csv = self.path / "metrics.csv"
        self.config_yaml = self.path / "config.yaml"
        self.tb_dir = self.path / "tb"
        self._tb = None

    def create(self) -> RunDir:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        return self

    def run_files(self) -> list[Path]:
        """The files a run writes that are here already (a new run must not mix its logs into them)."""
        found = [p for p in (self.config_yaml, self.metrics_csv) if p.is_file()]
        if self.tb_dir.is_dir():
            found += sorted(self.tb_dir.glob(_TB_EVENTS))
        if self.checkpoints.is_dir():
            found += sorted(p for p in self.checkpoints.iterdir()
                            if _CKPT.match(p.name) or _CKPT_LEFTOVER.match(p.name))
        return found

    def clear(self) -> list[Path]:
        """Delete the run files (and nothing else the directory holds); returns what was deleted."""
        found = self.run_files()
        for path in found:
            path.unlink()
        return found

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:09d}.pt"

    def list_checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.checkpoints.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.checkpoints.iterdir() if (m := _CKPT.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest_checkpoint(self) -> Path | None:
        found = self.list_checkpoints()
        return found[-1] if found else None

    def prune(self, keep: int) -> None:
        """Delete all but the newest `keep` checkpoints."""
        for old in self.list_checkpoints()[:-keep] if keep > 0 else []:
            old.unlink(missing_ok=True)

    # ------------------------------------------------------------------ metrics

    def truncate_logs(self, step: int) -> None:
        """Drop CSV rows after `step` (a resumed run rewrites them)."""
        if not self.metrics_csv.is_file():
            return
        with open(self.metrics_csv, newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
        with open(self.metrics_csv, "w", newline="") as f:
            csv.writer(f).writerows(kept)

    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        """Append one CSV row (header from the first row's keys) and the TensorBoard scalars."""
        new = not self.metrics_csv.is_file() or self.metrics_csv.stat().st_size == 0
        with open(self.metrics_csv, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["step", *values])
            writer.writerow([step, *(f"{v:.6g}" for v in values.values())])
        tb = self.tensorboard(step)
        for name, value in values.items():
            tb.add_scalar(name, value, step)

    def log_image(self, step: int, tag: str, image: np.ndarray) -> None:
        """An (H, W, 3) uint8 image into TensorBoard."""
        self.tensorboard(step).add_image(tag, image, step, dataformats="HWC")

    def tensorboard(self, step: int = 0):
        """The run's SummaryWriter; events after `step` from an earlier life of the run are purged."""
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.tb_dir), purge_step=step if step > 0 else None)
        return self._tb

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
