"""The repository is a valid ament_python package: what `colcon build` installs, checked in seconds.

colcon's ament_python build runs setup.py's egg_info/build/install with setup.cfg's script dir; these tests
run the same setuptools steps into a temporary root and check the result file by file.
tests/test_colcon_workspace.py runs colcon itself on a workspace (about a minute) and starts the installed node.
"""

import configparser
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

RUN_DEPENDS = {"rclpy", "std_msgs", "sensor_msgs", "geometry_msgs", "vision_msgs", "visualization_msgs",
               "std_srvs", "lifecycle_msgs", "python3-torch", "python3-opencv", "python3-numpy"}
CONSOLE_SCRIPTS = {"loci": "loci_core.cli:main", "tracker_node": "loci_ros.tracker_node:main"}
# `loci` sub-commands of the ROS package, read by loci_core.cli from this entry-point group
LOCI_COMMANDS = {"bag": "loci_ros.bag_commands", "demo": "loci_ros.demo"}


@pytest.fixture(scope="module")
def manifest(repo_root):
    return ET.parse(repo_root / "package.xml").getroot()


def test_package_xml_is_format3_ament_python(manifest, repo_root):
    assert manifest.tag == "package" and manifest.get("format") == "3"
    assert manifest.findtext("name") == "loci_ros"
    assert manifest.findtext("export/build_type") == "ament_python"
    run = {e.text for e in manifest if e.tag in ("depend", "exec_depend")}
    assert RUN_DEPENDS <= run, f"missing run dependencies: {sorted(RUN_DEPENDS - run)}"
    assert "python3-pytest" in {e.text for e in manifest if e.tag == "test_depend"}
    # catkin_pkg is what colcon/rosdep parse package.xml with: it must accept the file
    catkin_pkg = pytest.importorskip("catkin_pkg.package")
    pkg = catkin_pkg.parse_package(str(repo_root / "package.xml"))
    pkg.validate()
    assert pkg.package_format == 3


@pytest.fixture(scope="module")
def installed(repo_root, tmp_path_factory):
    """Install the package the way colcon's ament_python build does, into TMP/root/usr."""
    tmp = tmp_path_factory.mktemp("colcon_like")
    (tmp / "egg").mkdir()
    cmd = [sys.executable, "setup.py", "-q",
           "egg_info", "--egg-base", str(tmp / "egg"),
           "build", "--build-base", str(tmp / "build"),
           "install", "--root", str(tmp / "root"), "--prefix", "/usr",
           "--single-version-externally-managed", "--record", str(tmp / "record.txt")]
    done = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "root" / "usr"


def test_share_files_are_installed(installed, repo_root, manifest):
    share = installed / "share" / "loci_ros"
    assert (installed / "share/ament_index/resource_index/packages/loci_ros").is_file()
    assert (share / "package.xml").read_text() == (repo_root / "package.xml").read_text()
    expected = [p.relative_to(repo_root) for p in sorted((repo_root / "launch").glob("*.launch.py"))]
    expected += [p.relative_to(repo_root) for p in sorted((repo_root / "config").rglob("*"))
                 if p.is_file() and "__pycache__" not in p.parts]
    missing = [str(p) for p in expected if not (share / p).is_file()]
    assert not missing, f"not installed under share/loci_ros: {missing}"


def test_console_scripts_land_in_lib_package(installed):
    # setup.cfg puts scripts in lib/<package>, where `ros2 run loci_ros <name>` looks for them
    for name in CONSOLE_SCRIPTS:
        script = installed / "lib" / "loci_ros" / name
        assert script.is_file(), f"console script {name} not in lib/loci_ros"
        assert name in script.read_text()
    entry_points = configparser.ConfigParser()
    egg_info = next(installed.glob("lib/python3*/site-packages/loci_ros-*.egg-info"))
    entry_points.read(egg_info / "entry_points.txt")
    declared = {k: v.replace(" ", "") for k, v in entry_points["console_scripts"].items()}
    assert declared == CONSOLE_SCRIPTS
    assert dict(entry_points["loci.commands"]) == LOCI_COMMANDS


def test_python_packages_are_installed(installed, repo_root):
    site = next(installed.glob("lib/python3*/site-packages"))
    for top in ("loci_core", "loci_ros"):
        for init in (repo_root / top).rglob("__init__.py"):
            assert (site / init.relative_to(repo_root)).is_file(), f"{init.parent.name} not installed"
    # only our two packages at the top of site-packages (no stray data directories)
    ours = {p.name for p in site.iterdir() if not p.name.endswith(".egg-info")}
    assert ours == {"loci_core", "loci_ros"}, f"unexpected top-level entries in site-packages: {sorted(ours)}"
    for target in CONSOLE_SCRIPTS.values():
        module = target.split(":")[0]
        path = site / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"{module} (a console script's module) not installed"
