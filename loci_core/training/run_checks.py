"""Checks before `loci train` touches a run directory, each returning a problem to report or None.

A new run must not write into the files of an earlier one (its metrics.csv would get a second set of
rows for the same updates, its TensorBoard a second event file). `--resume` continues a run with the
settings it was trained with, so a different `--config` or an edited `config.yaml` is refused rather
than silently ignored, and data of another frame size is refused unless `--resize` says to resize it
(as `loci eval` does).
"""

from __future__ import annotations

from pathlib import Path

from ..config import LociConfig, config_differences, load_config
from .run_dir import RunDir

RESUME_MAY_CHANGE = ("train.updates", "train.precision")
"""settings `--resume` may change: `--updates` is how a finished run is extended, `--precision` how it moves
to hardware with other arithmetic"""


def earlier_run_problem(run: RunDir) -> str | None:
    """Why a new run cannot start in `run` (files of an earlier run are there), or None."""
    files = run.run_files()
    if not files:
        return None
    names = ", ".join(str(p.relative_to(run.path)) for p in files[:5])
    more = f" and {len(files) - 5} more" if len(files) > 5 else ""
    if run.list_checkpoints():
        hint = f"continue that run with --resume {run.path}"
    else:
        hint = "that run left no checkpoint to --resume from"
    return (f"{run.path} holds the files of an earlier run ({names}{more}); {hint}, choose another --out, "
            "or pass --overwrite to delete them and start anew")


def resume_settings_problem(trained: LociConfig, checkpoint: Path, run: RunDir, config: Path | None = None,
                            stage: int | None = None) -> str | None:
    """Why the run's config.yaml or a `--config` given with `--resume` disagrees with the settings
    `checkpoint` was trained with (`trained`), or None."""
    others = [run.config_yaml] if run.config_yaml.is_file() else []
    others += [config] if config is not None else []
    for path in others:
        differ = config_differences(trained, load_config(path, stage=stage if path == config else None),
                                    ignore=RESUME_MAY_CHANGE)
        if differ:
            return (f"{path} does not match the settings {checkpoint} was trained with ({'; '.join(differ)}, "
                    "checkpoint -> file); --resume continues with the run's own settings: undo the change, or "
                    f"start a new stage from that checkpoint with --init {checkpoint} --config FILE --out NEW_DIR")
    return None


def resume_data_problem(checkpoint: Path, train_state: dict, resolution: tuple[int, int], data: Path,
                        split: str, resize: bool) -> str | None:
    """Why resuming on `data` would resize its videos to another shape than the run's own data had, or None.

    The run's frame size is that of the data set it was trained on when that is still readable, else the
    model's resolution (the rule of `loci eval`)."""
    if resize:
        return None
    from ..data.reader import CaterFormatError
    from ..data.sources import FootageError, data_kind
    from ..evaluation.evaluate import EvalError

    try:
        if data_kind(data) != "cater":
            return None  # footage is resized to the model as it is read, as in training
    except FootageError as err:
        return str(err)

    try:
        size = _video_size(data, split)
    except (CaterFormatError, EvalError) as err:
        return str(err)
    before, source = tuple(resolution), "the model's frames"
    try:
        if train_state.get("data"):
            before = _video_size(Path(train_state["data"]), train_state.get("split", split))
            source = f"the videos of {train_state['data']}"
    except (CaterFormatError, EvalError, OSError):
        pass  # the run's data set is gone: compare with the model's own resolution
    if size == before:
        return None
    h, w = resolution
    return (f"{checkpoint} was trained on {before[1]}x{before[0]} frames ({source}) but the videos in {data} are "
            f"{size[1]}x{size[0]}; pass --resize to resize them to the model's {w}x{h} anyway")


def _video_size(root: Path, split: str) -> tuple[int, int]:
    from ..data.reader import CaterFormatError, read_split
    from ..evaluation.evaluate import data_resolution

    entries = read_split(root, split)
    if not entries:
        raise CaterFormatError(f"{root}: the {split} split is empty")
    return data_resolution(root, entries[0].name)
