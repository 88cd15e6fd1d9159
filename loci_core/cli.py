"""The `loci` command. Each sub-command lives in the module that owns its idea; this file
only wires them together. A command module exposes `register(subparsers)`, which adds its
parser(s) and sets `func` to a callable taking the parsed args and returning an exit code.

Commands that need ROS message types live in loci_ros and are added only when that package
is importable, so loci_core itself never imports ROS.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

CORE_COMMANDS = (
    "loci_core.data.commands",   # generate, data preview, data stats
    "loci_core.train",           # train
    "loci_core.evaluate",        # eval
    "loci_core.save_latents",    # save
    "loci_core.playground",      # playground
)
ROS_COMMANDS = (
    "loci_ros.bag_commands",     # bag make | play | track
    "loci_ros.demo",             # demo
)


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loci", description="Loci slot tracking: data, training, evaluation, tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in CORE_COMMANDS + ROS_COMMANDS:
        if _available(module):
            importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
