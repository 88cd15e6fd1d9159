"""Read CATER-format data sets: real CATER (videos, scenes, lists) and generated ones (plus loci's extras).

Every problem with the input raises `CaterFormatError` naming the file and what is wrong with it.
The format is described in loci_core/data/writer.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from loci_core.data import scene as S
from loci_core.data.camera import CATER_MATRIX
from loci_core.data.sampler import LAMP_POSITIONS

SPLIT_FILES = {"train": ("train.txt",), "test": ("val.txt",), "all": ("train.txt", "val.txt")}


class CaterFormatError(ValueError):
    """Bad or missing CATER data; the message names the file and the problem."""


@dataclass
class VideoEntry:
    name: str
    label: int | None


def _default_lights() -> S.Lights:
    dirs = LAMP_POSITIONS / np.linalg.norm(LAMP_POSITIONS, axis=1, keepdims=True)
    return S.Lights(key=dirs[0], fill=dirs[1], back=dirs[2])


def read_split(root: Path, split: str = "all") -> list[VideoEntry]:
    """Entries of lists/localize/{train,val}.txt ('train', 'test' = val.txt, or 'all')."""
    if split not in SPLIT_FILES:
        raise CaterFormatError(f"unknown split {split!r}; use one of {sorted(SPLIT_FILES)}")
    entries = []
    for fname in SPLIT_FILES[split]:
        path = Path(root) / "lists" / "localize" / fname
        if not path.is_file():
            raise CaterFormatError(f"{path}: split list is missing")
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) > 2 or (len(parts) == 2 and not parts[1].lstrip("-").isdigit()):
                raise CaterFormatError(f"{path}:{lineno}: expected '<video>.avi <class>', got {line!r}")
            name = Path(parts[0]).stem
            entries.append(VideoEntry(name, int(parts[1]) if len(parts) == 2 else None))
    return entries


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise CaterFormatError(f"{path}: scene JSON is missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CaterFormatError(f"{path}: not valid JSON ({err})") from err


def _require(obj: dict, key: str, path: Path, where: str = ""):
    if key not in obj:
        raise CaterFormatError(f"{path}: missing field {where}{key!r}")
    return obj[key]


def read_scene(path: Path) -> S.Scene:
    """Parse a CATER scene JSON (real or generated) into a Scene."""
    path = Path(path)
    data = _load_json(path)
    raw_objects = _require(data, "objects", path)
    if not raw_objects:
        raise CaterFormatError(f"{path}: 'objects' is empty")
    objects, tracks = [], []
    rgb = data.get("loci", {}).get("rgb")
    for i, o in enumerate(raw_objects):
        where = f"objects[{i}]."
        shape = _require(o, "shape", path, where)
        if shape not in S.ALL_SHAPES:
            raise CaterFormatError(
                f"{path}: objects[{i}] has unknown shape name {shape!r} (known: {S.ALL_SHAPES})"
            )
        size = _require(o, "size", path, where)
        color = _require(o, "color", path, where)
        sized = float(o.get("sized", S.SNITCH_SIZE if shape == "spl" else S.SIZES.get(size, 0.5)))
        colour = (
            tuple(rgb[i])
            if rgb
            else (S.SNITCH_COLOR[1] if shape == "spl" else S.COLORS.get(color, (128,) * 3))
        )
        objects.append(
            S.SceneObject(
                shape=shape,
                size=size,
                sized=sized,
                material=o.get("material", "rubber"),
                color=color,
                rgb=tuple(int(c) for c in colour),
                instance=_require(o, "instance", path, where),
                rotation=float(o.get("rotation", 0.0)),
            )
        )
        locations = _require(o, "locations", path, where)
        try:
            frames = sorted(int(k) for k in locations)
        except ValueError as err:
            raise CaterFormatError(f"{path}: objects[{i}].locations has a non-integer frame key") from err
        if frames != list(range(len(frames))):
            raise CaterFormatError(
                f"{path}: objects[{i}].locations does not cover frames 0..{len(frames) - 1}"
            )
        tracks.append(np.array([locations[str(t)] for t in frames], dtype=np.float64))
    lengths = {len(t) for t in tracks}
    if len(lengths) != 1:
        raise CaterFormatError(
            f"{path}: objects have different numbers of frames in 'locations': {sorted(lengths)}"
        )
    if not any(o.shape == "spl" for o in objects):
        raise CaterFormatError(f"{path}: no snitch (shape 'spl') among the objects")
    t_count = lengths.pop()
    movements: dict[str, list[S.Movement]] = {o.instance: [] for o in objects}
    for inst, moves in data.get("movements", {}).items():
        for m in moves:
            if len(m) != 4 or m[0] not in S.ACTIONS:
                raise CaterFormatError(f"{path}: bad movement entry {m!r} of {inst!r}")
            movements.setdefault(inst, []).append(S.Movement(m[0], m[1], int(m[2]), int(m[3])))
    camera = data.get("camera", {})
    if "matrices" in camera:
        cameras = np.array(camera["matrices"], dtype=np.float64)
        if cameras.shape != (t_count, 4, 4):
            raise CaterFormatError(
                f"{path}: camera.matrices has shape {cameras.shape}, expected ({t_count}, 4, 4)"
            )
    else:
        matrix = np.array(camera.get("matrix", CATER_MATRIX), dtype=np.float64)
        if matrix.shape != (4, 4):
            raise CaterFormatError(f"{path}: camera.matrix has shape {matrix.shape}, expected (4, 4)")
        cameras = np.repeat(matrix[None], t_count, axis=0)
    lights = _default_lights()
    if "lights" in data:
        li = data["lights"]
        lights = S.Lights(
            key=np.array(li["key"]),
            fill=np.array(li["fill"]),
            back=np.array(li["back"]),
            intensities=tuple(li.get("intensities", lights.intensities)),
        )
    return S.Scene(
        objects,
        movements,
        np.stack(tracks),
        cameras,
        lights,
        bool(camera.get("moving", False)),
        extras={"loci": data.get("loci", {})},
    )


def read_video(path: Path, expected_frames: int | None = None) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames of an AVI (or any OpenCV-readable video)."""
    path = Path(path)
    if not path.is_file():
        raise CaterFormatError(f"{path}: video file is missing")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise CaterFormatError(f"{path}: OpenCV cannot open the video (unknown container or codec)")
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise CaterFormatError(f"{path}: no decodable frames (empty or corrupt video)")
    if expected_frames is not None and len(frames) < expected_frames:
        raise CaterFormatError(
            f"{path}: truncated video, {len(frames)} of {expected_frames} frames decodable"
        )
    if expected_frames is not None and len(frames) > expected_frames:
        raise CaterFormatError(
            f"{path}: frame count mismatch, the video has {len(frames)} frames, the scene {expected_frames}"
        )
    return np.stack(frames)


def read_ground_truth(path: Path, num_frames: int, num_objects: int) -> dict[str, np.ndarray] | None:
    """loci's extra ground truth, or None when the file does not exist (real CATER)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as err:  # zipfile/numpy raise many kinds of errors for corrupt files
        raise CaterFormatError(f"{path}: cannot read ground truth ({err})") from err
    for key in ("ids", "states", "visible_fraction"):
        if key not in data:
            raise CaterFormatError(f"{path}: missing array {key!r}")
    if data["ids"].shape[0] != num_frames or data["states"].shape != (num_frames, num_objects):
        raise CaterFormatError(
            f"{path}: frame/object count mismatch, ids {data['ids'].shape} states {data['states'].shape}, "
            f"scene has {num_frames} frames and {num_objects} objects"
        )
    return data


def read_background(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise CaterFormatError(f"{path}: background image is missing or unreadable")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
