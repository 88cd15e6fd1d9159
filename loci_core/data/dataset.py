"""`CaterVideos`: a torch Dataset over a CATER-format directory (real CATER or generated).

Frames are decoded once, resized to the training resolution and cached as raw uint8 memory-mapped arrays
(`<cache>/<H>x<W>/<name>.frames.u8`, shape (T, 3, H, W); frame_cache.py). Later epochs only read the memmap.
Footage without labels (video folders, bags) has its own Dataset with the same first items: footage.py.

Item (T = whole video or clip_len frames; K padded to MAX_OBJECTS = 10, `num_objects` real ones):
    frames            uint8   (T, 3, H, W) RGB
    background        float32 (3, H, W) in [0, 1] (the `background` image given, else backgrounds/<name>.png,
                              else background.png, else the per-pixel median of 32 frames of the video)
    snitch_world      float32 (T, 3);  snitch_screen float32 (T, 2) (p_row, p_col) through the camera
    label             int     6x6 class of the snitch at the video's last frame (CATER's label)
    clip_label        int     6x6 class at the clip's last frame;  start  int  first frame of the clip
    contained         bool    (T,) the snitch is under a cone (physical, see trajectory.py)
    snitch_known      bool    (T,) the snitch was seen at some frame of the clip up to this one, so its
                              position there is knowable from the clip alone (visible per the ground-truth
                              states; without them: not contained)
    name              str
    num_objects       int;  object_world float32 (T, K, 3);  object_screen float32 (T, K, 2)
    object_shape      int64 (K,) index into scene.ALL_SHAPES (-1 = padding);  object_size float32 (K,) sized
    object_material   int64 (K,) index into scene.MATERIALS;  object_rgb uint8 (K, 3)
    camera            float32 (T, 4, 4) the camera matrix per frame
  when loci's extras exist:
    instance_ids      uint8   (T, H, W) (nearest-neighbour resized; 0 = background, k + 1 = object k)
    object_states     int8    (T, K) 0 visible 1 occluded 2 contained 3 carried (-1 = padding)
    visible_fraction  float32 (T, K)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from loci_core.data import reader
from loci_core.data import scene as S
from loci_core.data.camera import ProjectiveCamera, grid_class
from loci_core.data.frame_cache import FrameCache, file_fingerprint
from loci_core.data.trajectory import containers

MAX_OBJECTS = S.MAX_OBJECTS
MEDIAN_FRAMES = 32
VISIBLE_STATE = 0  # object_states: 0 visible 1 occluded 2 contained 3 carried


def resize_frame(frame: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    h, w = size
    if frame.shape[:2] == (h, w):
        return frame
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if frame.shape[0] >= h else cv2.INTER_LINEAR
    return cv2.resize(frame, (w, h), interpolation=interp)


def median_background(frames: np.ndarray) -> np.ndarray:
    """(T, 3, H, W) uint8 -> (H, W, 3) uint8: the per-pixel median of MEDIAN_FRAMES frames spread over the
    video, the empty scene wherever objects move on."""
    pick = np.linspace(0, len(frames) - 1, min(MEDIAN_FRAMES, len(frames))).astype(int)
    return np.median(frames[pick], axis=0).astype(np.uint8).transpose(1, 2, 0)


def background_image(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a user-given background image at the data set's resolution."""
    return resize_frame(reader.read_background(Path(path)), size)


def clip_range(clip_len: int | None, clip_start: str | int, seed: int, epoch: int, index: int,
               t_count: int, onsets: np.ndarray | None = None, lead: int = 0) -> tuple[int, int]:
    """[start, stop) of item `index`'s clip in a video of t_count frames; random starts depend on
    (seed, epoch, index) only, so every data source gives the same clips for the same seed.
    clip_start 'containment': a window starting up to `lead` frames before one of the `onsets` (frames where
    the snitch goes under a cone), random where there is none."""
    if clip_len is None or clip_len >= t_count:
        return 0, t_count
    room = t_count - clip_len
    rng = np.random.default_rng(np.random.SeedSequence([seed, epoch, index]))
    if clip_start == "containment" and onsets is not None and len(onsets):
        # a window that sees the snitch go under a cone, and then as much carrying as fits
        start = min(max(int(rng.choice(onsets)) - int(rng.integers(0, lead + 1)), 0), room)
        return start, start + clip_len
    if clip_start in ("random", "containment"):
        return (start := int(rng.integers(0, room + 1))), start + clip_len
    if clip_start == "fixed":
        return room, t_count  # the clip that ends on the labelled last frame
    start = min(max(int(clip_start), 0), room)
    return start, start + clip_len


