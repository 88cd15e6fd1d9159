"""`loci train`: the command line of training (the loop itself is trainer.py).

It builds a run from the arguments (a new run directory, or the run `--resume` names, checked against
its own settings), starts the process group when torchrun started several processes
(`torchrun --nproc_per_node N -m loci_core.cli train ARGS`) and turns every expected failure into a
one-line error and an exit code.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch.distributed as dist

from ..config import PRECISIONS, ConfigError, config_from_dict, load_config, save_config
from ..data.sources import add_footage_arguments, data_options
from ..device import DeviceError, add_device_argument
from ..model.checkpoint import CheckpointError, load_checkpoint
from .run_checks import earlier_run_problem, resume_data_problem, resume_settings_problem
from .run_dir import RunDir
from .trainer import EXIT_ERROR, EXIT_INTERRUPTED, Dist, Trainer, TrainError, init_distributed

DESCRIPTION = ("Train Loci on CATER-format videos or your own footage, one optimiser update per frame "
               "(docs/model.md, Training). Several processes: torchrun --nproc_per_node N -m loci_core.cli "
               "train ARGS.")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train Loci on CATER-format videos (one optimiser step per frame)",
                              description=DESCRIPTION)
    p.add_argument("--config", type=Path, help="model/training config YAML (config/models/<name>.yaml)")
    p.add_argument("--data", type=Path, help="CATER-format directory, folder of video files or rosbag2 "
                                             "(with --topic) (on --resume: the run's)")
    add_footage_arguments(p)
    p.add_argument("--stage", type=int, help="apply this stage's overrides from the config")
    p.add_argument("--init", type=Path, metavar="CKPT", help="start from these weights (previous stage)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run exactly")
    p.add_argument("--out", type=Path, metavar="RUN_DIR", help="run directory (runs/<config>[-stage<N>])")
    add_device_argument(p)
    p.add_argument("--updates", type=_positive_int, metavar="N", help="stage length (overrides train.updates)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="override train.precision; also on --resume, where it changes the arithmetic from the "
                        "next update on, not the model (e.g. a run moved to a CPU with native bfloat16)")
    p.add_argument("--max-minutes", type=float, metavar="M",
                   help="time box: after M minutes of training, write a checkpoint and end (exit 0); "
                        "continue later with --resume")
    p.add_argument("--split", default="train", help="data split to train on: train | test | all")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the files of an earlier run in --out (config, logs, checkpoints) and start anew")
    p.add_argument("--resize", action="store_true",
                   help="on --resume: accept --data whose videos have another size than the run's data")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _apply_overrides(cfg, args) -> None:
    if args.updates is not None:
        cfg.train.updates = args.updates
    if args.precision is not None:
        cfg.train.precision = args.precision


def _resumed_trainer(args, ddp: Dist, device) -> Trainer:
    run = RunDir(args.resume)
    latest = run.latest_checkpoint()
    if latest is None:
        raise TrainError(f"{args.resume}: no checkpoint to resume from (expected checkpoints/step-*.pt)")
    ckpt = load_checkpoint(latest)
    cfg = config_from_dict(ckpt["config"], source=f"{latest} (config)")
    problem = resume_settings_problem(cfg, latest, run, args.config, args.stage)
    if problem:
        raise TrainError(problem)
    ts = ckpt.get("train_state") or {}
    data = args.data or (Path(ts["data"]) if "data" in ts else None)
    split = ts.get("split", args.split)
    _apply_overrides(cfg, args)
    if data is None:
        raise TrainError("--data is required")
    problem = resume_data_problem(latest, ts, cfg.resolution, data, split, args.resize)
    if problem:
        raise TrainError(problem)
    options = {**ts.get("data_options", {}), **data_options(args)}
    trainer = Trainer(cfg, data, run, device, ddp, split=split, progress=not args.no_progress,
                      data_options=options)
    trainer.resume_from(latest)
    if ddp.main:
        print(f"loci train: resuming {latest} at update {trainer.global_step}", file=sys.stderr)
    return trainer


def _new_trainer(args, ddp: Dist, device) -> Trainer:
    if args.config is None or args.data is None:
        raise TrainError("--config and --data are required (or --resume RUN_DIR)")
    cfg = load_config(args.config, stage=args.stage)
    _apply_overrides(cfg, args)
    name = args.config.stem + (f"-stage{args.stage}" if args.stage is not None else "")
    run = RunDir(args.out or Path("runs") / name)
    problem = earlier_run_problem(run)
    if problem and not args.overwrite:
        raise TrainError(problem)
    trainer = Trainer(cfg, args.data, run, device, ddp, split=args.split, progress=not args.no_progress,
                      data_options=data_options(args))
    if args.init is not None:
        trainer.init_from(args.init)
    if ddp.active:
        dist.barrier()  # every process has looked at the run directory before rank 0 clears and writes it
    if ddp.main:
        removed = run.clear() if args.overwrite else []
        if removed:
            print(f"loci train: --overwrite: deleted {len(removed)} file(s) of an earlier run in {run.path}",
                  file=sys.stderr)
        run.create()
        save_config(cfg, run.config_yaml)
    return trainer


def run(args) -> int:
    from ..data.reader import CaterFormatError

    ddp = Dist()
    try:
        ddp, device = init_distributed(args.device)
        trainer = _resumed_trainer(args, ddp, device) if args.resume is not None else _new_trainer(args, ddp, device)
        if args.max_minutes is not None:
            if args.max_minutes <= 0:
                raise TrainError(f"--max-minutes must be positive, got {args.max_minutes}")
            trainer.deadline = time.monotonic() + 60.0 * args.max_minutes
        code = trainer.train()
        if ddp.active:
            # no process may tear the process group down while another still works (rank 0 writes the
            # last checkpoint after the last collective); without this wait some runs aborted at exit
            dist.barrier()
        return code
    except (TrainError, ConfigError, CheckpointError, CaterFormatError, DeviceError, OSError) as err:
        print(f"loci train: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # Ctrl-C while loading data or building the model (train() handles it later)
        print("loci train: interrupted before training started; no checkpoint written", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if ddp.active and dist.is_initialized():
            dist.destroy_process_group()
