"""launch/tracker.launch.py and the config files it points at.

`launch`/`launch_ros` cannot be installed from pip, so the launch file's structure is checked from its
syntax tree (arguments, the node, its parameters and remappings, the RViz node), and what it passes is
checked against what the node declares: the parameter table loci_ros/tracker_setup.py's PARAMETERS (the node
declares exactly these, tests/test_node.py checks over DDS) and the topics in loci_ros/tracker_node.py's
syntax tree. Where launch_ros is importable (a real ROS 2 install with this package built) the launch file is
also run for real.
"""

import ast
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "tracker.launch.py"
NODE_SOURCE = REPO / "loci_ros" / "tracker_node.py"
# Parameters every rclpy node declares itself.
BUILTIN_PARAMETERS = {"use_sim_time", "start_type_description_service"}
ARGUMENTS = {"image_topic", "camera_info_topic", "params_file", "checkpoint", "namespace", "use_sim_time",
             "rviz"}


def calls(tree, name):
    """Every call of `name(...)` in the tree, as {keyword: node} plus the positional args."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == name:
            found.append(node)
    return found


def keyword(call, name):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    raise AssertionError(f"{ast.unparse(call)[:80]}... has no keyword {name}")


def launch_config(node):
    """'x' for LaunchConfiguration('x'), else None."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "LaunchConfiguration":
        return node.args[0].value
    return None


@pytest.fixture(scope="module")
def tree():
    return ast.parse(LAUNCH.read_text())


def test_launch_arguments(tree):
    declared = {c.args[0].value: c for c in calls(tree, "DeclareLaunchArgument")}
    assert set(declared) == ARGUMENTS
    for name, call in declared.items():
        assert ast.literal_eval(keyword(call, "description")), f"argument {name} has no description"
        keyword(call, "default_value")
    assert ast.literal_eval(keyword(declared["rviz"], "choices")) == ["true", "false"]
    assert ast.literal_eval(keyword(declared["use_sim_time"], "choices")) == ["true", "false"]
    # every argument is used somewhere
    used = {launch_config(n) for n in ast.walk(tree)}
    assert ARGUMENTS <= used
    assert "generate_launch_description" in {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}


def test_tracker_node_action(tree):
    nodes = {ast.literal_eval(keyword(c, "executable")): c for c in calls(tree, "Node")}
    assert set(nodes) == {"tracker_node", "rviz2"}
    node = nodes["tracker_node"]
    assert ast.literal_eval(keyword(node, "name")) == "loci_tracker"
    assert launch_config(keyword(node, "namespace")) == "namespace"
    package = keyword(node, "package")
    assert (ast.literal_eval(package) if isinstance(package, ast.Constant) else
            {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} >= {package.id})
    remaps = {ast.literal_eval(pair.elts[0]): launch_config(pair.elts[1])
              for pair in keyword(node, "remappings").elts}
    assert remaps == {"image": "image_topic", "camera_info": "camera_info_topic"}
    params = keyword(node, "parameters").elts
    assert launch_config(params[0]) == "params_file"
    overrides = params[1]  # the dict of overrides built before the Node
    assert isinstance(overrides, ast.Name)
    source = ast.unparse(tree).replace("'", '"')
    sim_time = '"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)'
    assert sim_time in source
    assert 'overrides["checkpoint"] = checkpoint' in source  # only when the argument is given

    rviz = nodes["rviz2"]
    assert launch_config(keyword(rviz, "condition").args[0]) == "rviz"
    args = ast.unparse(keyword(rviz, "arguments"))
    assert "-d" in args and "tracker.rviz" in args


def test_config_files_fit_the_node():
    params = yaml.safe_load((REPO / "config" / "tracker.yaml").read_text())
    # `/**/` makes the section apply in the launch file's namespace too (a plain node name would not)
    assert list(params) == ["/**/loci_tracker"]
    values = params["/**/loci_tracker"]["ros__parameters"]
    from loci_ros.tracker_setup import NODE_NAME, PARAMETERS  # what the node declares

    assert NODE_NAME == "loci_tracker"
    assert set(values) == set(PARAMETERS), "config/tracker.yaml and the node's parameters differ"
    for name, value in values.items():
        default = PARAMETERS[name][0]
        assert type(value) is type(default), f"{name}: {value!r} has another type than the node's {default!r}"

    rviz = yaml.safe_load((REPO / "config" / "tracker.rviz").read_text())
    shown = {(d["Class"], d["Topic"]["Value"]) for d in rviz["Visualization Manager"]["Displays"]
             if d.get("Enabled") and "Topic" in d}
    assert shown == {("rviz_default_plugins/Image", "/loci/debug_image"),
                     ("rviz_default_plugins/MarkerArray", "/loci/markers")}
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == values["ground_frame_id"]

    shm = ET.parse(REPO / "config" / "fastdds_shm.xml").getroot()
    namespace = {"dds": "http://www.eprosima.com"}
    segment = int(shm.find(".//dds:transport_descriptor/dds:segment_size", namespace).text)
    # the README and the profile promise 3840x2160 rgb8 frames; two must fit (one in delivery, the next)
    assert segment >= 2 * 3840 * 2160 * 3, "the shared-memory segment is too small for 3840x2160 rgb8 frames"


