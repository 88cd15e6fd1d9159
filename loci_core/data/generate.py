"""Generate a CATER-style data set: sample, render and write N videos (in parallel worker processes).

Video i of a data set with seed S is drawn from its own generator SeedSequence([S, i]), so the output is
byte-identical for the same arguments whatever the number of workers.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from loci_core.data import writer
from loci_core.data.camera import CATER_MATRIX
from loci_core.data.renderer import Renderer
from loci_core.data.sampler import LAMP_POSITIONS, sample_scene, video_rng
from loci_core.data.scene import FRAMES, Lights


@dataclass(frozen=True)
class GenerateOptions:
    size: tuple[int, int] = (240, 320)  # (H, W)
    frames: int = FRAMES
    jitter: bool = True
    moving_camera: bool = False
    lossless: bool = False
    supersample: int = 1


def nominal_lights() -> Lights:
    dirs = LAMP_POSITIONS / ((LAMP_POSITIONS**2).sum(axis=1, keepdims=True) ** 0.5)
    return Lights(key=dirs[0], fill=dirs[1], back=dirs[2])


def generate_one(root: Path, index: int, seed: int, opts: GenerateOptions) -> tuple[str, int]:
    """Sample, render and write video `index`; returns (name, label)."""
    scene = sample_scene(
        video_rng(seed, index), opts.frames, jitter=opts.jitter, moving_camera=opts.moving_camera
    )
    renderer = Renderer(opts.size, opts.supersample)
    frames = renderer.render(scene)
    background = renderer.background(scene.cameras[0], scene.lights)
    name = writer.video_name(index)
    writer.write_video_set(Path(root), name, index, seed, scene, frames, background, opts.lossless)
    return name, writer.label_of(scene)


def _job(args):
    return generate_one(*args)


def generate_dataset(
    root: Path, videos: int, seed: int, opts: GenerateOptions, workers: int = 1, progress: bool = True
) -> dict[str, int]:
    """Write `videos` videos under root plus split lists and the nominal background; returns name -> label."""
    from tqdm import tqdm

    root = Path(root)
    writer.make_dirs(root)
    renderer = Renderer(opts.size, opts.supersample)
    writer.write_png(root / "background.png", renderer.background(CATER_MATRIX, nominal_lights()))
    jobs = [(root, i, seed, opts) for i in range(videos)]
    labels: dict[str, int] = {}
    bar = tqdm(total=videos, desc="generate", unit="video", disable=not progress)
    if workers <= 1:
        for job in jobs:
            name, label = _job(job)
            labels[name] = label
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for name, label in pool.map(_job, jobs):
                labels[name] = label
                bar.update()
    bar.close()
    writer.write_lists(root, labels, seed)
    return labels
