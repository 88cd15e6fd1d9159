"""The `loci` command. Each sub-command lives in the module that owns its idea; this file
only wires them together. A command module exposes `register(subparsers)`, which adds its
parser(s) and sets `func` to a callable taking the parsed args and returning an exit code.

Only the module of the command being run is imported (torch, scipy and rclpy take seconds to
import); `loci --help` imports them all to list them. Commands that need ROS message types live
in loci_ros and are offered only when that package is importable, so loci_core never imports ROS.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from .allocator import keep_freed_memory

COMMANDS = {
    "generate": "loci_core.data.commands",
    "data": "loci_core.data.commands",
    "train": "loci_core.training.trainer",
    "eval": "loci_core.evaluation.evaluate",
    "curve": "loci_core.evaluation.learning_curve",
    "save": "loci_core.tools.save_latents",
    "playground": "loci_core.tools.playground",
    "export": "loci_core.tools.export",
    "readout": "loci_core.training.readout",
    "bag": "loci_ros.bag_commands",
    "demo": "loci_ros.demo",
}


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every available command, or only with the module that owns `command`."""
    parser = argparse.ArgumentParser(
        prog="loci", description="Loci slot tracking: data, training, evaluation, tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for module in modules:
        if _available(module):
            importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(argv[0] if argv else None)
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        keep_freed_memory()
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C that no command handles, e.g. while torch is being imported
        print(f"loci{' ' + argv[0] if argv else ''}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
