"""The ray caster: exact masks, depth order, visibility counts, containment hiding, shading cues."""

import numpy as np
import pytest

from loci_core.data import scene as S
from loci_core.data.camera import CATER_MATRIX, ProjectiveCamera, screen_to_pixel
from loci_core.data.generate import nominal_lights
from loci_core.data.renderer import Renderer
from loci_core.data.sampler import sample_scene, video_rng
from loci_core.data.writer import object_states


def _scene(specs, frames=1, movements=None):
    """specs: (shape, sized, material, rgb, (x, y, z)); a static scene with the CATER camera."""
    objs, locs = [], []
    for i, (shape, sized, material, rgb, pos) in enumerate(specs):
        objs.append(
            S.SceneObject(shape, "medium", sized, material, "red", rgb, f"{S.BLENDER_NAMES[shape]}_{i}", 30.0)
        )
        locs.append(np.repeat(np.array(pos, dtype=float)[None], frames, 0))
    moves = {o.instance: [] for o in objs}
    moves.update(movements or {})
    return S.Scene(objs, moves, np.stack(locs), np.repeat(CATER_MATRIX[None], frames, 0), nominal_lights())


@pytest.mark.parametrize("shape", ["sphere", "cube", "cylinder", "cone", "spl"])
def test_each_shape_renders_alone_with_exact_counts(shape):
    sc = _scene([(shape, 0.5, "rubber", (200, 30, 30), (0.3, -0.4, 0.5))])
    fr = Renderer((120, 160)).render(sc, with_depth=True)
    mask = fr.ids[0] == 1
    assert mask.sum() > 50
    assert fr.visible[0, 0] == mask.sum() == fr.amodal[0, 0]
    # the object's pixels are closer than the floor would be, and reddish
    assert fr.depth[0][mask].max() < 12 and fr.depth[0][~mask].min() > 5
    assert (fr.rgb[0][mask][:, 0].astype(int) > fr.rgb[0][mask][:, 2]).mean() > 0.9
    # the mask contains the projected centre
    r, c = np.round(
        screen_to_pixel(ProjectiveCamera(CATER_MATRIX).world_to_screen(sc.locations[0, 0]), (120, 160))
    )
    assert mask[int(r), int(c)]


def test_depth_order_and_visible_fraction():
    cam = ProjectiveCamera(CATER_MATRIX)
    near = np.array([1.0, -1.0, 0.5])
    far = near + 2.0 * (near - cam.centre()) / np.linalg.norm(near - cam.centre())
    far[2] = 0.5
    sc = _scene([("cube", 0.5, "rubber", (200, 0, 0), near), ("sphere", 0.5, "metal", (0, 0, 200), far)])
    fr = Renderer((120, 160)).render(sc)
    assert fr.visible[0, 0] == fr.amodal[0, 0]
    assert fr.visible[0, 1] < fr.amodal[0, 1]  # the sphere behind is partly hidden
    states, fraction, _ = object_states(sc, fr)
    assert fraction[0, 0] == 1.0 and 0 <= fraction[0, 1] < 1.0
    assert states[0, 0] == S.VISIBLE


def test_contained_objects_are_hidden_and_marked():
    moves = {"Cone_0": [S.Movement(S.CONTAIN, "Spl_1", 0, 0)]}
    sc = _scene(
        [
            ("cone", 0.75, "rubber", (0, 150, 0), (0.0, 0.0, 0.75)),
            ("spl", 0.3, "metal", (255, 215, 0), (0.0, 0.0, 0.3)),
        ],
        frames=2,
        movements=moves,
    )
    sc.locations[:, 1, 0] += 0.5  # the stack slides: the snitch is carried in frame 1
    fr = Renderer((60, 80)).render(sc)
    assert (fr.ids != 2).all() and fr.visible[:, 1].sum() == 0
    assert fr.amodal[:, 1].min() > 0  # it would be visible alone
    states, fraction, parent = object_states(sc, fr)
    assert states[0, 1] == S.CONTAINED and states[1, 1] == S.CARRIED
    assert parent[0, 1] == 0 and parent[0, 0] == -1


def test_metal_has_highlights_and_shadows_darken_the_floor():
    rubber = _scene([("sphere", 0.75, "rubber", (128, 128, 128), (0.0, 0.0, 0.75))])
    metal = _scene([("sphere", 0.75, "metal", (128, 128, 128), (0.0, 0.0, 0.75))])
    r = Renderer((120, 160))
    a, b = r.render(rubber), r.render(metal)
    assert (a.ids == b.ids).all()
    mask = a.ids[0] == 1
    assert b.rgb[0][mask].max() > a.rgb[0][mask].max()  # specular highlight
    floor = r.background(CATER_MATRIX, nominal_lights())
    shadowed = (a.rgb[0].astype(int).sum(-1) < floor.astype(int).sum(-1) - 30) & ~mask
    assert shadowed.sum() > 20


def test_supersampling_keeps_exact_ids_and_moving_camera_renders():
    sc = sample_scene(video_rng(3, 1), num_frames=3, jitter=False)
    plain = Renderer((60, 80)).render(sc)
    smooth = Renderer((60, 80), supersample=3).render(sc)
    assert (plain.ids == smooth.ids).all()
    assert np.abs(plain.rgb.astype(int) - smooth.rgb).mean() < 8
    moving = sample_scene(video_rng(3, 1), num_frames=40, moving_camera=True)
    fr = Renderer((30, 40)).render(moving)
    assert not np.array_equal(fr.rgb[0], fr.rgb[-1])
    assert (fr.visible.sum(1) > 0).all()


def test_render_is_deterministic():
    sc = sample_scene(video_rng(9, 0), num_frames=5)
    a, b = Renderer((60, 80)).render(sc), Renderer((60, 80)).render(sc)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.ids, b.ids)
