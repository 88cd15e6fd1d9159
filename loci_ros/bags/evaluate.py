"""`loci bag eval`: tracking scores of the label images in a tracked bag, against a data set's ground truth.

The tracked bag holds a tracker's answers: mono8 label images (0 = background, k + 1 = entity k), each
with the header of the frame it answers, as `loci bag track` writes them and as `loci bag record` records
them from a live node. A recorder stores messages at their arrival time, so answers are matched to frames
by header stamp, never by bag time. The scenes bag, made by `loci bag make` from the data set, says which
frames were sent: each video begins with a /loci/scene_reset whose header names the video and carries the
stamp of its first frame, and its /camera/image_raw frames follow; frame i of a video is frame i of that
name in the data set, whose ground_truth/ files hold the masks to score against.

Entity positions (for the position error and "lost" per object state) come from the tracker's detections
on the topic next to the masks (`<namespace>/detections`, box centres; Detection2D.id = entity k) when the
bag has it: the tracker keeps reporting an entity there while it is hidden, when its label image has no
pixels of it. Without detections, positions are the centroids of the label images, so a hidden object
counts as lost.

A frame the tracker did not answer (a live node drops frames to stay real-time) counts with the previous
answer in its video, which is what a consumer of the topic would be showing; before a video's first answer
that is an empty label image. The label image answering frame t is the tracker's segmentation of frame t,
so every frame is scored (in `loci eval`, Loci's call on frame t predicts frame t + 1 instead), at the
label images' resolution, by loci_core.evaluation.evaluate's evaluate_tracks and summarise_tracks.
"""

from __future__ import annotations

import bisect
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loci_ros.bags import IMAGE_TOPIC, SCENE_RESET_TOPIC
from loci_ros.bags.storage import BagError, open_bag

DEFAULT_MASKS_TOPIC = "/loci/masks"
IMAGE = "sensor_msgs/msg/Image"
DETECTIONS = "vision_msgs/msg/Detection2DArray"
LABEL_ENCODINGS = ("mono8", "8UC1")


@dataclass
class SceneVideo:
    name: str
    stamps: list[int]
    """header stamps (ns) of the video's frames, in order"""


def _copy_image(msg: Any) -> np.ndarray:
    from loci_ros.image_conversion import image_to_numpy

    # image_to_numpy may view the reader's buffer; a copy lets that buffer go
    return np.array(image_to_numpy(msg))


def read_images(bag: str | Path, topic: str, keep: Callable[[Any], Any] = _copy_image) -> dict[int, Any]:
    """{header stamp (ns): keep(message)} of the sensor_msgs/Image messages on `topic` of `bag`
    (by default each image as an array)."""
    from loci_ros.vision_types import stamp_ns, typestore

    store = typestore()
    with open_bag(bag) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        if not conns:
            topics = sorted({c.topic for c in reader.connections})
            raise BagError(f"bag {bag} has no topic {topic} (it has: {', '.join(topics) or 'none'})")
        wrong = sorted({c.msgtype for c in conns} - {IMAGE})
        if wrong:
            raise BagError(f"bag {bag}: {topic} carries {', '.join(wrong)}, not {IMAGE}")
        return {stamp_ns(msg.header): keep(msg)
                for msg in (store.deserialize_cdr(raw, conn.msgtype)
                            for conn, _, raw in reader.messages(connections=conns))}


def detections_topic_for(masks_topic: str) -> str:
    """The tracker node's detections topic in the namespace of its `masks_topic`."""
    return f"{masks_topic.rsplit('/', 1)[0]}/detections"


def read_detection_centres(bag: str | Path, topic: str) -> dict[int, dict[int, tuple[float, float]]] | None:
    """{header stamp (ns): {entity id: (x, y) box centre in pixels}} of the Detection2DArray messages on
    `topic` of `bag`, or None when the bag has no such topic."""
    from loci_ros.vision_types import stamp_ns, typestore

    store = typestore()
    with open_bag(bag) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        if not conns:
            return None
        wrong = sorted({c.msgtype for c in conns} - {DETECTIONS})
        if wrong:
            raise BagError(f"bag {bag}: {topic} carries {', '.join(wrong)}, not {DETECTIONS}")
        out = {}
        for conn, _, raw in reader.messages(connections=conns):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            centres = {}
            for det in msg.detections:
                if not det.id.isdigit():
                    raise BagError(f"bag {bag}: {topic} has a detection with id {det.id!r}; tracker detections "
                                   "carry the entity number k (label k + 1 in the label images)")
                centres[int(det.id)] = (float(det.bbox.center.position.x), float(det.bbox.center.position.y))
            out[stamp_ns(msg.header)] = centres
        return out


