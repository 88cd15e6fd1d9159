"""Cameras: world <-> screen <-> ground plane, and the CATER localisation grid.

Screen coordinates follow the loci convention (p_row, p_col), both in [-1, 1]: (-1, -1) is the top-left
corner of the image, (+1, +1) the bottom-right corner (image edges, not pixel centres). The centre of pixel
(row i, col j) of an H x W image is at ((2i + 1) / H - 1, (2j + 1) / W - 1).

`ProjectiveCamera` wraps a 4x4 matrix in the OpenGL convention (clip = M @ (x, y, z, 1), NDC = clip / w,
NDC y points up). CATER's tracking baseline (and Loci) use one such matrix for the static-camera data; it is
Blender's projection matrix times the world-to-camera matrix. The same class serves generated data (whose
scene files record each video's own matrix) and a ROS camera, via `PinholeCamera.projective()`.

Recovering the camera from the CATER matrix (tested in tests/test_camera.py): with P the GL projection and
V = [R | t] the world-to-camera transform,
    row 3 = -V[2]                     (w = -z_eye, so it holds the camera's backward axis and distance)
    row 0 = P00 V[0] + P02 V[2]       (P00 = 2 f / W, P02 = principal-point offset, 0 for Blender)
    row 1 = P11 V[1] + P12 V[2]
    row 2 = P22 V[2] + (0, 0, 0, P23) (near/far clipping only)
For CATER: P00 = 2.1875 and P11 = 2.9167 (= 350 px focal length at 320x240, a 35 mm lens on a 32 mm
sensor), camera centre about (7.08, -6.27, 5.09), looking 28 degrees down at the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The static CATER camera (CATER's baselines/tracking/proj_utils.py, reused by Loci): Blender projection x
# world-to-camera matrix of the nominal (un-jittered) CLEVR camera at 320x240 (aspect 4:3).
CATER_MATRIX = np.array(
    [
        [1.4503, 1.6376, 0.0000, -0.0251],
        [-1.0346, 0.9163, 2.5685, 0.0095],
        [-0.6606, 0.5850, -0.4748, 10.5666],
        [-0.6592, 0.5839, -0.4738, 10.7452],
    ],
    dtype=np.float64,
)
# Height of the plane through the snitch's centre that Loci projects screen positions onto (world units).
CATER_Z0 = 0.3421497941017151
# The localisation grid covers the table x, y in [-TABLE_HALF, TABLE_HALF]; CATER's task 3 uses 6 x 6 cells.
TABLE_HALF = 3.0
DEFAULT_GRID = 6


def _homogeneous(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)


@dataclass(frozen=True)
class Intrinsics:
    """GL projection parameters in NDC units (independent of the pixel resolution)."""

    p00: float  # 2 fx / W
    p11: float  # 2 fy / H
    p02: float  # principal-point offset, x
    p12: float  # principal-point offset, y
    p22: float  # depth scaling (near/far)
    p23: float

    def matrix(self) -> np.ndarray:
        return np.array(
            [
                [self.p00, 0.0, self.p02, 0.0],
                [0.0, self.p11, self.p12, 0.0],
                [0.0, 0.0, self.p22, self.p23],
                [0.0, 0.0, -1.0, 0.0],
            ]
        )


class ProjectiveCamera:
    """A 4x4 GL-style projection matrix with screen <-> world helpers (numpy, batched over leading dims)."""

    def __init__(self, matrix: np.ndarray):
        self.matrix = np.asarray(matrix, dtype=np.float64).reshape(4, 4)

    @classmethod
    def cater(cls) -> ProjectiveCamera:
        return cls(CATER_MATRIX)

    # ----------------------------------------------------------------------------------------------
    # Projection
    def world_to_screen(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 2) screen (p_row, p_col)."""
        clip = _homogeneous(points) @ self.matrix.T
        w = clip[..., 3]
        return np.stack([-clip[..., 1] / w, clip[..., 0] / w], axis=-1)

    def depth(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) -> (...,) the clip w (distance along the viewing axis); > 0 in front of the camera."""
        return _homogeneous(points) @ self.matrix[3]

    def screen_to_ground(self, screen: np.ndarray, z: float = CATER_Z0) -> np.ndarray:
        """(..., 2) screen (p_row, p_col) -> (..., 3) world points on the horizontal plane at height z.

        Solves (M0 - p_col M3) . w = 0 and (M1 + p_row M3) . w = 0 for x, y with w = (x, y, z, 1).
        """
        screen = np.asarray(screen, dtype=np.float64)
        p_row, p_col = screen[..., 0], screen[..., 1]
        m = self.matrix
        a = m[0][None] - p_col.reshape(-1, 1) * m[3][None]  # (N, 4)
        b = m[1][None] + p_row.reshape(-1, 1) * m[3][None]
        lhs = np.stack([a[:, :2], b[:, :2]], axis=1)  # (N, 2, 2)
        rhs = -np.stack([a[:, 2] * z + a[:, 3], b[:, 2] * z + b[:, 3]], axis=1)  # (N, 2)
        xy = np.linalg.solve(lhs, rhs[..., None])[..., 0]
        out = np.concatenate([xy, np.full((len(xy), 1), float(z))], axis=1)
        return out.reshape(screen.shape[:-1] + (3,))

    # ----------------------------------------------------------------------------------------------
    # Geometry of the camera (used by the renderer)
    def centre(self) -> np.ndarray:
        """World position of the camera, where all pixel rays meet (null space of rows 0, 1 and 3)."""
        rows = self.matrix[[0, 1, 3]]
        return np.linalg.solve(rows[:, :3], -rows[:, 3])

    def ray_directions(self, screen: np.ndarray) -> np.ndarray:
        """(..., 2) screen -> (..., 3) unit world directions of the rays through those screen points."""
        screen = np.asarray(screen, dtype=np.float64)
        ndc = np.stack(
            [screen[..., 1], -screen[..., 0], np.ones(screen.shape[:-1]), np.ones(screen.shape[:-1])], axis=-1
        )
        far = ndc @ np.linalg.inv(self.matrix).T
        far = far[..., :3] / far[..., 3:4]
        d = far - self.centre()
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    def decompose(self) -> tuple[Intrinsics, np.ndarray]:
        """Split into GL intrinsics and the 4x4 world-to-camera transform V (rows: right, up, backward).

        Exact for matrices built as P @ V; for CATER's 4-decimal matrix the rotation is orthonormal to 1e-4.
        """
        m = self.matrix
        scale = np.linalg.norm(m[3, :3])
        v2 = -m[3] / scale
        p02 = m[0, :3] @ v2[:3]
        r0 = m[0] - p02 * v2
        p00 = np.linalg.norm(r0[:3])
        p12 = m[1, :3] @ v2[:3]
        r1 = m[1] - p12 * v2
        p11 = np.linalg.norm(r1[:3])
        p22 = m[2, :3] @ v2[:3]
        p23 = m[2, 3] - p22 * v2[3]
        view = np.stack([r0 / p00, r1 / p11, v2, np.array([0.0, 0.0, 0.0, 1.0])])
        intr = Intrinsics(p00 / scale, p11 / scale, p02 / scale, p12 / scale, p22 / scale, p23 / scale)
        return intr, view

    def translated(self, delta: np.ndarray) -> ProjectiveCamera:
        """The same camera moved by `delta` in world units (orientation kept): CATER's per-video jitter."""
        shift = np.eye(4)
        shift[:3, 3] = -np.asarray(delta, dtype=np.float64)
        return ProjectiveCamera(self.matrix @ shift)

    @classmethod
    def look_at(
        cls, position: np.ndarray, target: np.ndarray, intrinsics: Intrinsics, up=(0.0, 0.0, 1.0)
    ) -> ProjectiveCamera:
        """A camera at `position` looking at `target` with world z up (CATER's moving camera)."""
        position = np.asarray(position, dtype=np.float64)
        back = position - np.asarray(target, dtype=np.float64)
        back /= np.linalg.norm(back)
        right = np.cross(np.asarray(up, dtype=np.float64), back)
        right /= np.linalg.norm(right)
        cam_up = np.cross(back, right)
        view = np.eye(4)
        view[0, :3], view[1, :3], view[2, :3] = right, cam_up, back
        view[:3, 3] = -view[:3, :3] @ position
        return cls(intrinsics.matrix() @ view)