def node_topics(kind: str) -> set[str]:
    """Topic names the node passes to create_<kind> (subscription, publisher, lifecycle_publisher)."""
    tree = ast.parse(NODE_SOURCE.read_text())
    return {c.args[1].value for c in calls(tree, f"create_{kind}") if isinstance(c.args[1], ast.Constant)}


def test_launch_passes_what_the_node_declares(tree):
    """A parameter or topic renamed in the node (or the launch file) fails here, without launch_ros."""
    from loci_ros.tracker_setup import PARAMETERS

    declared = set(PARAMETERS) | BUILTIN_PARAMETERS
    passed = set()
    for node in ast.walk(tree):  # {"name": value} literals and overrides["name"] = value
        if isinstance(node, ast.Dict):
            passed |= {ast.literal_eval(k) for k in node.keys}
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            passed.add(ast.literal_eval(node.slice))
    assert {"checkpoint", "use_sim_time"} <= passed
    assert passed <= declared, f"the launch file sets parameters the node does not declare: {passed - declared}"

    tracker = next(c for c in calls(tree, "Node") if ast.literal_eval(keyword(c, "executable")) == "tracker_node")
    remapped = {ast.literal_eval(pair.elts[0]) for pair in keyword(tracker, "remappings").elts}
    subscribed = node_topics("subscription")
    assert {"image", "camera_info", "scene_reset"} <= subscribed  # the parse found the node's topics
    assert remapped <= subscribed, f"remapped topics the node does not subscribe: {remapped - subscribed}"

    defaults = {c.args[0].value: keyword(c, "default_value") for c in calls(tree, "DeclareLaunchArgument")}
    file_values = yaml.safe_load((REPO / "config" / "tracker.yaml").read_text())["/**/loci_tracker"]
    # an empty checkpoint argument leaves the params file's value in force (overrides only when given)
    assert ast.literal_eval(defaults["checkpoint"]) == "" == PARAMETERS["checkpoint"][0]
    assert "checkpoint" in file_values["ros__parameters"]
    params_file = [ast.literal_eval(e) for e in defaults["params_file"].args[0].elts[1:]]
    assert (REPO.joinpath(*params_file)).is_file(), f"default params_file {params_file} is not in the repository"
    # config/tracker.rviz shows the outputs under the default namespace
    namespace = "/" + ast.literal_eval(defaults["namespace"])
    published = node_topics("lifecycle_publisher") | node_topics("publisher")
    rviz = yaml.safe_load((REPO / "config" / "tracker.rviz").read_text())
    shown = {d["Topic"]["Value"] for d in rviz["Visualization Manager"]["Displays"] if d.get("Enabled")
             and "Topic" in d}
    assert shown and shown <= {f"{namespace}/{t}" for t in published}, shown


@pytest.mark.ros
def test_launch_file_runs(tiny_checkpoint):
    """Only on a real ROS 2 install with this package built (launch_ros and the package share exist)."""
    launch = pytest.importorskip("launch")
    pytest.importorskip("launch_ros")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("loci_ros")
    except PackageNotFoundError:
        pytest.skip("loci_ros is not installed in an ament prefix")
    import rclpy
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    description = launch.LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH)),
        launch_arguments={"checkpoint": str(tiny_checkpoint), "namespace": "launch_test",
                          "rviz": "false"}.items())])
    service = launch.LaunchService()
    service.include_launch_description(description)
    runner = threading.Thread(target=service.run, daemon=True)
    runner.start()
    rclpy.init()
    node = rclpy.create_node("launch_test_probe")
    try:
        found = False
        end = time.monotonic() + 60
        while time.monotonic() < end and not found:
            found = ("loci_tracker", "/launch_test") in node.get_node_names_and_namespaces()
            time.sleep(0.2)
        assert found, "the launch file did not start /launch_test/loci_tracker"
        topics = dict(node.get_topic_names_and_types())
        assert "vision_msgs/msg/Detection2DArray" in topics.get("/launch_test/detections", [])
    finally:
        node.destroy_node()
        rclpy.shutdown()
        service.shutdown()
        runner.join(timeout=10)
