"""loci_core.data.camera: CATER matrix decomposition, screen <-> ground, grid classes, pinhole camera, and the
agreement between the matrix and what the renderer draws."""

import numpy as np
import pytest

from loci_core.data.camera import (
    CATER_MATRIX,
    CATER_Z0,
    PinholeCamera,
    ProjectiveCamera,
    class_centres,
    class_of_screen,
    grid_class,
    pixel_to_screen,
    screen_to_pixel,
)
from loci_core.data.generate import nominal_lights
from loci_core.data.renderer import Renderer
from loci_core.data.sampler import sample_scene, video_rng
from loci_core.data.scene import Scene, SceneObject


def test_cater_matrix_is_a_blender_camera():
    intr, view = ProjectiveCamera.cater().decompose()
    rot = view[:3, :3]
    assert np.allclose(rot @ rot.T, np.eye(3), atol=1e-4)  # rows rounded to 4 decimals
    # 35 mm lens on a 32 mm sensor at 320x240: focal length 350 px in both axes, centred principal point
    assert intr.p00 * 320 / 2 == pytest.approx(350, abs=0.1)
    assert intr.p11 * 240 / 2 == pytest.approx(350, abs=0.1)
    assert abs(intr.p02) < 1e-3 and abs(intr.p12) < 1e-3
    centre = ProjectiveCamera.cater().centre()
    assert np.linalg.norm(centre) == pytest.approx(10.75, abs=0.05)  # CLEVR's camera, ~10.7 units out
    # the camera looks at (about) the origin, from above
    forward = -view[2, :3]
    assert forward[2] < -0.4
    assert np.linalg.norm(np.cross(forward, -centre / np.linalg.norm(centre))) < 0.01


def test_recomposed_matrix_matches():
    cam = ProjectiveCamera.cater()
    intr, view = cam.decompose()
    assert np.allclose(intr.matrix() @ view, CATER_MATRIX, atol=2e-4)


def test_screen_ground_round_trip():
    cam = ProjectiveCamera.cater()
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(-3, 3, (50, 2)), np.full((50, 1), CATER_Z0)], axis=1)
    back = cam.screen_to_ground(cam.world_to_screen(pts), CATER_Z0)
    assert np.allclose(back, pts, atol=1e-9)
    # the table centre is near the image centre; +x world goes right-and-down on screen, +y goes right-and-up
    p = cam.world_to_screen(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]]))
    assert np.all(np.abs(p[0]) < 0.1)
    assert p[1, 1] > p[0, 1] and p[1, 0] > p[0, 0]
    assert p[2, 1] > p[0, 1] and p[2, 0] < p[0, 0]


def test_pixel_screen_convention():
    # pixel centres: the top-left pixel of a 240x320 image is at screen (-1 + 1/240, -1 + 1/320)
    s = pixel_to_screen(np.array([0.0, 0.0]), (240, 320))
    assert np.allclose(s, [-1 + 1 / 240, -1 + 1 / 320])
    assert np.allclose(screen_to_pixel(s, (240, 320)), [0, 0])
    assert np.allclose(screen_to_pixel(np.array([-1.0, -1.0]), (240, 320)), [-0.5, -0.5])


@pytest.mark.parametrize(
    "xy, grid, expected",
    [
        ((0.5, -2.5), 6, 3),  # row floor(-2.5)+3 = 0, col floor(0.5)+3 = 3
        ((-0.01, 0.01), 6, 20),  # row 3, col 2
        ((-3.0, -3.0), 6, 0),
        ((2.99, 2.99), 6, 35),
        ((3.0, 3.0), 6, 35),  # the border belongs to the last cell
        ((1.2, -0.4), 6, 6 * 2 + 4),
        ((0.0, 0.0), 4, 4 * 2 + 2),  # 1.5-unit cells
        ((-2.9, 2.9), 8, 8 * 7 + 0),
    ],
)
def test_grid_class_hand_checked(xy, grid, expected):
    assert int(grid_class(np.array(xy), grid)) == expected


