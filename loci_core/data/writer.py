"""Write generated videos in CATER's on-disk layout, plus loci's extra ground truth.

Layout of a data set directory DIR (CATER's own files first; real CATER has only those):

    DIR/videos/<name>.avi          the video, 24 fps, MJPG (CATER's AVI_JPEG); `lossless` stores FFV1 instead
    DIR/scenes/<name>.json         CATER's scene file (below)
    DIR/lists/localize/train.txt   "<name>.avi <class>" lines: 70 % of the videos (CATER's train split)
    DIR/lists/localize/val.txt     the other 30 % (CATER calls it val; it is the test split)
    DIR/ground_truth/<name>.npz    loci extra: per-frame masks and object states (below)
    DIR/backgrounds/<name>.png     loci extra: the empty scene seen by this video's camera (frame 0)
    DIR/background.png             loci extra: the empty scene seen by the nominal CATER camera

Names are CATER's: CLEVR_new_000000, CLEVR_new_000001, ... The class is the 6x6 cell of the snitch's
(x, y) at the last frame: 6 (floor(y) + 3) + (floor(x) + 3).

Scene JSON, CATER's fields:
    image_index, image_filename (the .avi), split
    objects[]: shape (cube | sphere | cylinder | cone | spl), size (small | medium | large), sized (radius),
               material (rubber | metal), color, instance (e.g. "Spl_0"), rotation (initial yaw, degrees),
               3d_coords and pixel_coords (frame 0; pixel = (x, y, depth) at the rendered size),
               locations: {"0": [x, y, z], ..., "300": [x, y, z]} (object centre per frame)
    movements: {instance: [[action, other_instance_or_null, start_frame, end_frame], ...]}
               actions _slide, _pick_place, _rotate, _contain (other = the covered object), _no_op
    directions: CLEVR's ground-plane unit vectors (left/right/front/behind/above/below) of the camera
and loci's additions:
    camera: {"matrix": 4x4 (frame 0), "moving": bool, "matrices": [T x 4x4] (moving camera only),
             "z0": snitch plane height, "convention": "..."}: clip = M (x, y, z, 1), screen
             (p_row, p_col) = (-clip_y / clip_w, clip_x / clip_w)
    lights: {"key" | "fill" | "back": direction towards the lamp, "intensities": [3]}
    loci: {"format": 1, "num_frames": T, "size": [H, W], "fps": 24, "seed": S, "index": i, "rgb": [[r,g,b]]}

Ground-truth npz (T frames, K objects in the order of `objects`):
    ids               (T, H, W) uint8   0 = floor, k + 1 = object k (exact, at the rendered size)
    states            (T, K) int8       0 visible, 1 occluded, 2 contained, 3 carried
    visible_fraction  (T, K) float32    visible pixels / pixels the object would cover alone in the scene
    visible_pixels, amodal_pixels (T, K) int32; containers (T, K) int8 index of the covering cone or -1
All files are written deterministically (fixed zip timestamps, sorted keys), so a seed gives identical bytes.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np

from loci_core.data import scene as S
from loci_core.data.camera import CATER_Z0, ProjectiveCamera, grid_class, screen_to_pixel
from loci_core.data.renderer import Frames
from loci_core.data.trajectory import carried, containers

NAME_FORMAT = "CLEVR_new_{:06d}"
TRAIN_FRACTION = 0.7
CAMERA_CONVENTION = "clip = M @ (x, y, z, 1); (p_row, p_col) = (-clip[1] / clip[3], clip[0] / clip[3])"
JPEG_QUALITY = 95


def video_name(index: int) -> str:
    return NAME_FORMAT.format(index)


def object_states(scene: S.Scene, frames: Frames) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(states (T, K) int8, visible fraction (T, K) float32, containers (T, K) int8) from a rendering."""
    parent = containers(scene)  # (K, T)
    moving = carried(parent, scene.locations)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(frames.amodal > 0, frames.visible / np.maximum(frames.amodal, 1), 0.0)
    states = np.where(fraction < S.OCCLUDED_BELOW, S.OCCLUDED, S.VISIBLE)
    states = np.where(parent.T >= 0, S.CONTAINED, states)
    states = np.where(moving.T, S.CARRIED, states)
    return states.astype(np.int8), fraction.astype(np.float32), parent.T.astype(np.int8)


def directions(matrix: np.ndarray) -> dict[str, list[float]]:
    """CLEVR's camera-aligned ground directions."""
    _, view = ProjectiveCamera(matrix).decompose()
    out = {}
    for name, row, sign in (("right", 0, 1), ("behind", 2, 1)):
        v = view[row, :3].copy()
        v[2] = 0
        v = sign * v / np.linalg.norm(v)
        out[name] = v.tolist()
    out["left"] = (-np.array(out["right"])).tolist()
    out["front"] = (-np.array(out["behind"])).tolist()
    out["above"], out["below"] = [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]
    return out


