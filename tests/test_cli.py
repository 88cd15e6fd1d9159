"""The `loci` command's wiring: ROS commands arrive through the entry-point group, so the ROS-free
library never names the ROS package, and every command's --help says what it does."""

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from loci_core.cli import COMMANDS, ENTRY_POINT_GROUP, build_parser, command_modules

REPO = Path(__file__).resolve().parents[1]
ROS_COMMANDS = {"bag": "loci_ros.bag_commands", "demo": "loci_ros.demo"}


def test_ros_commands_come_from_the_entry_point_group():
    declared = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert declared == ROS_COMMANDS, "reinstall the package (make setup) after changing setup.py's entry points"
    assert command_modules() == {**COMMANDS, **ROS_COMMANDS}
    assert list(command_modules())[:len(COMMANDS)] == list(COMMANDS)  # the library's own first in --help


def test_loci_core_never_names_loci_ros():
    named = [f"{path.relative_to(REPO)}:{n}" for path in sorted((REPO / "loci_core").rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if "loci_ros" in line]
    assert not named, f"loci_core names the ROS package: {named}"


def test_help_lists_every_command_and_each_command_describes_itself():
    usage = build_parser().format_help()
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(subparsers.choices) == set(command_modules())
    for name, parser in subparsers.choices.items():
        assert name in usage
        assert parser.description and len(parser.description) > 20, f"loci {name} --help has no description"


@pytest.mark.parametrize("command", ["train", "bag"])
def test_installed_console_script_runs_a_command(command):
    # the console script of the installed package, as a user runs it (train: loci_core; bag: via the group)
    loci = Path(sys.executable).parent / "loci"
    done = subprocess.run([str(loci), command, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: loci {command}")
    parser = next(a for a in build_parser(command)._actions if a.dest == "command").choices[command]
    assert " ".join(parser.description.split()[:4]) in " ".join(done.stdout.split())