def scene_videos(bag: str | Path) -> list[SceneVideo]:
    """The videos of a scenes bag (`loci bag make`) in stamp order, with the header stamps of their frames.

    A frame belongs to the last scene reset stamped at or before it; stamps decide rather than the order
    of messages, which a reader need not keep for a reset and a frame of equal bag time."""
    from loci_ros.vision_types import stamp_ns, typestore

    store = typestore()
    resets, frames = [], []
    with open_bag(bag) as reader:
        topics = {c.topic for c in reader.connections}
        missing = [t for t in (SCENE_RESET_TOPIC, IMAGE_TOPIC) if t not in topics]
        if missing:
            raise BagError(f"bag {bag} has no {' and no '.join(missing)}, so it is not a scenes bag "
                           "(one made by `loci bag make`)")
        conns = [c for c in reader.connections if c.topic in (SCENE_RESET_TOPIC, IMAGE_TOPIC)]
        for conn, _, raw in reader.messages(connections=conns):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            if conn.topic == SCENE_RESET_TOPIC:
                resets.append((stamp_ns(msg), msg.frame_id))
            else:
                frames.append(stamp_ns(msg.header))
    resets.sort(key=lambda r: r[0])
    starts = [t for t, _ in resets]
    videos = [SceneVideo(name, []) for _, name in resets]
    for t in sorted(frames):
        i = bisect.bisect_right(starts, t) - 1
        if i < 0:
            raise BagError(f"bag {bag}: frames stamped before its first {SCENE_RESET_TOPIC}, so they "
                           "belong to no named video")
        videos[i].stamps.append(t)
    return [v for v in videos if v.stamps]


def _packer(bag: str | Path, topic: str) -> Callable[[Any], tuple[tuple[int, int], bytes]]:
    """keep() for read_images that checks label images and stores them deflated: label images are
    mostly one value, so a whole test split of answers fits in memory before its videos are scored."""
    from loci_ros.image_conversion import image_to_numpy

    def pack(msg: Any) -> tuple[tuple[int, int], bytes]:
        if msg.encoding not in LABEL_ENCODINGS:
            raise BagError(f"bag {bag}: {topic} carries {msg.encoding} images, not mono8 label images "
                           "(0 = background, k + 1 = entity k)")
        labels = np.ascontiguousarray(image_to_numpy(msg))
        return labels.shape, zlib.compress(labels.tobytes(), 1)

    return pack


def _unpack(packed: tuple[tuple[int, int], bytes]) -> np.ndarray:
    shape, data = packed
    return np.frombuffer(zlib.decompress(data), np.uint8).reshape(shape)