def scene_to_json(scene: S.Scene, name: str, index: int, seed: int, size: tuple[int, int]) -> dict:
    cam0 = ProjectiveCamera(scene.cameras[0])
    objects = []
    for k, obj in enumerate(scene.objects):
        start = scene.locations[k, 0]
        row, col = screen_to_pixel(cam0.world_to_screen(start), size)
        objects.append(
            {
                "shape": obj.shape,
                "size": obj.size,
                "sized": obj.sized,
                "material": obj.material,
                "color": obj.color,
                "instance": obj.instance,
                "rotation": obj.rotation,
                "3d_coords": start.tolist(),
                "pixel_coords": [float(col), float(row), float(cam0.depth(start))],
                "locations": {str(t): scene.locations[k, t].tolist() for t in range(scene.num_frames)},
            }
        )
    camera = {
        "matrix": scene.cameras[0].tolist(),
        "moving": bool(scene.moving_camera),
        "z0": CATER_Z0,
        "convention": CAMERA_CONVENTION,
    }
    if scene.moving_camera:
        camera["matrices"] = scene.cameras.tolist()
    lights = scene.lights
    return {
        "image_index": index,
        "image_filename": f"{name}.avi",
        "split": "new",
        "objects": objects,
        "movements": {inst: [m.as_list() for m in moves] for inst, moves in scene.movements.items()},
        "directions": directions(scene.cameras[0]),
        "camera": camera,
        "lights": {
            "key": lights.key.tolist(),
            "fill": lights.fill.tolist(),
            "back": lights.back.tolist(),
            "intensities": list(lights.intensities),
        },
        "loci": {
            "format": 1,
            "num_frames": scene.num_frames,
            "size": list(size),
            "fps": S.FPS,
            "seed": int(seed),
            "index": int(index),
            "rgb": [list(o.rgb) for o in scene.objects],
        },
    }


def label_of(scene: S.Scene, grid: int = 6) -> int:
    return int(grid_class(scene.locations[scene.snitch_index, -1], grid))


# ---- files ---------------------------------------------------------------------------------------
def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: Path, obj: dict) -> None:
    _atomic_bytes(path, (json.dumps(obj, sort_keys=True, indent=1) + "\n").encode())


def write_png(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    _atomic_bytes(path, buf.tobytes())


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed, but with fixed zip timestamps so equal arrays give equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            zf.writestr(info, member.getvalue())
    _atomic_bytes(path, buf.getvalue())


def write_video(path: Path, rgb: np.ndarray, lossless: bool = False) -> None:
    """(T, H, W, 3) uint8 RGB -> AVI (MJPG, or FFV1 when lossless)."""
    t_count, h, w, _ = rgb.shape
    tmp = path.with_name(path.stem + ".tmp.avi")
    fourcc = cv2.VideoWriter_fourcc(*("FFV1" if lossless else "MJPG"))
    writer = cv2.VideoWriter(str(tmp), fourcc, S.FPS, (w, h))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot open a video writer ({'FFV1' if lossless else 'MJPG'})")
    if not lossless:
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, JPEG_QUALITY)
    for frame in rgb:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    os.replace(tmp, path)


def make_dirs(root: Path) -> None:
    for sub in ("videos", "scenes", "ground_truth", "backgrounds", "lists/localize"):
        (root / sub).mkdir(parents=True, exist_ok=True)


def write_video_set(
    root: Path,
    name: str,
    index: int,
    seed: int,
    scene: S.Scene,
    frames: Frames,
    background: np.ndarray,
    lossless: bool = False,
) -> None:
    """Write every file of one video."""
    size = frames.ids.shape[1:]
    write_video(root / "videos" / f"{name}.avi", frames.rgb, lossless)
    states, fraction, parent = object_states(scene, frames)
    write_npz(
        root / "ground_truth" / f"{name}.npz",
        {
            "ids": frames.ids,
            "states": states,
            "visible_fraction": fraction,
            "visible_pixels": frames.visible.astype(np.int32),
            "amodal_pixels": frames.amodal.astype(np.int32),
            "containers": parent,
        },
    )
    write_png(root / "backgrounds" / f"{name}.png", background)
    write_json(root / "scenes" / f"{name}.json", scene_to_json(scene, name, index, seed, size))


def write_lists(root: Path, labels: dict[str, int], seed: int) -> None:
    """CATER's split: shuffle with a fixed seed, first 70 % train.txt, the rest val.txt (the test split)."""
    names = sorted(labels)
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5917])).permutation(len(names))
    cut = int(round(TRAIN_FRACTION * len(names)))
    lists = root / "lists" / "localize"
    for fname, part in (("train.txt", order[:cut]), ("val.txt", order[cut:])):
        lines = "".join(f"{names[i]}.avi {labels[names[i]]}\n" for i in sorted(part))
        _atomic_bytes(lists / fname, lines.encode())
