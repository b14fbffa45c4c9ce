"""Ray casting of the synthetic scene: vectorised :func:`raycast` and its slow reference twin."""

from __future__ import annotations

import math

import numpy as np

from .scene import Primitive, SyntheticScene, _rot_z

_NEAR = 1e-6


def _intersect(p: Primitive, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Smallest ray parameter t > 0 with o + t d on the surface; inf where missed. [R]"""
    c = np.asarray(p.center, np.float64)
    inf = np.full(len(o), np.inf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if p.kind == "plane":
            t = (p.z0 - o[:, 2]) / d[:, 2]
            x = o[:, 0] + t * d[:, 0] - c[0]
            y = o[:, 1] + t * d[:, 1] - c[1]
            ok = (t > _NEAR) & (np.abs(x) <= p.half[0]) & (np.abs(y) <= p.half[1]) \
                & (o[:, 2] > p.z0)
            return np.where(ok, t, inf)
        if p.kind == "sphere":
            oc = o - c
            a = np.einsum("ij,ij->i", d, d)
            b = np.einsum("ij,ij->i", oc, d)
            cc = np.einsum("ij,ij->i", oc, oc) - p.radius ** 2
            disc = b * b - a * cc
            sq = np.sqrt(np.maximum(disc, 0.0))
            t0, t1 = (-b - sq) / a, (-b + sq) / a
            t = np.where(t0 > _NEAR, t0, np.where(t1 > _NEAR, t1, np.inf))
            return np.where(disc >= 0, t, inf)
        if p.kind == "box":
            R = _rot_z(p.yaw)
            ol = (o - c) @ R          # rows: R^T (o - c)
            dl = d @ R
            h = np.asarray(p.half)
            # a ray parallel to a slab gets a tiny slope: its slab interval is then
            # (-huge, +huge) inside the slab and entirely behind or ahead outside it
            dl = np.where(dl == 0, 1e-300, dl)
            t_a = (-h - ol) / dl
            t_b = (h - ol) / dl
            tmin = np.minimum(t_a, t_b).max(axis=1)
            tmax = np.maximum(t_a, t_b).min(axis=1)
            t = np.where(tmin > _NEAR, tmin, np.where(tmax > _NEAR, tmax, np.inf))
            return np.where(tmin <= tmax, t, inf)
        if p.kind == "cylinder":
            ox, oy = o[:, 0] - c[0], o[:, 1] - c[1]
            a = d[:, 0] ** 2 + d[:, 1] ** 2
            b = ox * d[:, 0] + oy * d[:, 1]
            cc = ox * ox + oy * oy - p.radius ** 2
            disc = b * b - a * cc
            sq = np.sqrt(np.maximum(disc, 0.0))
            best = inf.copy()
            for ts in ((-b - sq) / a, (-b + sq) / a):
                z = o[:, 2] + ts * d[:, 2]
                ok = (disc >= 0) & (a > 0) & (ts > _NEAR) & (z >= p.z0) & (z <= p.z1)
                best = np.where(ok & (ts < best), ts, best)
            for zc in (p.z0, p.z1):
                ts = (zc - o[:, 2]) / d[:, 2]
                x = ox + ts * d[:, 0]
                y = oy + ts * d[:, 1]
                ok = (ts > _NEAR) & (x * x + y * y <= p.radius ** 2)
                best = np.where(ok & (ts < best), ts, best)
            return best
    raise AssertionError(p.kind)


def raycast(scene: SyntheticScene, origins: np.ndarray, dirs: np.ndarray,
            chunk: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit of each ray with the scene (vectorised numpy).

    Args:
        scene: from :func:`build_scene`.
        origins: [R, 3] float64 ray origins, metres (world).
        dirs: [R, 3] float64 ray directions (any length; t is in units of ``dirs``).
        chunk: rays per batch (bounds memory).

    Returns:
        (t [R] float64, inf = miss; prim [R] int64 index into ``scene.prims``, -1 = miss).
        With camera rays whose camera-frame z component is 1, t is the camera depth.
    """
    R = len(origins)
    t_best = np.full(R, np.inf)
    p_best = np.full(R, -1, np.int64)
    bounds = [_bounding_sphere(p) for p in scene.prims]
    for s in range(0, R, chunk):
        o, d = origins[s:s + chunk], dirs[s:s + chunk]
        tb, pb = t_best[s:s + chunk], p_best[s:s + chunk]
        dd = np.einsum("ij,ij->i", d, d)
        for k, p in enumerate(scene.prims):
            if bounds[k] is None:
                idx = None
                t = _intersect(p, o, d)
            else:
                # cull rays whose line misses the bounding sphere (squared distance from
                # the centre to the line > r^2), then intersect the rest exactly
                c, r = bounds[k]
                oc = c - o
                proj = np.einsum("ij,ij->i", oc, d)
                dist2 = np.einsum("ij,ij->i", oc, oc) - proj * proj / dd
                idx = np.nonzero(dist2 <= r * r * (1 + 1e-9) + 1e-12)[0]
                t = _intersect(p, o[idx], d[idx])
            if idx is None:
                win = t < tb
                tb[win] = t[win]
                pb[win] = k
            else:
                win = t < tb[idx]
                tb[idx[win]] = t[win]
                pb[idx[win]] = k
    return t_best, p_best


def _bounding_sphere(p: Primitive) -> tuple[np.ndarray, float] | None:
    """(centre [3], radius) enclosing primitive p, or None for the (large) plane."""
    c = np.asarray(p.center, np.float64)
    if p.kind == "sphere":
        return c, p.radius
    if p.kind == "box":
        return c, float(np.linalg.norm(p.half))
    if p.kind == "cylinder":
        return (np.array([c[0], c[1], 0.5 * (p.z0 + p.z1)]),
                math.hypot(p.radius, 0.5 * (p.z1 - p.z0)))
    return None


def raycast_reference(scene: SyntheticScene, origins: np.ndarray,
                      dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slow, readable twin of :func:`raycast`: one ray and one surface at a time.

    Written independently of the vectorised code: boxes are tested face by face (a plane
    hit inside the face rectangle) instead of with slabs, spheres with the geometric
    (closest-approach) construction. Same arguments and returns as :func:`raycast`.
    """
    ts = np.full(len(origins), np.inf)
    ids = np.full(len(origins), -1, np.int64)
    for r in range(len(origins)):
        o = [float(v) for v in origins[r]]
        d = [float(v) for v in dirs[r]]
        for k, p in enumerate(scene.prims):
            t = _ref_hit(p, o, d)
            if t is not None and t < ts[r]:
                ts[r], ids[r] = t, k
    return ts, ids


def _ref_hit(p: Primitive, o: list[float], d: list[float]) -> float | None:
    cx, cy, cz = p.center
    if p.kind == "plane":
        if d[2] == 0 or o[2] <= p.z0:
            return None
        t = (p.z0 - o[2]) / d[2]
        if t <= _NEAR:
            return None
        x, y = o[0] + t * d[0], o[1] + t * d[1]
        return t if abs(x - cx) <= p.half[0] and abs(y - cy) <= p.half[1] else None
    if p.kind == "sphere":
        dd = math.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2)
        u = [v / dd for v in d]
        oc = [cx - o[0], cy - o[1], cz - o[2]]
        s = sum(a * b for a, b in zip(oc, u))                  # closest approach along u
        m2 = sum(a * a for a in oc) - s * s
        if m2 > p.radius ** 2:
            return None
        q = math.sqrt(p.radius ** 2 - m2)
        for s_hit in (s - q, s + q):
            if s_hit / dd > _NEAR:
                return s_hit / dd
        return None
    if p.kind == "box":
        c, sn = math.cos(p.yaw), math.sin(p.yaw)
        rel = [o[0] - cx, o[1] - cy, o[2] - cz]
        ol = [c * rel[0] + sn * rel[1], -sn * rel[0] + c * rel[1], rel[2]]
        dl = [c * d[0] + sn * d[1], -sn * d[0] + c * d[1], d[2]]
        best = None
        for ax in range(3):
            for sign in (-1.0, 1.0):
                if dl[ax] == 0:
                    continue
                t = (sign * p.half[ax] - ol[ax]) / dl[ax]
                if t <= _NEAR:
                    continue
                inside = all(abs(ol[j] + t * dl[j]) <= p.half[j] * (1 + 1e-12) + 1e-12
                             for j in range(3) if j != ax)
                if inside and (best is None or t < best):
                    best = t
        return best
    # cylinder: side quadratic, then the two caps
    best = None
    ox, oy = o[0] - cx, o[1] - cy
    a = d[0] ** 2 + d[1] ** 2
    if a > 0:
        b = ox * d[0] + oy * d[1]
        disc = b * b - a * (ox * ox + oy * oy - p.radius ** 2)
        if disc >= 0:
            for t in ((-b - math.sqrt(disc)) / a, (-b + math.sqrt(disc)) / a):
                z = o[2] + t * d[2]
                if t > _NEAR and p.z0 <= z <= p.z1 and (best is None or t < best):
                    best = t
    if d[2] != 0:
        for zc in (p.z0, p.z1):
            t = (zc - o[2]) / d[2]
            x, y = ox + t * d[0], oy + t * d[1]
            if t > _NEAR and x * x + y * y <= p.radius ** 2 and (best is None or t < best):
                best = t
    return best