def _label_stack(stamps: list[int], answers: dict, size: tuple[int, int]) -> tuple[np.ndarray, int]:
    """(T, H, W) labels of one video's frames, unanswered frames holding the previous answer; and how many
    frames were answered."""
    import cv2

    labels = np.zeros((len(stamps), *size), np.uint8)
    current, answered = labels[0].copy(), 0
    for i, t in enumerate(stamps):
        if t in answers:
            current = _unpack(answers[t])
            if current.shape != size:
                current = cv2.resize(current, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
            answered += 1
        labels[i] = current
    return labels, answered


def _position_stack(stamps: list[int], answers: dict, centres: dict, entities: int) -> np.ndarray:
    """(T, E, 2) screen (p_row, p_col) of each entity from the detections answering one video's frames
    (NaN where an entity has no detection); unanswered frames hold the previous answer, as the labels do.
    Box centres are in the pixels of the label image they came with (pixel j spans [j, j + 1))."""
    positions = np.full((len(stamps), entities, 2), np.nan)
    current = positions[0].copy()
    for i, t in enumerate(stamps):
        if t in answers:
            h, w = answers[t][0]
            current = np.full((entities, 2), np.nan)
            for k, (x, y) in centres.get(t, {}).items():
                if k < entities:
                    current[k] = (2 * y / h - 1, 2 * x / w - 1)
        positions[i] = current
    return positions


def _headline(scores: dict) -> dict:
    return {k: scores[k] for k in ("mota", "idf1", "fg_ari", "miou")}


def score_tracked_bag(tracked: str | Path, scenes: str | Path, data: str | Path,
                      masks_topic: str = DEFAULT_MASKS_TOPIC, detections_topic: str | None = None) -> dict:
    """Tracking scores of the label images on `masks_topic` of `tracked` for the videos of `scenes`
    against the ground truth in the CATER-format directory `data`. Entity positions come from
    `detections_topic` (default: the one next to the masks, if the bag has it; "" = mask centroids).

    Returns summarise_tracks' scores plus frames_answered / frames_sent, answers_unmatched (label images
    whose stamp is no frame of the scenes bag), resolution (H, W), the inputs, and `videos`: per video its
    name, frames answered and sent, MOTA, IDF1, FG-ARI and mIoU. Raises BagError for unusable bags,
    loci_core's EvalError / CaterFormatError for a data set that does not fit the scenes bag."""
    from loci_core.data import reader
    from loci_core.data.dataset import CaterVideos
    from loci_core.evaluation.evaluate import EvalError, evaluate_tracks, summarise_tracks

    answers = read_images(tracked, masks_topic, keep=_packer(tracked, masks_topic))
    centres = None
    if detections_topic != "":
        topic = detections_topic or detections_topic_for(masks_topic)
        centres = read_detection_centres(tracked, topic)
        if centres is None and detections_topic:
            raise BagError(f"bag {tracked} has no topic {detections_topic}")
    videos = scene_videos(scenes)
    if not Path(data).is_dir():
        raise EvalError(f"data set {data} does not exist")
    in_data = {e.name for e in reader.read_split(Path(data), "all")}
    missing = [v.name for v in videos if v.name not in in_data]
    if missing:
        raise EvalError(f"video {', '.join(missing)} of the scenes bag {scenes} is not in the data set {data}")
    sent = {t for v in videos for t in v.stamps}
    matched = sorted(sent & answers.keys())
    if not matched:
        raise EvalError(f"none of the {len(answers)} label images on {masks_topic} of {tracked} carries the "
                        f"stamp of one of the {len(sent)} frames of {scenes}; was the tracker fed from this "
                        "scenes bag?")
    size = tuple(int(n) for n in answers[matched[0]][0])
    dataset = CaterVideos(data, split="all", size=size)
    index = {e.name: i for i, e in enumerate(dataset.entries)}
    # entity k has label k + 1; the detections may name entities no label image shows (hidden all along)
    detected = 1 + max((k for c in centres.values() for k in c), default=-1) if centres is not None else 0
    per_video, rows = [], []
    for video in videos:
        num_frames = dataset.scene(video.name).num_frames
        if num_frames != len(video.stamps):
            raise EvalError(f"video {video.name} has {len(video.stamps)} frames in {scenes} but {num_frames} "
                            f"in {data}")
        labels, answered = _label_stack(video.stamps, answers, size)
        positions = None
        if centres is not None:
            positions = _position_stack(video.stamps, answers, centres, max(int(labels.max()), detected))
        scores = evaluate_tracks(labels, dataset[index[video.name]], positions, frames=slice(0, None))
        per_video.append(scores)
        rows.append({"name": video.name, "frames_answered": answered, "frames_sent": len(video.stamps),
                     **_headline(summarise_tracks([scores]))})
    summary = summarise_tracks(per_video)
    summary.update(frames_answered=sum(r["frames_answered"] for r in rows),
                   frames_sent=sum(r["frames_sent"] for r in rows), answers_unmatched=len(answers) - len(matched),
                   resolution=list(size), tracked_bag=str(tracked), scenes_bag=str(scenes), data=str(data),
                   masks_topic=masks_topic, videos=rows,
                   positions_from=topic if centres is not None else "label image centroids")
    return summary


def _f(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if np.isfinite(x) else "n/a"


def markdown(summary: dict, title: str = "tracker") -> str:
    """The scores of score_tracked_bag as a two-column Markdown table headed `title`."""
    rows = [("frames answered / sent", f"{summary['frames_answered']} / {summary['frames_sent']}"),
            ("MOTA", _f(summary["mota"])), ("IDF1", _f(summary["idf1"])),
            ("FG-ARI", _f(summary["fg_ari"])), ("mIoU", _f(summary["miou"]))]
    for state, value in summary["position"].items():
        if value["frames"]:
            rows.append((f"position error, {state} (px; lost)",
                         f"{_f(value['error_px'], 2)} ({_f(value['lost'], 2)})"))
    return "\n".join([f"| {title} | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def report(summary: dict) -> str:
    """What `loci bag eval` prints and writes to results.md: what was scored, then the table."""
    h, w = summary["resolution"]
    return (f"Tracking scores of `{summary['masks_topic']}` in `{summary['tracked_bag']}` against the ground "
            f"truth of `{summary['data']}`: {len(summary['videos'])} video(s) of `{summary['scenes_bag']}` at "
            f"{w}x{h}; a frame without an answer keeps the previous one; entity positions from "
            f"{summary['positions_from']}.\n\n"
            + markdown(summary, "tracked bag"))


def default_out(tracked: str | Path) -> Path:
    """`<bag>-eval/` next to the tracked bag (a single-file bag without its suffix)."""
    tracked = Path(tracked)
    return tracked.with_name(f"{tracked.name if tracked.is_dir() else tracked.stem}-eval")


def write_results(summary: dict, out: str | Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=float))
    (out / "results.md").write_text(report(summary) + "\n")
