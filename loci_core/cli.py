"""The `loci` command. Each sub-command lives in a module that owns its idea; this file only wires
them together. A command module exposes `register(subparsers)`, which adds its parser(s) and sets
`func` to a callable taking the parsed args and returning an exit code.

Only the module of the command being run is imported (torch, scipy and rclpy take seconds to
import); `loci --help` imports them all to list them. Other installed packages add commands through
the entry-point group `loci.commands` (name = the command, value = its module), so commands that
need ROS message types come with the ROS package and this library never names it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from .allocator import keep_freed_memory

ENTRY_POINT_GROUP = "loci.commands"

COMMANDS = {
    "generate": "loci_core.data.commands",
    "data": "loci_core.data.commands",
    "train": "loci_core.training.command",
    "eval": "loci_core.evaluation.command",
    "curve": "loci_core.evaluation.learning_curve",
    "save": "loci_core.tools.save_latents",
    "playground": "loci_core.tools.playground",
    "export": "loci_core.tools.export",
    "readout": "loci_core.training.readout",
}


def command_modules() -> dict[str, str]:
    """Every command's module: this library's, then those that installed packages declare (a declared name
    that is already a command of this library is ignored)."""
    commands = dict(COMMANDS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        commands.setdefault(ep.name, ep.value)
    return commands


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command, or only with the module that owns `command`."""
    parser = argparse.ArgumentParser(
        prog="loci", description="Loci slot tracking: data, training, evaluation, tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = command_modules()
    modules = [commands[command]] if command in commands else list(dict.fromkeys(commands.values()))
    for module in modules:
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