# --------------------------------------------------------------------------------------------------
# Pixels <-> screen
def screen_to_pixel(screen: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(..., 2) screen (p_row, p_col) -> (..., 2) continuous pixel coordinates (row, col), where the centre
    of pixel (i, j) is exactly (i, j)."""
    h, w = size
    screen = np.asarray(screen, dtype=np.float64)
    return np.stack([(screen[..., 0] + 1) * h / 2 - 0.5, (screen[..., 1] + 1) * w / 2 - 0.5], axis=-1)


def pixel_to_screen(pixel: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Inverse of `screen_to_pixel`."""
    h, w = size
    pixel = np.asarray(pixel, dtype=np.float64)
    return np.stack([(pixel[..., 0] + 0.5) * 2 / h - 1, (pixel[..., 1] + 0.5) * 2 / w - 1], axis=-1)


def pixel_centres(size: tuple[int, int]) -> np.ndarray:
    """(H, W, 2) screen coordinates of all pixel centres."""
    h, w = size
    rows = (np.arange(h) + 0.5) * 2 / h - 1
    cols = (np.arange(w) + 0.5) * 2 / w - 1
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1)


# --------------------------------------------------------------------------------------------------
# The localisation grid
def grid_class(xy: np.ndarray, grid: int = DEFAULT_GRID) -> np.ndarray:
    """(..., >=2) world x, y -> (...,) int class = grid * row + col over [-3, 3]^2.

    For grid = 6 this is CATER's `6 (floor(y) + 3) + (floor(x) + 3)`; 4 and 8 give CATER's other variants.
    Points outside the table are clamped to the border cells.
    """
    xy = np.asarray(xy, dtype=np.float64)
    cell = 2 * TABLE_HALF / grid
    col = np.clip(np.floor((xy[..., 0] + TABLE_HALF) / cell), 0, grid - 1).astype(np.int64)
    row = np.clip(np.floor((xy[..., 1] + TABLE_HALF) / cell), 0, grid - 1).astype(np.int64)
    return grid * row + col


