"""Vectorised analytic ray caster for CATER scenes (numpy, CPU, no display).

Each pixel's ray comes from the video's 4x4 camera matrix itself (unprojected through its inverse), so the
rendered geometry is exactly the one that matrix describes. Per object and per chunk of frames, the rays
inside the screen box of the object's bounding sphere (in every frame of the chunk) are intersected at once
with the object's analytic shape (shapes.py), depth-tested into the frame buffers and shaded:
rubber = diffuse; metal = darker diffuse + sharp highlight + a sky/floor reflection. The floor is the plane
z = 0, shaded per pixel (static for a static camera, so computed once) and darkened where a shadow ray
towards the key light hits an object (bounded the same way by the projected shadow box).

Ground truth comes for free: instance ids (0 = floor, k + 1 = object k), depth (distance along the ray),
and per object and frame the visible pixel count and the count it would have alone in the scene ("amodal",
counted before the depth test). Objects inside a resting cone are not drawn (the cone hides them fully).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loci_core.data import shapes
from loci_core.data.camera import ProjectiveCamera, pixel_centres
from loci_core.data.scene import Scene
from loci_core.data.trajectory import containers, rotations

FLOOR_ALBEDO = 0.62  # the CLEVR floor is a light grey
FLOOR_FALLOFF = 9.0  # squared world distance over which the key light falls off on the floor
AMBIENT = 0.32
SHADOW_STRENGTH = 0.55  # fraction of direct light a shadow removes
METAL_DIFFUSE, METAL_REFLECT, METAL_SPEC, METAL_SHININESS = 0.55, 0.45, 0.9, 60.0
RUBBER_DIFFUSE, RUBBER_SPEC, RUBBER_SHININESS = 0.8, 0.06, 8.0
CHUNK_PIXELS = 1_500_000  # frames x pixels per chunk (bounds memory)
_BOX_SIGNS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)


@dataclass
class _Chunk:
    """Camera rays and floor of a chunk of frames (leading dim 1 for a static camera)."""

    origins: np.ndarray  # (Tc, 3)
    dirs: np.ndarray  # (1 | Tc, P, 3)
    points: np.ndarray  # (1 | Tc, P, 3) floor hit points
    t_floor: np.ndarray  # (1 | Tc, P)
    base: np.ndarray  # (1 | Tc, P, 3) floor colour without the key light
    direct: np.ndarray  # (1 | Tc, P, 3) the key light's share
    static: bool


@dataclass
class _Buffers:
    depth: np.ndarray  # (Tc, P) float32
    ids: np.ndarray  # (Tc, P) uint8
    colour: np.ndarray  # (Tc, P, 3) float32
    shadow: np.ndarray  # (Tc, P) float32


@dataclass
class Frames:
    rgb: np.ndarray  # (T, H, W, 3) uint8
    ids: np.ndarray  # (T, H, W) uint8: 0 floor, k + 1 object k
    visible: np.ndarray  # (T, K) int64 visible pixel counts
    amodal: np.ndarray  # (T, K) int64 pixel counts of each object alone in the scene
    depth: np.ndarray | None = None  # (T, H, W) float32 distance along the ray (inf never: floor everywhere)


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


class Renderer:
    """Render scenes at (H, W). `supersample` (odd) renders colours at a finer grid and averages; ids and
    depth are taken from the centre sample of each pixel, so they stay exact at the output resolution."""

    def __init__(self, size: tuple[int, int] = (240, 320), supersample: int = 1):
        if supersample < 1 or supersample % 2 == 0:
            raise ValueError(f"supersample must be an odd positive integer, got {supersample}")
        self.size = (int(size[0]), int(size[1]))
        self.ss = int(supersample)
        self.inner = (self.size[0] * self.ss, self.size[1] * self.ss)
        self._screen = pixel_centres(self.inner).reshape(-1, 2)

    # ---- camera rays ------------------------------------------------------------------------------
    def _rays(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cam = ProjectiveCamera(matrix)
        return cam.centre().astype(np.float32), cam.ray_directions(self._screen).astype(np.float32)

    def _floor(self, origin, dirs, lights) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Floor hit points (P, 3), distance (P,), unshadowed colour (P, 3), direct key-light part (P, 3)."""
        with np.errstate(divide="ignore"):
            t = np.where(dirs[:, 2] < -1e-9, -origin[2] / dirs[:, 2], np.inf).astype(np.float32)
        points = origin[None] + np.where(np.isfinite(t), t, 0)[:, None] * dirs
        key = np.float32(lights.intensities[0] * max(lights.key[2], 0.0))
        fill = sum(i * max(d[2], 0.0) for i, d in zip(lights.intensities[1:], (lights.fill, lights.back)))
        # A soft pool of light around the key lamp's foot, like CLEVR's area lights.
        foot = lights.key[:2] * 4.0
        falloff = 1.0 / (
            1.0 + ((points[:, 0] - foot[0]) ** 2 + (points[:, 1] - foot[1]) ** 2) / FLOOR_FALLOFF
        )
        direct = FLOOR_ALBEDO * key * (0.55 + 0.45 * falloff)
        base = FLOOR_ALBEDO * (AMBIENT + fill) + np.zeros_like(direct)
        grey = np.ones((1, 3), dtype=np.float32)
        return (
            points,
            t,
            (base[:, None] * grey).astype(np.float32),
            (direct[:, None] * grey).astype(np.float32),
        )

    def background(self, matrix: np.ndarray, lights) -> np.ndarray:
        """(H, W, 3) uint8 image of the empty scene."""
        origin, dirs = self._rays(matrix)
        _, _, base, direct = self._floor(origin, dirs, lights)
        return self._finish((base + direct)[None])[0]

    def _finish(self, colour: np.ndarray) -> np.ndarray:
        """(T, P_inner, 3) float -> (T, H, W, 3) uint8, averaging supersamples."""
        t_count = colour.shape[0]
        h, w, s = self.size[0], self.size[1], self.ss
        img = (
            colour.reshape(t_count, h, s, w, s, 3).mean(axis=(2, 4))
            if s > 1
            else colour.reshape(t_count, h, w, 3)
        )
        return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)

    # ---- boxes ------------------------------------------------------------------------------------
    def _screen_boxes(self, corners: np.ndarray, mats: np.ndarray) -> np.ndarray:
        """(Tc, 8, 3) world corners, (Tc, 4, 4) matrices -> (Tc, 4) inner-pixel boxes [r0, r1, c0, c1)."""
        h, w = self.inner
        homo = np.concatenate([corners, np.ones(corners.shape[:-1] + (1,))], axis=-1)
        clip = np.einsum("tij,tkj->tki", mats, homo)
        wv = clip[..., 3]
        behind = (wv <= 1e-6).any(axis=1)
        wv = np.where(wv <= 1e-6, 1e-6, wv)
        cols = (clip[..., 0] / wv + 1) * w / 2 - 0.5
        rows = (1 - clip[..., 1] / wv) * h / 2 - 0.5
        box = np.stack(
            [
                np.ceil(rows.min(1)),
                np.floor(rows.max(1)) + 1,
                np.ceil(cols.min(1)),
                np.floor(cols.max(1)) + 1,
            ],
            1,
        )
        box[behind] = (0, h, 0, w)
        box[:, :2] = np.clip(box[:, :2], 0, h)
        box[:, 2:] = np.clip(box[:, 2:], 0, w)
        return box.astype(np.int64)

    def _elements(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (Tc, 4) -> (frame index, pixel index) of every pixel inside them, flattened."""
        w = self.inner[1]
        hh = np.maximum(boxes[:, 1] - boxes[:, 0], 0)
        ww = np.maximum(boxes[:, 3] - boxes[:, 2], 0)
        n = hh * ww
        f = np.repeat(np.arange(len(n)), n)
        k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        wf = np.maximum(ww[f], 1)
        rows = boxes[f, 0] + k // wf
        cols = boxes[f, 2] + k % wf
        return f, rows * w + cols

    # ---- main loop --------------------------------------------------------------------------------
    def render(self, scene: Scene, with_depth: bool = False) -> Frames:
        t_count, k_count = scene.num_frames, len(scene.objects)
        h, w = self.size
        static = bool(np.allclose(scene.cameras, scene.cameras[:1]))
        rot = rotations(scene).astype(np.float32)  # (K, T, 3, 3)
        drawn = containers(scene) < 0  # (K, T): contained objects are hidden by their cone
        lights = scene.lights
        out = Frames(
            rgb=np.empty((t_count, h, w, 3), np.uint8),
            ids=np.empty((t_count, h, w), np.uint8),
            visible=np.zeros((t_count, k_count), np.int64),
            amodal=np.zeros((t_count, k_count), np.int64),
            depth=np.empty((t_count, h, w), np.float32) if with_depth else None,
        )
        # Camera-aligned axes per frame: a cube on these axes around a bounding sphere projects to a
        # tight screen box. Shadows use axes perpendicular to the key light the same way.
        views = [ProjectiveCamera(m).decompose()[1][:3, :3] for m in scene.cameras[: 1 if static else None]]
        cam_axes = np.stack(views * (t_count if static else 1))  # (T, 3, 3) rows right, up, back
        pixels = self.inner[0] * self.inner[1]
        chunk = max(1, CHUNK_PIXELS // pixels)
        if static:
            origin, dirs = self._rays(scene.cameras[0])
            floor = self._floor(origin, dirs, lights)
        for f0 in range(0, t_count, chunk):
            f1 = min(f0 + chunk, t_count)
            tc = f1 - f0
            if static:
                rays = _Chunk(np.repeat(origin[None], tc, 0), dirs[None], *(a[None] for a in floor), static)
            else:
                per = [self._rays(scene.cameras[f]) for f in range(f0, f1)]
                fl = [self._floor(o, d, lights) for o, d in per]
                rays = _Chunk(
                    np.stack([o for o, _ in per]),
                    np.stack([d for _, d in per]),
                    *(np.stack([x[i] for x in fl]) for i in range(4)),
                    static,
                )
            buf = _Buffers(
                depth=np.broadcast_to(rays.t_floor, (tc, pixels)).copy(),
                ids=np.zeros((tc, pixels), np.uint8),
                colour=np.zeros((tc, pixels, 3), np.float32),
                shadow=np.zeros((tc, pixels), np.float32),
            )
            mats = scene.cameras[f0:f1]
            for k in range(k_count):
                out.amodal[f0:f1, k] = self._draw(
                    scene, k, f0, f1, rot, drawn, rays, buf, mats, cam_axes[f0:f1]
                )
            for k in range(k_count):  # after all objects, so only floor pixels left visible are tested
                self._cast_shadow(scene, k, f0, f1, rot, drawn, rays, buf, mats)
            lit = rays.base + rays.direct * (1 - SHADOW_STRENGTH * buf.shadow)[..., None]
            colour = np.where((buf.ids == 0)[..., None], lit, buf.colour)
            out.rgb[f0:f1] = self._finish(colour)
            centre_ids = self._centre_grid(buf.ids)
            out.ids[f0:f1] = centre_ids
            for k in range(k_count):
                out.visible[f0:f1, k] = (centre_ids == k + 1).reshape(tc, -1).sum(1)
            if with_depth:
                out.depth[f0:f1] = self._centre_grid(buf.depth)
        return out

    def _draw(self, scene, k, f0, f1, rot, drawn, rays, buf, mats, axes) -> np.ndarray:
        """Intersect object k's camera rays in frames f0..f1, depth-test and shade them into the buffers.
        Returns the (Tc,) pixel counts the object would cover alone."""
        obj = scene.objects[k]
        tc = f1 - f0
        radius = shapes.bounding_radius(obj.shape, obj.sized)
        centre = scene.locations[k, f0:f1].astype(np.float32)
        rt = np.ascontiguousarray(rot[k, f0:f1].transpose(0, 2, 1))  # world -> local
        corners = centre[:, None].astype(np.float64) + radius * (_BOX_SIGNS[None] @ axes)  # (Tc, 8, 3)
        f, p = self._elements(self._screen_boxes(corners, mats))
        if not len(f):
            return np.zeros(tc, np.int64)
        d_world = rays.dirs[0, p] if rays.static else rays.dirs[f, p]
        # Cheap world-space test against the bounding sphere before transforming rays into the object.
        rel = rays.origins - centre  # (Tc, 3)
        near, _ = shapes.sphere_entry(rel[f], d_world, radius)
        f, p, d_world = f[near], p[near], d_world[near]
        q = np.einsum("tij,tj->ti", rt, rel)[f]
        v = np.einsum("nij,nj->ni", rt[f], d_world)
        t, n_local = shapes.INTERSECT[obj.shape](q, v, np.float32(obj.sized))
        hit = np.isfinite(t)
        f, p, t, n_local, d_world = f[hit], p[hit], t[hit], n_local[hit], d_world[hit]
        amodal = np.bincount(f[self._centre_sample(p)], minlength=tc)
        front = drawn[k, f0 + f] & (t < buf.depth[f, p])
        f, p, t, n_local, d_world = f[front], p[front], t[front], n_local[front], d_world[front]
        buf.depth[f, p] = t
        buf.ids[f, p] = k + 1
        normal = np.einsum("nji,nj->ni", rt[f], n_local)  # local -> world
        lights = scene.lights
        light_dirs = np.stack([lights.key, lights.fill, lights.back]).astype(np.float32)
        buf.colour[f, p] = self._shade(obj, normal, d_world, light_dirs, lights.intensities)
        return amodal

    def _cast_shadow(self, scene, k, f0, f1, rot, drawn, rays, buf, mats) -> None:
        """Mark visible floor pixels whose ray towards the key light hits object k."""
        if not drawn[k, f0:f1].any():
            return
        obj = scene.objects[k]
        key = scene.lights.key.astype(np.float64)
        radius = shapes.bounding_radius(obj.shape, obj.sized)
        centre = scene.locations[k, f0:f1]
        # The sphere's shadow lies inside the floor projection (along the light) of a square across it.
        u = np.cross(key, [0.0, 0.0, 1.0])
        u = u / max(np.linalg.norm(u), 1e-9) if np.linalg.norm(u) > 1e-9 else np.array([1.0, 0.0, 0.0])
        wv = np.cross(key, u)
        square = np.array([su * u + sw * wv for su in (-1, 1) for sw in (-1, 1)])  # (4, 3)
        corners = centre[:, None] + radius * square[None]
        corners = corners - (corners[..., 2:3] / max(key[2], 1e-3)) * key
        f, p = self._elements(self._screen_boxes(corners, mats))
        keep = drawn[k, f0 + f] & (buf.ids[f, p] == 0)
        f, p = f[keep], p[keep]
        if not len(f):
            return
        rt = np.ascontiguousarray(rot[k, f0:f1].transpose(0, 2, 1))
        pts = rays.points[0, p] if rays.static else rays.points[f, p]
        rel = pts - centre[f].astype(np.float32)
        key32 = key.astype(np.float32)
        near, _ = shapes.sphere_entry(rel, np.broadcast_to(key32, rel.shape), radius)
        f, p, rel = f[near], p[near], rel[near]
        q = np.einsum("nij,nj->ni", rt[f], rel)
        v = (rt @ key32)[f]
        t, _ = shapes.INTERSECT[obj.shape](q, v, np.float32(obj.sized))
        hit = np.isfinite(t)
        buf.shadow[f[hit], p[hit]] = 1.0

    def _centre_sample(self, p: np.ndarray) -> np.ndarray:
        """Mask of inner pixels that are the centre sample of an output pixel."""
        if self.ss == 1:
            return np.ones(len(p), dtype=bool)
        w = self.inner[1]
        half = self.ss // 2
        return ((p // w) % self.ss == half) & ((p % w) % self.ss == half)

    def _centre_grid(self, a: np.ndarray) -> np.ndarray:
        """(Tc, P_inner) -> (Tc, H, W) centre samples."""
        h, w, s = self.size[0], self.size[1], self.ss
        grid = a.reshape(a.shape[0], h * s, w * s)
        return grid[:, s // 2 :: s, s // 2 :: s] if s > 1 else grid

    @staticmethod
    def _shade(obj, normal, d_world, light_dirs, intensities) -> np.ndarray:
        """Blinn-Phong-ish shading of hits (N, 3) -> colours (N, 3) float32."""
        albedo = np.asarray(obj.rgb, dtype=np.float32) / 255.0
        view = -d_world
        lambert = np.clip(normal @ light_dirs.T, 0, None)  # (N, 3 lights)
        diffuse = lambert @ np.asarray(intensities, dtype=np.float32)
        half = _normalise(light_dirs[0][None] + view)
        spec_angle = np.clip(np.einsum("ni,ni->n", normal, half), 0, 1)
        if obj.material == "metal":
            reflect = d_world - 2 * np.einsum("ni,ni->n", d_world, normal)[:, None] * normal
            env = 0.35 + 0.65 * np.clip(reflect[:, 2], 0, 1)  # bright sky above, grey floor below
            spec = METAL_SPEC * spec_angle**METAL_SHININESS
            colour = albedo * (AMBIENT * 0.6 + METAL_DIFFUSE * diffuse)[:, None]
            colour += albedo * (METAL_REFLECT * env)[:, None] + (spec[:, None] * (0.4 + 0.6 * albedo))
        else:
            spec = RUBBER_SPEC * spec_angle**RUBBER_SHININESS
            colour = albedo * (AMBIENT + RUBBER_DIFFUSE * diffuse)[:, None] + spec[:, None]
        return colour.astype(np.float32)