def test_class_centres_are_in_their_cells():
    for grid in (4, 6, 8):
        centres = class_centres(grid)
        assert np.array_equal(grid_class(centres, grid), np.arange(grid * grid))
    assert np.allclose(class_centres(6)[0], [-2.5, -2.5])
    assert np.allclose(class_centres(6)[7], [-1.5, -1.5])


def test_class_of_screen_uses_the_snitch_plane():
    cam = ProjectiveCamera.cater()
    pts = np.array([[-2.5, -2.5, CATER_Z0], [0.5, 1.5, CATER_Z0], [2.2, -0.7, CATER_Z0]])
    assert np.array_equal(class_of_screen(cam.world_to_screen(pts)), grid_class(pts))


def test_pinhole_camera_matches_its_projective_form():
    K = np.array([[400.0, 0, 330.0], [0, 410.0, 235.0], [0, 0, 1]])
    cam = PinholeCamera.from_height_pitch(K, 640, 480, cam_height=1.5, pitch_deg=30)
    pts = np.array([[3.0, 0.5, 0.0], [4.0, -1.0, 0.2], [2.5, 0.0, 0.0]])
    uv = cam.world_to_pixel(pts)
    screen = cam.projective().world_to_screen(pts)
    rc = screen_to_pixel(screen, (480, 640))
    assert np.allclose(rc[:, ::-1], uv, atol=1e-6)  # (row, col) vs (u, v)
    ground = cam.pixel_to_ground(uv[[0, 2]], z=0.0)
    assert np.allclose(ground, pts[[0, 2]], atol=1e-9)
    assert np.allclose(cam.projective().screen_to_ground(screen[[0, 2]], z=0.0), pts[[0, 2]], atol=1e-6)
    # the principal point looks down the optical axis: 30 degrees below the horizon
    centre = cam.pixel_to_ground(np.array([330.0, 235.0]))
    assert centre[0] == pytest.approx(1.5 / np.tan(np.deg2rad(30)), rel=1e-9)


def _tiny_sphere_scene(points: np.ndarray, matrix: np.ndarray) -> Scene:
    objs = [
        SceneObject("sphere", "small", 0.1, "rubber", "red", (200, 40, 40), f"Sphere_{i}", 0.0)
        for i in range(len(points))
    ]
    return Scene(objs, {o.instance: [] for o in objs}, points[:, None, :], matrix[None], nominal_lights())


def test_renderer_draws_where_the_matrix_projects():
    """Every object centre of an un-jittered scene, projected through the CATER matrix, lands within 0.5 px
    of the centroid of a small sphere the renderer draws there at 320x240."""
    scene = sample_scene(video_rng(11, 0), num_frames=1, jitter=False)
    assert np.array_equal(scene.cameras[0], CATER_MATRIX)
    cam = ProjectiveCamera(CATER_MATRIX)
    renderer = Renderer((240, 320))
    for centre in scene.locations[:, 0]:
        frames = renderer.render(_tiny_sphere_scene(centre[None], CATER_MATRIX))
        rows, cols = np.nonzero(frames.ids[0] == 1)
        assert len(rows) > 20
        drawn = np.array([rows.mean(), cols.mean()])
        projected = screen_to_pixel(cam.world_to_screen(centre), (240, 320))
        assert np.linalg.norm(drawn - projected) < 0.5, (drawn, projected)


def test_pixel_rays_pass_through_projected_points():
    cam = ProjectiveCamera(CATER_MATRIX).translated([0.3, -0.2, 0.4])
    pts = np.random.default_rng(1).uniform(-3, 3, (20, 3))
    d = cam.ray_directions(cam.world_to_screen(pts))
    off = pts - cam.centre()
    miss = np.linalg.norm(np.cross(d, off), axis=1)
    assert np.all(miss < 1e-9)
    assert np.allclose(cam.centre(), ProjectiveCamera(CATER_MATRIX).centre() + [0.3, -0.2, 0.4])