def class_centres(grid: int = DEFAULT_GRID) -> np.ndarray:
    """(grid^2, 2) world (x, y) centres of the cells, indexed by class."""
    cell = 2 * TABLE_HALF / grid
    idx = np.arange(grid * grid)
    return np.stack([(idx % grid + 0.5) * cell - TABLE_HALF, (idx // grid + 0.5) * cell - TABLE_HALF], axis=1)


def class_of_screen(
    screen: np.ndarray, camera: ProjectiveCamera | None = None, z: float = CATER_Z0, grid: int = DEFAULT_GRID
) -> np.ndarray:
    """Screen position(s) -> grid class through the ground plane at height z (Loci's evaluation path)."""
    camera = camera or ProjectiveCamera.cater()
    return grid_class(camera.screen_to_ground(screen, z), grid)


# --------------------------------------------------------------------------------------------------
# A real camera (sensor_msgs/CameraInfo) over a ground plane
class PinholeCamera:
    """Pinhole camera from a 3x3 K (as in sensor_msgs/CameraInfo) and its pose in a world with ground z = 0.

    `camera_to_world` is the 4x4 pose of the optical frame (x right, y down, z forward, as in ROS optical
    frames) in a z-up world. Ground positions come from intersecting pixel rays with the plane z = height.
    """

    def __init__(self, K: np.ndarray, width: int, height: int, camera_to_world: np.ndarray):
        self.K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        self.width, self.height = int(width), int(height)
        self.camera_to_world = np.asarray(camera_to_world, dtype=np.float64).reshape(4, 4)

    @classmethod
    def from_height_pitch(
        cls, K: np.ndarray, width: int, height: int, cam_height: float, pitch_deg: float
    ) -> PinholeCamera:
        """Camera at (0, 0, cam_height) looking along world +x, tilted down by pitch_deg."""
        p = np.deg2rad(pitch_deg)
        forward = np.array([np.cos(p), 0.0, -np.sin(p)])
        right = np.array([0.0, -1.0, 0.0])
        down = np.cross(forward, right)
        pose = np.eye(4)
        pose[:3, 0], pose[:3, 1], pose[:3, 2] = right, down, forward
        pose[:3, 3] = (0.0, 0.0, cam_height)
        return cls(K, width, height, pose)

    def world_to_pixel(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world -> (..., 2) pixel (u = column, v = row) in OpenCV convention (pixel centres at
        integers)."""
        world_to_cam = np.linalg.inv(self.camera_to_world)
        cam = _homogeneous(points) @ world_to_cam[:3].T
        uvw = cam @ self.K.T
        return uvw[..., :2] / uvw[..., 2:3]

    def pixel_to_ground(self, uv: np.ndarray, z: float = 0.0) -> np.ndarray:
        """(..., 2) pixel (u, v) -> (..., 3) world points on the plane at height z (NaN above the horizon)."""
        uv = np.asarray(uv, dtype=np.float64)
        rays_cam = np.concatenate([uv, np.ones(uv.shape[:-1] + (1,))], axis=-1) @ np.linalg.inv(self.K).T
        rays = rays_cam @ self.camera_to_world[:3, :3].T
        origin = self.camera_to_world[:3, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (z - origin[2]) / rays[..., 2]
        t = np.where(t > 0, t, np.nan)
        return origin + t[..., None] * rays

    def projective(self, near: float = 0.1, far: float = 100.0) -> ProjectiveCamera:
        """The equivalent GL-style camera, so loci's screen (p_row, p_col) <-> ground code applies as is."""
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        w, h = self.width, self.height
        # Optical frame (x right, y down, z forward) -> GL eye frame (x right, y up, z backward).
        optical_to_gl = np.diag([1.0, -1.0, -1.0, 1.0])
        view = optical_to_gl @ np.linalg.inv(self.camera_to_world)
        # Pixel centres at integer u, so the image's left edge is at u = -0.5.
        proj = Intrinsics(
            p00=2 * fx / w,
            p11=2 * fy / h,
            p02=-(2 * (cx + 0.5) / w - 1),
            p12=2 * (cy + 0.5) / h - 1,
            p22=-(far + near) / (far - near),
            p23=-2 * far * near / (far - near),
        )
        return ProjectiveCamera(proj.matrix() @ view)
