"""Ray-cast views and surface point samples of the synthetic scene."""

from __future__ import annotations

import math

import numpy as np

from .cameras import _camera_rays, intrinsics
from .raycast import raycast
from .scene import Primitive, SyntheticScene, _rot_z
from .shading import _parts, _shade

POINT_SHARES = {"floor": 0.30, "table": 0.25, "objects": 0.45}


def render_view(scene: SyntheticScene, c2w: np.ndarray, width: int, height: int) -> dict:
    """Ray-cast one view.

    Args:
        scene: from :func:`build_scene`.
        c2w: [4, 4] camera-to-world, OpenCV axes, metres.
        width, height: image size in pixels (intrinsics from :func:`intrinsics`).

    Returns:
        dict with ``rgb`` [H, W, 3] uint8 (black = background), ``inst`` [H, W] int32
        (0 = background), ``prim`` [H, W] int64 (-1), ``depth`` [H, W] float64 camera z in
        metres (inf), ``med`` / ``small`` [H, W] int64 part ids (-1).
    """
    o, d = _camera_rays(c2w, width, height)
    t, prim = raycast(scene, o, d)
    hit = prim >= 0
    x = o[hit] + t[hit, None] * d[hit]
    rgb = np.zeros((width * height, 3))
    rgb[hit] = _shade(scene, prim[hit], x)
    inst_of_prim = np.array([p.inst for p in scene.prims], np.int32)
    inst = np.zeros(width * height, np.int32)
    inst[hit] = inst_of_prim[prim[hit]]
    med = np.full(width * height, -1, np.int64)
    small = np.full(width * height, -1, np.int64)
    med[hit], small[hit] = _parts(scene, prim[hit], x)
    shp = (height, width)
    return dict(rgb=np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8).reshape(height, width, 3),
                inst=inst.reshape(shp), prim=prim.reshape(shp), depth=t.reshape(shp),
                med=med.reshape(shp), small=small.reshape(shp))