class CaterVideos(torch.utils.data.Dataset):
    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: tuple[int, int] = (240, 320),
        clip_len: int | None = None,
        clip_start: str | int = "random",
        seed: int = 0,
        lead: int = 12,
        cache_dir: str | Path | None = None,
        with_extras: bool = True,
        background: str | Path | None = None,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise reader.CaterFormatError(f"{self.root}: data set directory does not exist")
        self.entries = reader.read_split(self.root, split)
        self.size = (int(size[0]), int(size[1]))
        self.clip_len = clip_len
        if not (clip_start in ("random", "fixed", "containment") or isinstance(clip_start, int)):
            raise ValueError(f"clip_start must be 'random', 'fixed', 'containment' or an int, got {clip_start!r}")
        self.clip_start = clip_start
        self.lead = int(lead)
        self.seed = int(seed)
        self.epoch = 0
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / "cache"
        self.cache = FrameCache(self.cache_dir, self.size)
        self.background_path = Path(background) if background else None
        if self.background_path is not None:
            background_image(self.background_path, self.size)  # a bad path fails now, not mid-training
        self.with_extras = with_extras
        self._scenes: dict[str, S.Scene] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        """Random clip starts depend on (seed, epoch, index), so each epoch sees different clips."""
        self.epoch = int(epoch)

    # ---- files ---------------------------------------------------------------------------------
    def scene(self, name: str) -> S.Scene:
        if name not in self._scenes:
            self._scenes[name] = reader.read_scene(self.root / "scenes" / f"{name}.json")
        return self._scenes[name]

    def frames(self, name: str) -> np.ndarray:
        """(T, 3, H, W) uint8 memmap of the whole video at the dataset resolution."""
        t_count = self.scene(name).num_frames
        video = self.root / "videos" / f"{name}.avi"
        if not video.is_file():
            raise reader.CaterFormatError(f"{video}: video file is missing")

        def build():
            rgb = reader.read_video(video, t_count)
            return np.stack([resize_frame(f, self.size) for f in rgb]).transpose(0, 3, 1, 2).copy()

        return self.cache.cached(name, "frames", file_fingerprint(video), (t_count, 3, *self.size), build)

    def has_ground_truth(self, name: str) -> bool:
        return self.with_extras and (self.root / "ground_truth" / f"{name}.npz").is_file()

    def ground_truth(self, name: str) -> dict[str, np.ndarray] | None:
        sc = self.scene(name)
        path = self.root / "ground_truth" / f"{name}.npz"
        if not self.has_ground_truth(name):
            return None
        gt = reader.read_ground_truth(path, sc.num_frames, len(sc.objects))

        def build():
            return np.stack([resize_frame(i, self.size, nearest=True) for i in gt["ids"]])

        gt["ids"] = self.cache.cached(name, "ids", file_fingerprint(path), (sc.num_frames, *self.size), build)
        return gt

    def background(self, name: str) -> np.ndarray:
        """(H, W, 3) uint8 RGB background of one video."""
        if self.background_path is not None:
            return background_image(self.background_path, self.size)
        for path in (self.root / "backgrounds" / f"{name}.png", self.root / "background.png"):
            if path.is_file():
                return resize_frame(reader.read_background(path), self.size)
        return median_background(self.frames(name))

    def background_source(self) -> str:
        """Says where the backgrounds come from (for `loci data stats` and logs)."""
        if self.background_path is not None:
            return f"the given image {self.background_path}"
        if (self.root / "backgrounds").is_dir():
            return f"{self.root / 'backgrounds'}/<video>.png (each video's empty scene)"
        if (self.root / "background.png").is_file():
            return f"{self.root / 'background.png'}"
        return f"the per-pixel median of {MEDIAN_FRAMES} frames of each video"

    def nominal_background(self) -> np.ndarray:
        """(H, W, 3) uint8: the data set's one empty scene, stored in checkpoints for the tracker and the GUI
        (videos with a jittered camera have their own, passed per batch)."""
        if self.background_path is not None:
            return background_image(self.background_path, self.size)
        path = self.root / "background.png"
        if not path.is_file():
            raise reader.CaterFormatError(f"{path}: the data set has no background.png (needed by Loci's "
                                          "static background); give one with --background IMG")
        return resize_frame(reader.read_background(path), self.size)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    # ---- items ----------------------------------------------------------------------------------
    @staticmethod
    def _containment_onsets(sc: S.Scene) -> np.ndarray:
        """Frames at which the snitch goes under a cone."""
        inside = containers(sc)[sc.snitch_index] >= 0
        return np.flatnonzero(inside[1:] & ~inside[:-1]) + 1

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        name = entry.name
        sc = self.scene(name)
        onsets = self._containment_onsets(sc) if self.clip_start == "containment" else None
        t0, t1 = clip_range(self.clip_len, self.clip_start, self.seed, self.epoch, index, sc.num_frames,
                            onsets, self.lead)
        k_count = len(sc.objects)
        if k_count > MAX_OBJECTS:
            raise reader.CaterFormatError(f"{name}: {k_count} objects, at most {MAX_OBJECTS} supported")
        snitch = sc.snitch_index
        world = sc.locations[:, t0:t1].transpose(1, 0, 2)  # (T, K, 3)
        screen = np.stack(
            [ProjectiveCamera(sc.cameras[t]).world_to_screen(world[i]) for i, t in enumerate(range(t0, t1))]
        )
        pad = MAX_OBJECTS - k_count
        item = {
            "frames": torch.from_numpy(
                np.array(self.frames(name)[t0:t1])
            ),  # copy out of the read-only memmap
            "background": torch.from_numpy(
                self.background(name).transpose(2, 0, 1).astype(np.float32) / 255.0
            ),
            "snitch_world": torch.from_numpy(world[:, snitch].astype(np.float32)),
            "snitch_screen": torch.from_numpy(screen[:, snitch].astype(np.float32)),
            "label": int(grid_class(sc.locations[snitch, -1])),
            "clip_label": int(grid_class(sc.locations[snitch, t1 - 1])),
            "start": t0,
            "contained": torch.from_numpy(containers(sc)[snitch, t0:t1] >= 0),
            "name": name,
            "num_objects": k_count,
            "object_world": torch.from_numpy(np.pad(world, ((0, 0), (0, pad), (0, 0))).astype(np.float32)),
            "object_screen": torch.from_numpy(np.pad(screen, ((0, 0), (0, pad), (0, 0))).astype(np.float32)),
            "object_shape": torch.tensor([S.ALL_SHAPES.index(o.shape) for o in sc.objects] + [-1] * pad),
            "object_size": torch.tensor([o.sized for o in sc.objects] + [0.0] * pad, dtype=torch.float32),
            "object_material": torch.tensor(
                [S.MATERIALS.index(o.material) if o.material in S.MATERIALS else -1 for o in sc.objects]
                + [-1] * pad
            ),
            "object_rgb": torch.tensor(
                [list(o.rgb) for o in sc.objects] + [[0, 0, 0]] * pad, dtype=torch.uint8
            ),
            "camera": torch.from_numpy(sc.cameras[t0:t1].astype(np.float32)),
        }
        if entry.label is not None and entry.label != item["label"]:
            raise reader.CaterFormatError(
                f"{self.root / 'lists'}: {name} is listed with class {entry.label}, "
                f"but its scene gives {item['label']}"
            )
        gt = self.ground_truth(name)
        seen = ~item["contained"].numpy()
        if gt is not None:
            seen = gt["states"][t0:t1, snitch] == VISIBLE_STATE
        item["snitch_known"] = torch.from_numpy(np.maximum.accumulate(seen))
        if gt is not None:
            item["instance_ids"] = torch.from_numpy(np.array(gt["ids"][t0:t1]))
            item["object_states"] = torch.from_numpy(
                np.pad(gt["states"][t0:t1], ((0, 0), (0, pad)), constant_values=-1).astype(np.int8)
            )
            item["visible_fraction"] = torch.from_numpy(
                np.pad(gt["visible_fraction"][t0:t1], ((0, 0), (0, pad))).astype(np.float32)
            )
        return item
