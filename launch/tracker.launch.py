"""Launch the loci tracker on a camera (or a replayed bag), optionally with RViz.

    ros2 launch loci_ros tracker.launch.py checkpoint:=/path/model.pt image_topic:=/cam/image_raw rviz:=true

Arguments: image_topic, camera_info_topic, params_file, checkpoint, namespace, use_sim_time (true when
replaying a bag with /clock), rviz. The node's outputs appear under the namespace: /loci/detections,
/loci/masks, /loci/debug_image, /loci/markers and the /loci/reset service; it resets its tracking state
on /loci/scene_reset (published by bags made with `loci bag make`, once per video). config/tracker.rviz
shows /loci/debug_image and /loci/markers (edit its topics if you pick another namespace). The params
file's `/**/loci_tracker:` section applies in any namespace.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "loci_ros"


def _tracker(context):
    """The tracker node; the checkpoint argument overrides the params file only when it is given."""
    overrides = {"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}
    checkpoint = LaunchConfiguration("checkpoint").perform(context)
    if checkpoint:
        overrides["checkpoint"] = checkpoint
    return [Node(
        package=PACKAGE,
        executable="tracker_node",
        name="loci_tracker",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=[("image", LaunchConfiguration("image_topic")),
                    ("camera_info", LaunchConfiguration("camera_info_topic"))],
        output="screen",
    )]


def generate_launch_description():
    share = FindPackageShare(PACKAGE)
    sim_time = {"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}
    return LaunchDescription([
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic to track (rgb8, bgr8, rgba8, bgra8, "
                                          "mono8, mono16)"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/camera_info",
                              description="sensor_msgs/CameraInfo topic (used by camera_model camera_info)"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config", "tracker.yaml"]),
                              description="node parameters (/**/loci_tracker: ros__parameters: layout)"),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="Loci checkpoint (.pt); empty = the one in params_file"),
        DeclareLaunchArgument("namespace", default_value="loci",
                              description="namespace of the node and its topics"),
        DeclareLaunchArgument("use_sim_time", default_value="false", choices=["true", "false"],
                              description="use /clock (e.g. from a replayed bag)"),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="start rviz2 with config/tracker.rviz"),
        OpaqueFunction(function=_tracker),
        Node(
            package="rviz2",
            executable="rviz2",
            name="loci_rviz",
            arguments=["-d", PathJoinSubstitution([share, "config", "tracker.rviz"])],
            parameters=[sim_time],
            condition=IfCondition(LaunchConfiguration("rviz")),
            output="screen",
        ),
    ])
