"""Ray intersection with the CATER primitives, in the object's local frame (numpy, vectorised over rays).

Every function takes ray origins q (N, 3) and unit directions v (N, 3) in the object's frame (centre at the
origin, axes of the object) and the object's `sized` s, and returns (t (N,), normal (N, 3)): the distance
to the first hit in front of the origin (inf where the ray misses) and the local surface normal there.

Local geometry (the object's centre rests at height s above the floor):
- sphere: radius s;                          - cube: half side s (CATER's `sized` is already size / sqrt 2);
- cylinder: radius s, half height s, so it lies on the floor after a 90 degree rotate;
- cone: base radius s at z = -s, apex CONE_HEIGHT * s above the base (tall enough that a strictly smaller
  sphere, cone or snitch fits inside the covering cone);
- snitch ("spl"): three mutually perpendicular tori (outer radius s), found by sphere tracing their SDF.
"""

from __future__ import annotations

import numpy as np

CONE_HEIGHT = 2.4  # cone height / base radius
SNITCH_RING = 0.62  # torus major radius / s
SNITCH_TUBE = 0.38  # torus minor radius / s (major + minor = 1: outer radius s)
SNITCH_STEPS = 28  # sphere-tracing iterations (the rings are thick, so few are needed)
SNITCH_EPS = 2e-3  # hit tolerance of the sphere tracer, world units

_INF = np.float32(np.inf)


def bounding_radius(shape: str, s: float) -> float:
    """Radius of a sphere about the centre that holds the whole object in any orientation."""
    return {
        "sphere": s,
        "cube": s * np.sqrt(3.0),
        "cylinder": s * np.sqrt(2.0),
        "cone": s * max(np.sqrt(2.0), CONE_HEIGHT - 1.0),
        "spl": s,
    }[shape]


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ni,ni->n", a, b)


