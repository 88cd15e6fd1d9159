"""`colcon build` of a ROS 2 workspace holding this repository, and the installed node running from it.

A scratch workspace gets a copy of the repository (the files git tracks or would add) and colcon builds it
together with interfaces/vision_msgs, as the README's workspace instructions say. The test checks what a
real install relies on (package.xml and the ament index marker, the launch and config files, the
tracker_node executable under lib/loci_ros), then sources install/setup.bash and starts that executable
with the installed config/tracker.yaml until it answers one frame over DDS.

The wheels' ament_cmake is found through AMENT_PREFIX_PATH/CMAKE_PREFIX_PATH pointing at the venv, whose
CMake files carry the path fix of scripts/wheel_cmake_paths.sh (make setup applies it).
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("colcon_core")
pytest.importorskip("colcon_ros")
rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs.msg")

from tests.process_helpers import stop_process  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.colcon, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
# Top-level entries of a working tree that are not part of the package (git ignores them too).
NOT_SOURCE = {".git", ".venv", "build", "install", "log", "demo_out", "runs", "data", ".pytest_cache",
              ".ruff_cache", ".build-interfaces"}
BUILD_TIMEOUT_S = 900


def copy_source(dest: Path) -> None:
    def ignore(directory, names):
        top = Path(directory) == REPO
        return {n for n in names if (top and n in NOT_SOURCE) or n == "__pycache__" or n.endswith(".egg-info")}

    shutil.copytree(REPO, dest, ignore=ignore)


def build_env() -> dict:
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV))
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env['PATH']}"  # ament's scripts run `python3`: the venv's
    return env


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("colcon_ws")
    fix = subprocess.run(["bash", str(REPO / "scripts" / "wheel_cmake_paths.sh"), str(VENV)], capture_output=True,
                         text=True, timeout=120)
    assert fix.returncode == 0, fix.stderr
    copy_source(ws / "src" / "loci")
    # colcon does not descend into a package's directory: the nested interface package is a base path too
    cmd = [str(VENV / "bin" / "colcon"), "build", "--base-paths", "src/loci", "src/loci/interfaces/vision_msgs",
           "--event-handlers", "console_direct-", "--cmake-args", "-DBUILD_TESTING=OFF"]
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=ws, env=build_env(), capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert done.returncode == 0, f"colcon build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    print(f"colcon build: {time.monotonic() - start:.0f} s")
    return ws


def expected_share_files() -> list[Path]:
    """The launch and config files of the repository, relative to it (each must be installed)."""
    files = sorted((REPO / "launch").glob("*.launch.py"))
    files += sorted(p for p in (REPO / "config").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return [p.relative_to(REPO) for p in files]


def test_installed_layout(workspace):
    prefix = workspace / "install" / "loci_ros"
    share = prefix / "share" / "loci_ros"
    assert (share / "package.xml").read_text() == (REPO / "package.xml").read_text()
    assert (prefix / "share/ament_index/resource_index/packages/loci_ros").is_file(), "no ament index marker"
    missing = [str(p) for p in expected_share_files() if not (share / p).is_file()]
    assert not missing, f"not installed under share/loci_ros: {missing}"
    for name in ("tracker_node", "loci"):
        script = prefix / "lib" / "loci_ros" / name
        assert script.is_file() and os.access(script, os.X_OK), f"{name} is not an executable in lib/loci_ros"
    assert (workspace / "install" / "vision_msgs" / "share/ament_index/resource_index/packages/vision_msgs").is_file()
    assert (workspace / "install" / "setup.bash").is_file()


def sourced(workspace: Path, command: str) -> list[str]:
    """`command` in bash after sourcing the workspace's install/setup.bash (as a user's shell does; without
    `set -u`, which its COLCON_TRACE check trips)."""
    return ["bash", "-c", f"source {workspace / 'install' / 'setup.bash'} && {command}"]


def test_workspace_environment_finds_the_installed_packages(workspace):
    probe = ("import loci_ros, vision_msgs; from ament_index_python.packages import get_package_share_directory;"
             "print(loci_ros.__file__); print(vision_msgs.__file__); print(get_package_share_directory('loci_ros'))")
    done = subprocess.run(sourced(workspace, f"{VENV / 'bin' / 'python'} -c \"{probe}\""), cwd=workspace,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loci_file, vision_file, share = done.stdout.split()
    install = workspace / "install"
    assert Path(loci_file).is_relative_to(install / "loci_ros"), "loci_ros imported from outside the workspace"
    assert Path(vision_file).is_relative_to(install / "vision_msgs")
    assert Path(share) == install / "loci_ros" / "share" / "loci_ros"


def test_installed_tracker_node_answers_a_frame(workspace, tiny_checkpoint, tmp_path):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from vision_msgs.msg import Detection2DArray

    from loci_ros.image_conversion import numpy_to_image

    prefix = workspace / "install" / "loci_ros"
    params = prefix / "share" / "loci_ros" / "config" / "tracker.yaml"
    node_cmd = (f"exec {prefix / 'lib' / 'loci_ros' / 'tracker_node'} --ros-args -r __ns:=/colcon "
                f"--params-file {params} -p checkpoint:={tiny_checkpoint} -p input_reliability:=reliable")
    log_path = tmp_path / "node.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(sourced(workspace, node_cmd), cwd=tmp_path, stdout=log,
                                   stderr=subprocess.STDOUT, text=True)
    rclpy.init()
    node = rclpy.create_node("colcon_probe", namespace="/colcon")
    try:
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        received = []
        node.create_subscription(Detection2DArray, "detections", received.append, qos)
        pub = node.create_publisher(Image, "image", qos)
        header = Header(frame_id="camera")
        header.stamp.sec = 42
        frame = numpy_to_image(np.full((60, 80, 3), 128, np.uint8), "rgb8", header=header)
        end = time.monotonic() + 120
        while not received and time.monotonic() < end and process.poll() is None:
            if pub.get_subscription_count() > 0:
                pub.publish(frame)  # again until answered: the first may go out before discovery completes
            rclpy.spin_once(node, timeout_sec=0.5)
        assert received, f"no detections from the installed node:\n{log_path.read_text()[-3000:]}"
        assert received[0].header.stamp.sec == 42
        text = log_path.read_text()
        assert "loci_tracker ready:" in text and f"model {tiny_checkpoint}" in text
    finally:
        node.destroy_node()
        rclpy.shutdown()
        stop_process(process)
