"""`loci bag track`: run the tracker over a bag offline and write the node's outputs into a new bag.

The same code as the live node makes the messages: the node's parameters, tracker construction,
output settings, camera_info camera and input checks (loci_ros/tracker_setup.py; the parameters come
from their defaults, overridden by a params file in the `/**/loci_tracker: ros__parameters:` layout)
and `loci_ros.messages.build_outputs`. Each output carries the input image's header and is stored at
the input's bag time, under `<namespace>/{detections,masks,debug_image,markers}`.

The tracker resets at each `/loci/scene_reset` (a new video of a made bag), as the node does on its
`scene_reset` topic, and where bag time jumps by more than `gap_s` between two images (a pause in a
recording; training splits footage into sequences at the same places). The image topic may carry
sensor_msgs/Image or CompressedImage. The one difference from a live run, on purpose: every frame is tracked (a live
node drops frames it cannot keep up with). The input topics are copied into the output bag too (unless
asked not to), so ground truth and outputs sit side by side; `loci bag eval` scores the outputs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from loci_core.data.bag_footage import DEFAULT_GAP_S
from loci_ros.bags import CAMERA_INFO_TOPIC, IMAGE_TOPIC, SCENE_RESET_TOPIC
from loci_ros.bags.storage import BagError, BagWriter, open_bag
from loci_ros.tracker_setup import (
    NODE_NAME,
    FrameRejected,
    default_values,
    make_tracker,
    output_settings,
    pinhole_camera,
    rgb_frame,
    size_problem,
    value_problem,
)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"

OUTPUT_TYPES = {
    "detections": "vision_msgs/msg/Detection2DArray",
    "masks": "sensor_msgs/msg/Image",
    "debug_image": "sensor_msgs/msg/Image",
    "markers": "visualization_msgs/msg/MarkerArray",
}


@dataclass
class TrackStats:
    frames: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    resets: int = 0
    written: dict[str, int] = field(default_factory=dict)


def node_parameters(params_file: str | Path | None = None, overrides: dict | None = None,
                    namespace: str = "") -> dict:
    """The tracker node's parameter values: its declared defaults, then the params file's sections that
    name the node as rcl matches them for a node in `namespace` (`/**`, `/**/loci_tracker`,
    `<namespace>/loci_tracker`; a name without a leading slash is absolute, so a plain `loci_tracker`
    applies only without a namespace), in file order, then `overrides`. Unknown names and values the node
    would reject are errors; a `loci_tracker` section the node would ignore is reported on stderr."""
    values = default_values()
    layers = []
    if params_file is not None:
        path = Path(params_file)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"cannot read params file {path}: {err}") from None
        if not isinstance(data, dict):
            raise ValueError(f"params file {path} is not a mapping of node names")
        names = {"/**", "/**/" + NODE_NAME, f"{namespace}/{NODE_NAME}"}
        for section, content in data.items():
            params = (content or {}).get("ros__parameters") if isinstance(content, dict) else None
            if not params:
                continue
            rule = str(section) if str(section).startswith("/") else f"/{section}"  # rcl: no slash = absolute
            if rule in names:
                layers.append((f"{path} [{section}]", params))
            elif rule.endswith("/" + NODE_NAME):
                print(f"[bag track] {path}: section {section!r} does not name the node "
                      f"{namespace}/{NODE_NAME}, so it is ignored (as the node would); "
                      f"'/**/{NODE_NAME}' applies in any namespace", file=sys.stderr)
    if overrides:
        layers.append(("overrides", overrides))
    for source, params in layers:
        for name, value in params.items():
            if name == "use_sim_time":
                continue
            if name not in values:
                raise ValueError(f"{source}: unknown tracker parameter {name!r}")
            problem = value_problem(name, value)
            if problem:
                raise ValueError(f"{source}: {problem}")
            values[name] = value
    return values


def track_bag(bag: str | Path, out: str | Path, checkpoint: str | None = None,
              params_file: str | Path | None = None, storage: str = "mcap", namespace: str = "/loci",
              image_topic: str = IMAGE_TOPIC, camera_info_topic: str = CAMERA_INFO_TOPIC,
              reset_on_scene: bool = True, copy_input: bool = True, device: str | None = None,
              progress: bool = True, gap_s: float | None = DEFAULT_GAP_S) -> TrackStats:
    """Track every image of `bag` and write the outputs (and by default the input) into a new bag `out`.

    Raises BagError for unusable bags, ValueError for bad parameters and tracker_setup.StartupError
    (a RuntimeError) when the checkpoint or background cannot be loaded. `gap_s` None: no resets at gaps."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image
    from tqdm import tqdm

    from loci_ros.messages import build_outputs

    overrides = {k: v for k, v in (("checkpoint", checkpoint), ("device", device)) if v is not None}
    namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
    params = node_parameters(params_file, overrides, namespace)
    topics = {name: f"{namespace}/{name}" for name in OUTPUT_TYPES if params[f"publish_{name}"]}
    stats = TrackStats(written={t: 0 for t in topics.values()})
    with open_bag(bag) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        if image_topic not in types:
            raise BagError(f"bag {bag} has no topic {image_topic} (it has: {', '.join(sorted(types))})")
        if types[image_topic] not in (IMAGE, COMPRESSED):
            raise BagError(f"bag {bag}: {image_topic} carries {types[image_topic]}, not {IMAGE} or {COMPRESSED}")
        compressed = types[image_topic] == COMPRESSED
        clashes = sorted(set(topics.values()) & set(types)) if copy_input else []
        if clashes:
            raise BagError(f"bag {bag} already has {', '.join(clashes)}; pick another --namespace")
        tracker = make_tracker(params)
        settings = output_settings(params)
        use_camera_info = params["camera_model"] == "camera_info"
        camera_k, input_shape, last_image_ns, reset_pending = None, None, None, False
        wanted = [c for c in reader.connections
                  if copy_input or c.topic in (image_topic, camera_info_topic, SCENE_RESET_TOPIC)]
        total = sum(c.msgcount for c in reader.connections if c.topic == image_topic)
        with BagWriter(out, storage, discard_on_error=True) as writer, tqdm(total=total, desc="track", unit="frame",
                                                     disable=not progress) as bar:
            for conn, t_ns, raw in reader.messages(connections=wanted):
                if copy_input:
                    writer.write(conn.topic, conn.msgtype, t_ns, raw)
                if conn.topic == SCENE_RESET_TOPIC and reset_on_scene:
                    reset_pending = True  # at the next image: a gap there must not reset a second time
                elif conn.topic == camera_info_topic and use_camera_info:
                    info = deserialize_message(bytes(raw), CameraInfo)
                    try:
                        tracker.camera = pinhole_camera(info.k, info.width, info.height, params)
                    except ValueError:
                        continue  # as the node: keep the previous camera (or none)
                    camera_k = tuple(info.k)
                elif conn.topic == image_topic:
                    bar.update()
                    gap = gap_s is not None and last_image_ns is not None and t_ns - last_image_ns > gap_s * 1e9
                    if reset_pending or gap:
                        tracker.reset()
                        stats.resets += 1
                    reset_pending, last_image_ns = False, t_ns
                    msg = deserialize_message(bytes(raw), CompressedImage if compressed else Image)
                    try:
                        image = (_decompressed(msg, tracker.resolution, params["max_aspect_error"]) if compressed
                                 else rgb_frame(msg, tracker.resolution, params["max_aspect_error"]))
                    except FrameRejected as err:
                        stats.skipped[str(err)] = stats.skipped.get(str(err), 0) + 1
                        continue
                    if input_shape is not None and image.shape[:2] != input_shape:
                        tracker.reset()  # as the node does when the input size changes
                    input_shape = image.shape[:2]
                    tracked = tracker.step(image)
                    stats.frames += 1
                    outputs = build_outputs(image, tracked, msg.header, settings, camera_k=camera_k,
                                            detections="detections" in topics, masks="masks" in topics,
                                            debug="debug_image" in topics, markers="markers" in topics)
                    for name, topic in topics.items():
                        writer.write(topic, OUTPUT_TYPES[name], t_ns, getattr(outputs, name))
                        stats.written[topic] += 1
    for problem, count in stats.skipped.items():
        print(f"[bag track] dropped {count} frame(s), {problem}", file=sys.stderr)
    return stats



def _decompressed(msg, resolution: tuple[int, int], max_aspect_error: float):
    """A sensor_msgs/CompressedImage as the (H, W, 3) uint8 RGB frame to track (rgb_frame's checks)."""
    from loci_core.data.bag_footage import image_rgb
    from loci_core.data.footage import FootageError

    try:
        image = image_rgb(msg, COMPRESSED, "compressed image")
    except FootageError as err:
        raise FrameRejected(f"format {msg.format}", f"image: {err}") from None
    problem = size_problem(image.shape[1], image.shape[0], resolution, max_aspect_error)
    if problem:
        raise FrameRejected(f"size {image.shape[1]}x{image.shape[0]}", f"image: {problem}")
    return image