def _sample_prim(p: Primitive, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points uniform by area on the surfaces of p that can be seen (no box bottom resting
    on something, no cylinder bottom cap), [n, 3] float64."""
    c = np.asarray(p.center)
    if n <= 0:
        return np.zeros((0, 3))
    if p.kind == "plane":
        xy = rng.uniform(-1, 1, (n, 2)) * np.asarray(p.half[:2]) + c[:2]
        return np.column_stack([xy, np.full(n, p.z0)])
    if p.kind == "sphere":
        v = rng.standard_normal((n, 3))
        return c + p.radius * v / np.linalg.norm(v, axis=1, keepdims=True)
    if p.kind == "box":
        h = np.asarray(p.half)
        # faces: +-x, +-y, +z (and -z only for the table top, whose underside shows)
        faces = [(0, 1), (0, -1), (1, 1), (1, -1), (2, 1)]
        if p.inst == 2:                     # the table top's underside shows from low views
            faces.append((2, -1))
        area = np.array([4 * np.prod(np.delete(h, ax)) for ax, _ in faces])
        f = rng.choice(len(faces), n, p=area / area.sum())
        u = rng.uniform(-1, 1, (n, 3)) * h
        for j, (ax, sgn) in enumerate(faces):
            u[f == j, ax] = sgn * h[ax]
        return u @ _rot_z(p.yaw).T + c
    # cylinder: side + top cap by area
    side, cap = 2 * math.pi * p.radius * (p.z1 - p.z0), math.pi * p.radius ** 2
    on_cap = rng.uniform(size=n) < cap / (side + cap)
    ang = rng.uniform(0, 2 * math.pi, n)
    rad = np.where(on_cap, p.radius * np.sqrt(rng.uniform(size=n)), p.radius)
    z = np.where(on_cap, p.z1, rng.uniform(p.z0, p.z1, n))
    return np.column_stack([c[0] + rad * np.cos(ang), c[1] + rad * np.sin(ang), z])


def _prim_area(p: Primitive) -> float:
    if p.kind == "plane":
        return 4 * p.half[0] * p.half[1]
    if p.kind == "sphere":
        return 4 * math.pi * p.radius ** 2
    if p.kind == "box":
        hx, hy, hz = p.half
        return 4 * (hx * hy * (2 if p.inst == 2 else 1) + 2 * hx * hz + 2 * hy * hz)
    return 2 * math.pi * p.radius * (p.z1 - p.z0) + math.pi * p.radius ** 2


def _visible(scene: SyntheticScene, x: np.ndarray, prim: np.ndarray, c2ws: list[np.ndarray],
             width: int, height: int) -> np.ndarray:
    """[K] int32: in how many views each surface point is seen (inside the image and the
    first hit of the ray from the camera centre to it is its own surface)."""
    fx, fy, cx, cy = intrinsics(width, height)
    count = np.zeros(len(x), np.int32)
    for c2w in c2ws:
        w2c = np.linalg.inv(c2w)
        pc = x @ w2c[:3, :3].T + w2c[:3, 3]
        z = pc[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u, v = fx * pc[:, 0] / z + cx, fy * pc[:, 1] / z + cy
        inimg = (z > 1e-3) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        idx = np.nonzero(inimg)[0]
        o = np.broadcast_to(c2w[:3, 3], (len(idx), 3))
        t, pk = raycast(scene, o, x[idx] - c2w[:3, 3])
        seen = (t >= 1 - 1e-6) | (pk == prim[idx]) & (t >= 1 - 1e-4)
        count[idx[seen]] += 1
    return count


def sample_points(scene: SyntheticScene, num_points: int, c2ws: list[np.ndarray], width: int,
                  height: int, rng: np.random.Generator) -> dict:
    """Surface points seen by at least one of the views ``c2ws``.

    Budget shares: floor 30 %, table 25 %, objects 45 % (split by area); inside each
    instance the points are uniform by area. Twice the budget is drawn, points seen by no
    view are dropped, the first ``share`` survivors of each instance are kept (so the total
    can fall slightly short of ``num_points`` when an instance is mostly hidden), and the
    result is shuffled.

    Returns:
        dict: xyz [P, 3] float32, rgb [P, 3] uint8, inst [P] int32, prim [P] int64,
        n_views_seen [P] int32.
    """
    obj_area = {i.inst: sum(_prim_area(p) for p in scene.prims if p.inst == i.inst)
                for i in scene.instances if i.inst >= 3}
    tot_obj = sum(obj_area.values())
    budget = {1: POINT_SHARES["floor"] * num_points, 2: POINT_SHARES["table"] * num_points}
    for k, a in obj_area.items():
        budget[k] = POINT_SHARES["objects"] * num_points * a / tot_obj
    xs, ps, ns = [], [], []
    for inst, b in budget.items():
        prims = [(k, p) for k, p in enumerate(scene.prims) if p.inst == inst]
        areas = np.array([_prim_area(p) for _, p in prims])
        nper = rng.multinomial(int(math.ceil(2 * b)), areas / areas.sum())
        cx, cp = [], []
        for (k, p), n in zip(prims, nper):
            cx.append(_sample_prim(p, int(n), rng))
            cp.append(np.full(int(n), k, np.int64))
        x, pr = np.concatenate(cx), np.concatenate(cp)
        order = rng.permutation(len(x))
        x, pr = x[order], pr[order]
        seen = _visible(scene, x, pr, c2ws, width, height)
        keep = np.nonzero(seen > 0)[0][:int(round(b))]
        xs.append(x[keep])
        ps.append(pr[keep])
        ns.append(seen[keep])
    x, pr, nseen = np.concatenate(xs), np.concatenate(ps), np.concatenate(ns)
    order = rng.permutation(len(x))
    x, pr, nseen = x[order], pr[order], nseen[order]
    x32 = x.astype(np.float32)
    inst_of_prim = np.array([p.inst for p in scene.prims], np.int32)
    rgb = np.clip(np.rint(_shade(scene, pr, x32.astype(np.float64)) * 255), 0, 255).astype(np.uint8)
    return dict(xyz=x32, rgb=rgb, inst=inst_of_prim[pr], prim=pr, n_views_seen=nseen)