def sphere_entry(q: np.ndarray, v: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(hit mask, entry distance clamped at 0) of rays against a sphere about the origin."""
    b = _dot(q, v)
    c = _dot(q, q) - radius * radius
    disc = b * b - c
    root = np.sqrt(np.maximum(disc, 0))
    return (disc > 0) & (-b + root > 0), np.maximum(-b - root, 0)


def sphere(q, v, s):
    hit, t = sphere_entry(q, v, s)
    hit &= _dot(q, q) > s * s  # rays starting inside never see the outside surface
    t = np.where(hit, t, _INF)
    return t, (q + np.where(hit, t, 0)[:, None] * v) / s


def cube(q, v, s):
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(v) < 1e-12, 1e-12, v)
        t1, t2 = (-s - q) * inv, (s - q) * inv
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    axis = np.argmax(near, axis=1)
    t_near, t_far = near.max(axis=1), far.min(axis=1)
    hit = (t_far >= t_near) & (t_near > 0)
    normal = np.zeros_like(q)
    rows = np.arange(len(q))
    normal[rows, axis] = -np.sign(v[rows, axis])
    return np.where(hit, t_near, _INF), normal


def cylinder(q, v, s):
    h = s
    a = v[:, 0] ** 2 + v[:, 1] ** 2
    b = q[:, 0] * v[:, 0] + q[:, 1] * v[:, 1]
    c = q[:, 0] ** 2 + q[:, 1] ** 2 - s * s
    disc = b * b - a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = (-b - np.sqrt(np.maximum(disc, 0))) / np.where(a < 1e-12, 1e-12, a)
        z_side = q[:, 2] + t_side * v[:, 2]
        side_ok = (disc > 0) & (t_side > 0) & (np.abs(z_side) <= h)
        t_side = np.where(side_ok, t_side, _INF)
        vz = np.where(np.abs(v[:, 2]) < 1e-12, 1e-12, v[:, 2])
        cap_z = np.where(q[:, 2] > 0, h, -h)  # the cap facing the ray's origin
        t_cap = (cap_z - q[:, 2]) / vz
    px, py = q[:, 0] + t_cap * v[:, 0], q[:, 1] + t_cap * v[:, 1]
    cap_ok = (t_cap > 0) & (px * px + py * py <= s * s) & (np.abs(q[:, 2]) > h)
    t_cap = np.where(cap_ok, t_cap, _INF)
    use_cap = t_cap < t_side
    t = np.minimum(t_side, t_cap)
    p = q + np.where(np.isfinite(t), t, 0)[:, None] * v
    side_n = np.stack([p[:, 0], p[:, 1], np.zeros_like(p[:, 0])], axis=1) / s
    cap_n = np.zeros_like(p)
    cap_n[:, 2] = np.sign(cap_z)
    return t, np.where(use_cap[:, None], cap_n, side_n)


def cone(q, v, s):
    height = CONE_HEIGHT * s
    z_base = -s
    z_apex = z_base + height
    k2 = (s / height) ** 2
    qa = q - np.array([0.0, 0.0, z_apex], dtype=q.dtype)
    a = v[:, 0] ** 2 + v[:, 1] ** 2 - k2 * v[:, 2] ** 2
    b = qa[:, 0] * v[:, 0] + qa[:, 1] * v[:, 1] - k2 * qa[:, 2] * v[:, 2]
    c = qa[:, 0] ** 2 + qa[:, 1] ** 2 - k2 * qa[:, 2] ** 2
    disc = b * b - a * c
    root = np.sqrt(np.maximum(disc, 0))
    a_safe = np.where(np.abs(a) < 1e-12, 1e-12, a)
    best = np.full(len(q), _INF, dtype=q.dtype)
    for sign in (-1.0, 1.0):
        t = (-b + sign * root) / a_safe
        z = qa[:, 2] + t * v[:, 2]
        ok = (disc > 0) & (t > 0) & (z <= 0) & (z >= -height)
        best = np.where(ok & (t < best), t, best)
    with np.errstate(divide="ignore", invalid="ignore"):
        vz = np.where(np.abs(v[:, 2]) < 1e-12, 1e-12, v[:, 2])
        t_base = (z_base - q[:, 2]) / vz
    bx, by = q[:, 0] + t_base * v[:, 0], q[:, 1] + t_base * v[:, 1]
    base_ok = (t_base > 0) & (q[:, 2] < z_base) & (bx * bx + by * by <= s * s)
    use_base = base_ok & (t_base < best)
    t = np.where(use_base, t_base, best)
    p = q + np.where(np.isfinite(t), t, 0)[:, None] * v
    side_n = np.stack([p[:, 0], p[:, 1], -k2 * (p[:, 2] - z_apex)], axis=1)
    side_n /= np.maximum(np.linalg.norm(side_n, axis=1, keepdims=True), 1e-12)
    base_n = np.zeros_like(p)
    base_n[:, 2] = -1.0
    return t, np.where(use_base[:, None], base_n, side_n)


def _torus_parts(p: np.ndarray, ring: float, tube: float):
    """Signed distance to each of three tori about the x, y, z axes, and the closest ring points."""
    dists, closest = [], []
    for axis in range(3):
        plane = [i for i in range(3) if i != axis]
        radial = np.sqrt(p[:, plane[0]] ** 2 + p[:, plane[1]] ** 2)
        scale = ring / np.maximum(radial, 1e-9)
        c = np.zeros_like(p)
        c[:, plane[0]], c[:, plane[1]] = p[:, plane[0]] * scale, p[:, plane[1]] * scale
        dists.append(np.sqrt((radial - ring) ** 2 + p[:, axis] ** 2) - tube)
        closest.append(c)
    return np.stack(dists, axis=1), np.stack(closest, axis=1)


def snitch(q, v, s):
    ring, tube = SNITCH_RING * s, SNITCH_TUBE * s
    inside, t = sphere_entry(q, v, s * 1.001)
    t = t.copy()
    idx = np.nonzero(inside)[0]
    qi, vi, ti = q[idx], v[idx], t[idx]
    active = np.ones(len(idx), dtype=bool)
    for _ in range(SNITCH_STEPS):
        d, _ = _torus_parts(qi + ti[:, None] * vi, ring, tube)
        d = d.min(axis=1)
        active &= d > SNITCH_EPS
        ti = ti + np.where(active, d, 0)
    p = qi + ti[:, None] * vi
    d, closest = _torus_parts(p, ring, tube)
    nearest = np.argmin(d, axis=1)
    hit = d[np.arange(len(idx)), nearest] <= SNITCH_EPS * 4
    normal_i = p - closest[np.arange(len(idx)), nearest]
    normal_i /= np.maximum(np.linalg.norm(normal_i, axis=1, keepdims=True), 1e-12)
    t_out = np.full(len(q), _INF, dtype=q.dtype)
    t_out[idx] = np.where(hit, ti, _INF)
    normal = np.zeros_like(q)
    normal[idx] = normal_i
    return t_out, normal


INTERSECT = {"sphere": sphere, "cube": cube, "cylinder": cylinder, "cone": cone, "spl": snitch}
