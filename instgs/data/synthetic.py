"""The embedded default scene: textured objects on a table, ray-cast by project code.

``make_synthetic_scene`` writes a complete scene folder that needs no download and no
model weights, in the OpenGaussian ScanNet-like layout written by
``shared/tools/render_scannet_views.py`` (the benchmark-data generator), so the same
readers, trainers and evaluators run on it:

```
<out_dir>/color/<stem>.png                      RGB renders (lossless; or JPEG q95)
<out_dir>/transforms_train.json                 Blender/NeRF, OpenGL camera axes, c2w
<out_dir>/transforms_train_opencv.json          same poses, OpenCV camera axes
<out_dir>/transforms_test.json (+ _opencv)      held-out views (stems test_000, ...)
<out_dir>/points3d.ply                          surface samples: x,y,z float32 + r,g,b uchar
<out_dir>/gt/instance_per_vertex.npy            int32 [P], GT instance id per point (>= 1)
<out_dir>/gt/nyu40_per_vertex.npy               int32 [P], NYU40 id per point
<out_dir>/gt/instances.json                     instance id -> nyu40 / names / point count
<out_dir>/gt/nyu40_text_feature_names.json      NYU40 id -> key of text_features.json
<out_dir>/gt/{instance,semantic,valid}/<stem>.png  per-pixel GT (uint16 / uint8 / uint8)
<out_dir>/language_features/<stem>_s.npy        int16 [4, H, W] cumulative mask ids, -1 = none
<out_dir>/language_features/<stem>_f.npy        float16 [M, 512] unit oracle features
<out_dir>/language_features/masks_meta.json     per view, per level: [id, nyu40, [inst], tag, px]
<out_dir>/language_features_clean/...           GT instance masks on all levels, noiseless rows
<out_dir>/text_features.json                    class name -> 512 floats (the oracle "CLIP" table;
                                                also keyed by the NYU40 names of the GT ids)
<out_dir>/generation_stats.json, README.md, SHA256SUMS
<out_dir>/scene_complete.json                   written last: generation parameters
```

Scene: a checkered floor (instance 1, NYU40 ``floor``), a table with a wood-like top and
four legs (instance 2, ``table``) and ``num_objects`` boxes / balls / cans (instances 3...)
with distinct procedural solid textures (checkerboard, stripes, value noise, gradient,
dots). Shading is Lambertian, one directional light plus ambient, no shadows, so the
colour of a surface point does not depend on the view and ``points3d.ply`` carries exactly
the colours seen in the images. Every pixel is one exact ray through its centre (no
anti-aliasing), so the GT instance maps are exact.

The per-mask features are an ORACLE stand-in for CLIP image features (as in the ScanNet
tool): ``normalise(text[class] + N(0, s^2 I))`` with ``s = sqrt((1/feature_cos^2 - 1)/512)``,
where ``text[class]`` is a deterministic random unit vector per class name (seeded by the
name, not by the scene seed), stored in ``text_features.json`` so that text queries can be
tested without CLIP weights. They are not CLIP features of any kind.

Masks (LangSplat layout, mirroring the ScanNet tool's level order and id rules): levels
are 0 = default, 1 = small, 2 = medium, 3 = large; default holds the medium masks (same
masks, same feature rows) because one [H, W] map cannot hold overlapping masks; ids are
cumulative across levels in that order and sorted by area (then key) within a level.
Parts are cut in 3D (object frame), so they are consistent across views:
large = whole instances; medium = the floor split at x = 0, the table into top / legs,
each object into its lower / upper half; small = floor quadrants, table-top quadrants and
each leg, each object half split again at its local x = 0.

References:
    ``shared/tools/render_scannet_views.py`` (layout, GT format, oracle features);
    LangSplat ``preprocess.py`` (``_s.npy`` / ``_f.npy`` layout); OpenGaussian
    ``scene/dataset_readers.py`` (Blender-style transforms with ``fl_x``/``fl_y``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from instgs.core.artifacts import write_json
from instgs.core.checks import InputError

__all__ = ["SyntheticSceneConfig", "make_synthetic_scene", "SyntheticScene", "build_scene",
           "camera_poses", "render_view", "build_masks", "sample_points", "raycast",
           "raycast_reference", "text_feature", "text_feature_table", "read_marker",
           "intrinsics", "CLASSES", "CLASS_IDS", "LEVEL_NAMES", "FORMAT_VERSION"]

FORMAT_VERSION = 1
LEVEL_NAMES = ("default", "small", "medium", "large")
FEATURE_DIM = 512
# class name -> NYU40 id (gt/nyu40_per_vertex.npy holds these ids). A ball and a can have
# no NYU40 class of their own; ScanNet's label map sends such props to otherprop (40) and
# trash cans to otherfurniture (39), which keeps the two classes distinct.
CLASSES = {"floor": 2, "table": 7, "box": 29, "ball": 40, "can": 39}
NYU40_NAMES = {2: "floor", 7: "table", 29: "box", 39: "otherfurniture", 40: "otherprop"}
#: the NYU40 class set of the synthetic scene, for ``instgs.eval.text_query_scores``
CLASS_IDS = tuple(sorted(CLASSES.values()))
# names without an instance in the scene, for negative text queries
DISTRACTOR_CLASSES = ("wall", "chair", "lamp", "book", "cup", "plant")
SCANNET_FX, SCANNET_W = 1170.0, 1296.0   # ScanNet colour camera, as the ScanNet tool uses

FLOOR_HALF = 3.0          # floor square half-size, m
TABLE_TOP = (0.70, 0.75)  # table-top slab z range, m
TABLE_HALF = (0.8, 0.6)   # table-top half extents, m
LEG_RADIUS, LEG_INSET = 0.03, 0.08
LIGHT_DIR = np.array([0.35, 0.25, 1.0]) / np.linalg.norm([0.35, 0.25, 1.0])
AMBIENT = 0.35
POINT_SHARES = {"floor": 0.30, "table": 0.25, "objects": 0.45}
MERGE_ADJACENCY_PX = 2
_NEAR = 1e-6


# ----------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Primitive:
    """One closed (or one-sided, for ``plane``) surface of an instance.

    Attributes:
        kind: ``"plane"`` (axis-aligned rectangle at z = ``z0`` seen from above),
            ``"box"`` (rotated by ``yaw`` about z), ``"sphere"``, ``"cylinder"`` (axis z,
            from ``z0`` to ``z1``, both caps closed).
        inst: instance id (>= 1) this surface belongs to.
        sub: index of the surface inside its instance (table: 0 = top, 1..4 = legs).
        center: (x, y, z) metres; box/sphere centre, cylinder/plane (x, y) centre.
        half: box half extents (x, y, z) or plane half extents (x, y, -), metres.
        radius: sphere / cylinder radius, metres.
        z0, z1: plane height / cylinder z range, metres.
        yaw: box rotation about +z, radians.
    """

    kind: Literal["plane", "box", "sphere", "cylinder"]
    inst: int
    sub: int
    center: tuple[float, float, float]
    half: tuple[float, float, float] = (0.0, 0.0, 0.0)
    radius: float = 0.0
    z0: float = 0.0
    z1: float = 0.0
    yaw: float = 0.0


@dataclass(frozen=True)
class Instance:
    """An instance: class, object frame (origin at the base centre, rotated by ``yaw``),
    height (for the medium split) and procedural texture."""

    inst: int
    cls: str
    origin: tuple[float, float, float]
    yaw: float
    height: float
    texture: dict


@dataclass(frozen=True)
class SyntheticScene:
    """The procedural scene: instances and their surfaces (world z up, metres)."""

    instances: tuple[Instance, ...]
    prims: tuple[Primitive, ...]

    def instance(self, inst: int) -> Instance:
        return self.instances[inst - 1]


def _rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _hsv(h: float, s: float, v: float) -> list[float]:
    import colorsys

    return [round(x, 4) for x in colorsys.hsv_to_rgb(h % 1.0, s, v)]


def build_scene(seed: int = 0, num_objects: int = 5) -> SyntheticScene:
    """The floor, the table and ``num_objects`` objects placed without overlap.

    Args:
        seed: scene seed (object kinds, sizes, positions, textures).
        num_objects: 1..8 objects (boxes, balls, cans in a seeded order; every kind
            occurs once there are >= 3).

    Returns:
        SyntheticScene with instance 1 = floor, 2 = table, 3.. = objects.

    Raises:
        InputError: ``num_objects`` outside 1..8.
    """
    if not 1 <= int(num_objects) <= 8:
        raise InputError(f"num_objects must be in 1..8, got {num_objects}", None,
                         "pass a value between 1 and 8 (the table holds at most 8 objects)")
    rng = np.random.default_rng([seed, 3])
    top = TABLE_TOP[1]
    instances = [
        Instance(1, "floor", (0.0, 0.0, 0.0), 0.0, 0.0,
                 dict(kind="checker", size=0.25, c1=[0.62, 0.60, 0.56], c2=[0.30, 0.30, 0.33])),
        Instance(2, "table", (0.0, 0.0, top), 0.0, TABLE_TOP[1],
                 dict(kind="wood", period=0.06, c1=[0.58, 0.38, 0.20], c2=[0.36, 0.21, 0.10],
                      seed=int(rng.integers(1 << 30)))),
    ]
    prims = [Primitive("plane", 1, 0, (0.0, 0.0, 0.0), (FLOOR_HALF, FLOOR_HALF, 0.0), z0=0.0),
             Primitive("box", 2, 0, (0.0, 0.0, 0.5 * sum(TABLE_TOP)),
                       (TABLE_HALF[0], TABLE_HALF[1], 0.5 * (TABLE_TOP[1] - TABLE_TOP[0])))]
    k = 1
    for sx in (-1, 1):
        for sy in (-1, 1):
            prims.append(Primitive("cylinder", 2, k,
                                   (sx * (TABLE_HALF[0] - LEG_INSET),
                                    sy * (TABLE_HALF[1] - LEG_INSET), 0.0),
                                   radius=LEG_RADIUS, z0=0.0, z1=TABLE_TOP[0]))
            k += 1

    kinds = [("box", "ball", "can")[i % 3] for i in range(num_objects)]
    kinds = [kinds[i] for i in rng.permutation(num_objects)]
    tex_kinds = ["checker", "stripes", "noise", "gradient", "dots"]
    tex_order = [tex_kinds[i] for i in rng.permutation(len(tex_kinds))]
    hue0 = float(rng.uniform())
    placed: list[tuple[float, float, float]] = []   # (x, y, footprint radius)
    for i, kind in enumerate(kinds):
        scale = 1.0
        for attempt in range(400):
            if attempt and attempt % 100 == 0:
                scale *= 0.85                            # crowded: shrink and retry
            if kind == "box":
                hx, hy = rng.uniform(0.06, 0.13, 2) * scale
                h = float(rng.uniform(0.10, 0.28) * scale)
                foot = math.hypot(hx, hy)
            elif kind == "ball":
                r = float(rng.uniform(0.07, 0.12) * scale)
                h, foot = 2 * r, r
            else:
                r = float(rng.uniform(0.05, 0.085) * scale)
                h = float(rng.uniform(0.14, 0.28) * scale)
                foot = r
            lim = np.array(TABLE_HALF) - foot - 0.04
            xy = rng.uniform(-lim, lim)
            if all(math.hypot(xy[0] - px, xy[1] - py) > foot + pf + 0.06 for px, py, pf in placed):
                break
        else:  # pragma: no cover - 400 attempts with shrinking always succeed for <= 8
            raise RuntimeError("could not place the objects on the table")
        placed.append((float(xy[0]), float(xy[1]), foot))
        yaw = float(rng.uniform(0, math.pi)) if kind == "box" else 0.0
        hue = hue0 + i / num_objects
        tk = tex_order[i % len(tex_order)]
        c1, c2 = _hsv(hue, 0.80, 0.90), _hsv(hue + 0.45, 0.35 + 0.3 * (i % 2), 0.95)
        tex = dict(kind=tk, c1=c1, c2=c2, seed=int(rng.integers(1 << 30)),
                   size=round(float(rng.uniform(0.03, 0.05)), 4),
                   period=round(float(rng.uniform(0.03, 0.06)), 4),
                   direction=[round(float(x), 4) for x in
                              (lambda v: v / np.linalg.norm(v))(rng.normal(size=3))],
                   height=h)
        inst = 3 + i
        instances.append(Instance(inst, kind, (float(xy[0]), float(xy[1]), top), yaw, h, tex))
        if kind == "box":
            prims.append(Primitive("box", inst, 0, (float(xy[0]), float(xy[1]), top + h / 2),
                                   (float(hx), float(hy), h / 2), yaw=yaw))
        elif kind == "ball":
            prims.append(Primitive("sphere", inst, 0, (float(xy[0]), float(xy[1]), top + r),
                                   radius=r))
        else:
            prims.append(Primitive("cylinder", inst, 0, (float(xy[0]), float(xy[1]), top),
                                   radius=r, z0=top, z1=top + h))
    return SyntheticScene(tuple(instances), tuple(prims))


# ----------------------------------------------------------------------------- ray casting
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


def _normals(p: Primitive, x: np.ndarray) -> np.ndarray:
    """Outward unit normals [K, 3] at surface points x [K, 3] of primitive p."""
    c = np.asarray(p.center, np.float64)
    if p.kind == "plane":
        return np.tile([0.0, 0.0, 1.0], (len(x), 1))
    if p.kind == "sphere":
        n = x - c
    elif p.kind == "box":
        R = _rot_z(p.yaw)
        xl = (x - c) @ R
        a = np.argmax(np.abs(xl) / np.asarray(p.half), axis=1)
        nl = np.zeros_like(xl)
        nl[np.arange(len(x)), a] = np.sign(xl[np.arange(len(x)), a])
        n = nl @ R.T
    else:
        r = np.hypot(x[:, 0] - c[0], x[:, 1] - c[1])
        n = np.zeros_like(x)
        side = (np.abs(r - p.radius) < np.minimum(np.abs(x[:, 2] - p.z0),
                                                   np.abs(x[:, 2] - p.z1)))
        n[side, 0] = x[side, 0] - c[0]
        n[side, 1] = x[side, 1] - c[1]
        cap = ~side
        n[cap, 2] = np.where(x[cap, 2] > 0.5 * (p.z0 + p.z1), 1.0, -1.0)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


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


# ----------------------------------------------------------------------------- appearance
def _hash01(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic lattice hash -> [0, 1) (integer mixing, wraps in uint64)."""
    h = (ix.astype(np.int64).astype(np.uint64) * np.uint64(0x8DA6B343)
         ^ iy.astype(np.int64).astype(np.uint64) * np.uint64(0xD8163841)
         ^ iz.astype(np.int64).astype(np.uint64) * np.uint64(0xCB1AB31F)
         ^ np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x165667B1))
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return (h >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def _value_noise(p: np.ndarray, seed: int) -> np.ndarray:
    """Trilinear value noise with smoothstep weights in [0, 1); p [K, 3] in lattice units."""
    i = np.floor(p)
    f = p - i
    w = f * f * (3 - 2 * f)
    i = i.astype(np.int64)
    out = np.zeros(len(p))
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                wt = ((w[:, 0] if dx else 1 - w[:, 0]) * (w[:, 1] if dy else 1 - w[:, 1])
                      * (w[:, 2] if dz else 1 - w[:, 2]))
                out += wt * _hash01(i[:, 0] + dx, i[:, 1] + dy, i[:, 2] + dz, seed)
    return out


def _texture(tex: dict, q: np.ndarray) -> np.ndarray:
    """Albedo [K, 3] in [0, 1] of the solid texture ``tex`` at object-frame points q [K, 3]."""
    c1, c2 = np.asarray(tex["c1"]), np.asarray(tex["c2"])
    kind = tex["kind"]
    if kind == "checker":
        s = tex["size"]
        m = (np.floor(q[:, 0] / s) + np.floor(q[:, 1] / s) + np.floor(q[:, 2] / s)) % 2
    elif kind == "stripes":
        m = (np.sin(2 * np.pi * (q @ np.asarray(tex["direction"])) / tex["period"]) > 0)
    elif kind == "noise":
        n = (0.65 * _value_noise(q / tex["size"], tex["seed"])
             + 0.35 * _value_noise(q / (0.4 * tex["size"]), tex["seed"] + 1))
        m = np.clip((n - 0.2) / 0.6, 0, 1)
    elif kind == "gradient":
        m = np.clip(q[:, 2] / max(tex["height"], 1e-6), 0, 1)
    elif kind == "dots":
        s = tex["size"]
        f = q / s - np.floor(q / s) - 0.5
        m = (np.linalg.norm(f, axis=1) < 0.33).astype(np.float64)
    elif kind == "wood":
        n = _value_noise(q * np.array([2.0, 12.0, 12.0]), tex["seed"])
        m = 0.5 + 0.5 * np.sin(2 * np.pi * (q[:, 1] + 0.04 * n) / tex["period"])
    else:  # pragma: no cover
        raise AssertionError(kind)
    m = np.asarray(m, np.float64)[:, None]
    return (1 - m) * c1 + m * c2


def _local(inst: Instance, x: np.ndarray) -> np.ndarray:
    """World points [K, 3] -> object frame of ``inst`` (origin at its base centre)."""
    return (x - np.asarray(inst.origin)) @ _rot_z(inst.yaw)


def _shade(scene: SyntheticScene, prim: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Lambertian colour [K, 3] in [0, 1] of surface points x [K, 3] on prims ``prim`` [K]."""
    out = np.zeros((len(x), 3))
    for k in np.unique(prim):
        sel = prim == k
        p = scene.prims[k]
        inst = scene.instance(p.inst)
        n = _normals(p, x[sel])
        lam = AMBIENT + (1 - AMBIENT) * np.clip(n @ LIGHT_DIR, 0, None)
        out[sel] = _texture(inst.texture, _local(inst, x[sel])) * lam[:, None]
    return np.clip(out, 0, 1)


def _parts(scene: SyntheticScene, prim: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(medium part [K], small part [K]) int64 of surface points, consistent in 3D."""
    med = np.zeros(len(x), np.int64)
    small = np.zeros(len(x), np.int64)
    for k in np.unique(prim):
        sel = prim == k
        p = scene.prims[k]
        inst = scene.instance(p.inst)
        q = _local(inst, x[sel])
        qx, qy = (q[:, 0] >= 0).astype(np.int64), (q[:, 1] >= 0).astype(np.int64)
        if inst.cls == "floor":
            med[sel], small[sel] = qx, qx + 2 * qy
        elif inst.cls == "table":
            med[sel] = 0 if p.sub == 0 else 1
            small[sel] = qx + 2 * qy if p.sub == 0 else 3 + p.sub
        else:
            upper = (q[:, 2] >= 0.5 * inst.height).astype(np.int64)
            med[sel], small[sel] = upper, 2 * upper + qx
    return med, small


def text_feature(name: str, dim: int = FEATURE_DIM) -> np.ndarray:
    """Deterministic random unit vector [dim] float64 for a class name (the oracle "CLIP"
    text embedding of the synthetic scene; seeded by the SHA-256 of the name only)."""
    digest = hashlib.sha256(f"instgs-synthetic:{name}".encode()).digest()
    seed = int.from_bytes(digest[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return v / np.linalg.norm(v)


def text_feature_table() -> dict[str, list[float]]:
    """The ``text_features.json`` table: class name -> 512 floats (unit norm, float32 values).

    Holds the scene's class names (floor, table, box, ball, can), the distractors of
    :data:`DISTRACTOR_CLASSES` and, as aliases, the NYU40 names of the ids the per-vertex
    GT uses where they differ ("otherprop" = the "ball" vector, "otherfurniture" = the "can"
    vector), so evaluators that name classes by NYU40 id find every class.
    """
    names = list(CLASSES) + list(DISTRACTOR_CLASSES)
    table = {n: [float(x) for x in text_feature(n).astype(np.float32)] for n in names}
    for name, nyu in CLASSES.items():
        table.setdefault(NYU40_NAMES[nyu], table[name])
    return table


# ----------------------------------------------------------------------------- cameras
def intrinsics(width: int, height: int) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) in pixels: the ScanNet colour camera scaled to ``width`` (as the
    ScanNet tool): f = 1170 * width / 1296, principal point at the image centre."""
    f = SCANNET_FX * width / SCANNET_W
    return f, f, width / 2.0, height / 2.0


def _look_at(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """c2w [4, 4] float64, OpenCV camera axes (x right, y down, z forward), world z up."""
    fwd = target - pos
    fwd = fwd / np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    M = np.eye(4)
    M[:3, 0], M[:3, 1], M[:3, 2], M[:3, 3] = right, down, fwd, pos
    return M


def camera_poses(num_views: int, num_test_views: int, seed: int = 0
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Train / test camera-to-world matrices (OpenCV axes) around the table.

    Train views: azimuth 2 pi k / n (+- 15 % of a step jitter), elevation 32-62 deg
    (two oscillations around the ring, +- 3 deg jitter), distance 1.45-1.85 m from a
    target near the table-top centre (+- 10 cm). Test views: azimuths half-way between ring
    positions, elevation 44 deg, distance 1.65 m.

    Returns:
        (train [num_views] of [4, 4] float64, test [num_test_views] of [4, 4] float64).
    """
    rng = np.random.default_rng([seed, 5])
    target0 = np.array([0.0, 0.0, TABLE_TOP[1] + 0.08])

    def pose(az: float, el: float, dist: float, jitter: np.ndarray) -> np.ndarray:
        tgt = target0 + jitter
        pos = tgt + dist * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az),
                                     math.sin(el)])
        return _look_at(pos, tgt)

    train = []
    step = 2 * math.pi / max(num_views, 1)
    for k in range(num_views):
        az = k * step + rng.uniform(-0.15, 0.15) * step
        el = math.radians(47 + 15 * math.sin(2 * math.pi * 2 * k / max(num_views, 1))
                          + rng.uniform(-3, 3))
        train.append(pose(az, el, rng.uniform(1.45, 1.85), rng.uniform(-0.1, 0.1, 3) * [1, 1, 0.5]))
    test = []
    tstep = 2 * math.pi / max(num_test_views, 1)
    for k in range(num_test_views):
        test.append(pose((k + 0.5) * tstep + 0.1, math.radians(44), 1.65, np.zeros(3)))
    return train, test


def _camera_rays(c2w: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Rays through pixel centres (u + 0.5, v + 0.5), row-major; dirs have camera z = 1."""
    fx, fy, cx, cy = intrinsics(width, height)
    v, u = np.mgrid[0:height, 0:width]
    dc = np.stack([(u.ravel() + 0.5 - cx) / fx, (v.ravel() + 0.5 - cy) / fy,
                   np.ones(width * height)], 1)
    dirs = dc @ c2w[:3, :3].T
    return np.broadcast_to(c2w[:3, 3], dirs.shape).copy(), dirs


# ----------------------------------------------------------------------------- rendering
@dataclass
class _View:
    stem: str
    split: str
    index: int
    c2w: np.ndarray                  # [4, 4] OpenCV camera-to-world
    stats: dict = field(default_factory=dict)


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


# ----------------------------------------------------------------------------- points
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


# ----------------------------------------------------------------------------- masks
def _segments_by_area(keys: np.ndarray) -> list[tuple[int, int]]:
    """[(key, pixels)] of keys >= 0, area descending then key ascending."""
    ids, cnt = np.unique(keys[keys >= 0], return_counts=True)
    order = np.lexsort((ids, -cnt))
    return [(int(ids[k]), int(cnt[k])) for k in order]


def _erode_one(keys: np.ndarray, key: int) -> None:
    """Set to -1 (in place) pixels of ``key`` whose 4-neighbour carries another value."""
    m = keys == key
    b = np.zeros_like(m)
    b[:, 1:] |= m[:, 1:] & ~m[:, :-1]
    b[:, :-1] |= m[:, :-1] & ~m[:, 1:]
    b[1:, :] |= m[1:, :] & ~m[:-1, :]
    b[:-1, :] |= m[:-1, :] & ~m[1:, :]
    keys[b] = -1


def _noisy_feature(vec: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    f = vec + (rng.normal(0.0, sigma, vec.shape) if sigma > 0 else 0.0)
    return f / np.linalg.norm(f)


def build_masks(inst: np.ndarray, med: np.ndarray, small: np.ndarray, cls_of_inst: dict,
                rng: np.random.Generator, *, min_px: int, feature_cos: float,
                mask_noise: float = 0.0) -> tuple[tuple, tuple]:
    """Hierarchical masks of one view in the LangSplat layout, plus the clean GT set.

    Args:
        inst: [H, W] int GT instance ids, 0 = background.
        med, small: [H, W] int part ids (see the module docstring), -1 = background.
        cls_of_inst: instance id -> class name (a key of :data:`CLASSES`).
        rng: draws the feature noise and the mask errors.
        min_px: masks with fewer pixels are dropped.
        feature_cos: expected cosine of a row to its class's text vector (1 = noiseless).
        mask_noise: probability that a mask's boundary is eroded by 1 px (per mask and
            level) and that one object mask of the large level is merged into the
            neighbour it touches most (per view). 0 = exact masks.

    Returns:
        ((seg [4, H, W] int16, feats [M, 512] float16, meta), (clean_seg, clean_feats,
        clean_meta)); meta = {"levels": [[mask id, nyu40, [instance ids], tag, pixels]...]}.
    """
    H, W = inst.shape
    sigma = math.sqrt(max(1.0 / feature_cos ** 2 - 1.0, 0.0) / FEATURE_DIM)
    text = {c: text_feature(c) for c in set(cls_of_inst.values())}
    ii = inst.astype(np.int64)
    large_k = np.where(ii > 0, ii * 16, -1)
    med_k = np.where(ii > 0, ii * 16 + med, -1)
    small_k = np.where(ii > 0, ii * 16 + small, -1)
    info = {}
    for keys, tag in ((large_k, "gt"), (med_k, "part"), (small_k, "part")):
        for k in np.unique(keys[keys >= 0]):
            i = int(k) // 16
            info[int(k), tag] = dict(inst=[i], cls=cls_of_inst[i], tag=tag)

    def level_info(keys, tag):
        return {k: dict(info[k, tag]) for k in np.unique(keys[keys >= 0]).tolist()}

    levels = {1: (small_k.copy(), level_info(small_k, "part")),
              2: (med_k.copy(), level_info(med_k, "part")),
              3: (large_k.copy(), level_info(large_k, "gt"))}
    errors = {"merge": None, "eroded": 0}
    if mask_noise > 0:
        L, linf = levels[3]
        if rng.uniform() < mask_noise:
            segs = _segments_by_area(L)
            cands = []
            from scipy import ndimage

            for k, _ in segs:
                if linf[k]["cls"] in ("floor", "table"):
                    continue
                m = L == k
                ring = ndimage.binary_dilation(m, iterations=MERGE_ADJACENCY_PX) & ~m
                nb = L[ring]
                nb = nb[nb >= 0]
                if len(nb):
                    vals, c = np.unique(nb, return_counts=True)
                    cands.append((k, int(vals[np.argmax(c)])))
            if cands:
                s, t = cands[int(rng.integers(len(cands)))]
                area = {k: a for k, a in segs}
                big = s if area[s] > area[t] else t
                L[L == s] = t
                linf[t] = dict(inst=sorted(set(linf[t]["inst"]) | set(linf[s]["inst"])),
                               cls=linf[big]["cls"], tag="merge")
                del linf[s]
                errors["merge"] = [s // 16, t // 16]
        for lvl in (1, 2, 3):
            keys, _ = levels[lvl]
            for k, _a in _segments_by_area(keys):
                if rng.uniform() < mask_noise:
                    _erode_one(keys, k)
                    errors["eroded"] += 1

    seg = np.full((4, H, W), -1, np.int16)
    rows, meta = [], []
    offset = 0
    level_rows: dict[int, list] = {}
    for lvl, src in ((0, 2), (1, 1), (2, 2), (3, 3)):
        keys, linf = levels[src]
        segs = [(k, a) for k, a in _segments_by_area(keys) if a >= min_px]
        lut = {k: offset + j for j, (k, _) in enumerate(segs)}
        m = np.full(keys.shape, -1, np.int64)
        for k, idx in lut.items():
            m[keys == k] = idx
        seg[lvl] = m.astype(np.int16)
        lm = [[offset + j, CLASSES[linf[k]["cls"]], linf[k]["inst"], linf[k]["tag"], a]
              for j, (k, a) in enumerate(segs)]
        if lvl == 2:      # medium reuses the rows drawn for default (same masks), as the tool
            r = level_rows[0]
        else:
            r = [_noisy_feature(text[linf[k]["cls"]], rng, sigma) for k, _ in segs]
        level_rows[lvl] = r
        rows.extend(r)
        meta.append(lm)
        offset += len(segs)
    if offset > np.iinfo(np.int16).max:  # pragma: no cover - needs > 32k masks per view
        raise RuntimeError("too many masks for int16 ids")
    feats = (np.stack(rows) if rows else np.zeros((0, FEATURE_DIM))).astype(np.float16)

    # clean set: all four levels = GT instance masks >= min_px, noiseless rows (as the tool)
    gsegs = [(k, a) for k, a in _segments_by_area(large_k) if a >= min_px]
    n = len(gsegs)
    clean = np.full((4, H, W), -1, np.int16)
    base = np.full(large_k.shape, -1, np.int64)
    for j, (k, _) in enumerate(gsegs):
        base[large_k == k] = j
    crow, cmeta = [], []
    for lvl in range(4):
        clean[lvl][base >= 0] = (base[base >= 0] + lvl * n).astype(np.int16)
        cmeta.append([[lvl * n + j, CLASSES[cls_of_inst[k // 16]], [k // 16], "gt", a]
                      for j, (k, a) in enumerate(gsegs)])
        crow.extend(text[cls_of_inst[k // 16]] for k, _ in gsegs)
    cfeats = (np.stack(crow) if crow else np.zeros((0, FEATURE_DIM))).astype(np.float16)
    return (seg, feats, dict(levels=meta, errors=errors)), (clean, cfeats, dict(levels=cmeta))


# ----------------------------------------------------------------------------- writers
def _write_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    from plyfile import PlyData, PlyElement

    v = np.empty(len(xyz), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"),
                                  ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    v["x"], v["y"], v["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    v["red"], v["green"], v["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    PlyData([PlyElement.describe(v, "vertex")], text=False).write(str(path))


def _opencv_to_opengl(c2w: np.ndarray) -> np.ndarray:
    M = np.array(c2w, np.float64).copy()
    M[:3, 1:3] *= -1.0
    return M


def _transforms_json(width: int, height: int, views: list[_View], convention: str) -> dict:
    fx, fy, cx, cy = intrinsics(width, height)
    doc = {
        "w": width, "h": height, "fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy,
        "camera_convention": (
            "OpenGL/Blender camera axes: x right, y up, z back (camera looks along -z)"
            if convention == "opengl" else
            "OpenCV/COLMAP camera axes: x right, y down, z forward"),
        "transform_matrix_is": "camera-to-world, world = synthetic table scene (metres, z up)",
        "frames": [],
    }
    for v in views:
        M = v.c2w if convention == "opencv" else _opencv_to_opengl(v.c2w)
        doc["frames"].append({
            "file_path": f"color/{v.stem}",
            "transform_matrix": [[float(x) for x in row] for row in M],
            "valid_fraction": round(v.stats["valid_fraction"], 4),
            "median_depth": round(v.stats["median_depth"], 4),
        })
    return doc


def _dump(path: Path, obj, compact: bool = False) -> None:
    with open(path, "w") as f:
        if compact:
            json.dump(obj, f, separators=(",", ":"))
        else:
            json.dump(obj, f, indent=1)


def _write_checksums(scene_dir: Path) -> None:
    lines = []
    for r, _, fs in sorted(os.walk(scene_dir)):
        for f in sorted(fs):
            p = Path(r) / f
            rel = p.relative_to(scene_dir).as_posix()
            if rel in ("SHA256SUMS", "scene_complete.json"):
                continue
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {rel}")
    (scene_dir / "SHA256SUMS").write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- public API
@dataclass(frozen=True)
class SyntheticSceneConfig:
    """Generate the embedded synthetic table scene (no download, no model weights)."""

    out_dir: Path = Path("data/synthetic_table")
    """Scene folder to write (created; its parent must be writable)."""
    num_views: int = 24
    """Training views on a ring around the table (stems 00000, 00001, ...)."""
    num_test_views: int = 4
    """Held-out views between the ring positions (stems test_000, ...); 0 = none."""
    width: int = 160
    """Image width in pixels (focal length scales with it: f = 1170 * width / 1296)."""
    height: int = 120
    """Image height in pixels."""
    seed: int = 0
    """Scene seed: object kinds, sizes, placement, textures, camera jitter, feature noise."""
    num_objects: int = 5
    """Objects on the table (1..8; boxes, balls and cans)."""
    num_points: int = 30000
    """Surface points in points3d.ply (fixed anchors); a few fewer if some are never seen."""
    mask_noise: float = 0.0
    """Per-mask probability of a 1 px boundary erosion and per-view probability of one
    object merge in the large level (0 = exact masks)."""
    feature_cos: float = 0.85
    """Expected cosine between an oracle mask feature and its class's text vector."""
    min_mask_px: int = 30
    """Masks smaller than this many pixels are dropped (the ScanNet tool uses 150 px at
    320x240)."""
    image_format: Literal["png", "jpg"] = "png"
    """Colour image format: png (lossless; instgs readers add the extension) or jpg
    (quality 95, what the OpenGaussian/InstanceGaussian readers expect for color/<stem>)."""
    overwrite: bool = False
    """Regenerate even if out_dir already holds a complete scene."""

    def run(self) -> Path:
        """Generate the scene; returns the scene folder."""
        return make_synthetic_scene(
            self.out_dir, num_views=self.num_views, num_test_views=self.num_test_views,
            width=self.width, height=self.height, seed=self.seed,
            num_objects=self.num_objects, num_points=self.num_points,
            mask_noise=self.mask_noise, feature_cos=self.feature_cos,
            min_mask_px=self.min_mask_px, image_format=self.image_format,
            overwrite=self.overwrite)


def _check_params(p: dict) -> None:
    def bad(msg: str, fix: str) -> None:
        raise InputError(msg, None, fix)

    if p["num_views"] < 1:
        bad(f"num_views must be >= 1, got {p['num_views']}", "pass at least one view")
    if p["num_test_views"] < 0:
        bad(f"num_test_views must be >= 0, got {p['num_test_views']}", "pass 0 or more")
    if p["width"] < 8 or p["height"] < 8:
        bad(f"image size must be at least 8x8 pixels, got {p['width']}x{p['height']}",
            "pass width and height >= 8")
    if not 1 <= p["num_objects"] <= 8:
        bad(f"num_objects must be in 1..8, got {p['num_objects']}", "pass 1..8 objects")
    if p["num_points"] < 100:
        bad(f"num_points must be >= 100, got {p['num_points']}", "pass e.g. 30000")
    if not 0.0 <= p["mask_noise"] <= 1.0:
        bad(f"mask_noise must be in [0, 1], got {p['mask_noise']}", "pass a probability")
    if not 0.0 < p["feature_cos"] <= 1.0:
        bad(f"feature_cos must be in (0, 1], got {p['feature_cos']}", "pass e.g. 0.85")
    if p["min_mask_px"] < 1:
        bad(f"min_mask_px must be >= 1, got {p['min_mask_px']}", "pass e.g. 30")
    if p["image_format"] not in ("jpg", "png"):
        bad(f"image_format must be 'jpg' or 'png', got {p['image_format']!r}",
            "pass image_format='jpg' or 'png'")


def read_marker(out_dir: str | Path) -> dict | None:
    """The ``scene_complete.json`` of a finished synthetic scene, or None."""
    path = Path(out_dir) / "scene_complete.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return None


def make_synthetic_scene(out_dir: str | Path, *, num_views: int = 24, width: int = 160,
                         height: int = 120, seed: int = 0, num_objects: int = 5,
                         overwrite: bool = False, num_test_views: int = 4,
                         num_points: int = 30000, mask_noise: float = 0.0,
                         feature_cos: float = 0.85, min_mask_px: int = 30,
                         image_format: Literal["png", "jpg"] = "png",
                         progress: bool = True) -> Path:
    """Write the synthetic table scene to ``out_dir`` (layout: see the module docstring).

    Idempotent: when ``out_dir/scene_complete.json`` exists with the same parameters and
    ``overwrite`` is False, returns at once. The scene is written into a temporary sibling
    folder and moved into place at the end, so an interrupted run leaves no half scene.

    Args:
        out_dir: scene folder (the folder ``read_scene`` takes).
        num_views: train views (>= 1). num_test_views: held-out views (>= 0).
        width, height: image size in pixels (>= 8).
        seed: scene seed (geometry, textures, camera jitter, feature noise, mask errors).
        num_objects: 1..8 objects on the table.
        overwrite: regenerate even if a complete scene is there (also when the parameters
            differ).
        num_points: surface points in ``points3d.ply`` (>= 100).
        mask_noise: mask error probability in [0, 1] (see :func:`build_masks`).
        feature_cos: expected cosine of oracle rows to their text vector, in (0, 1].
        min_mask_px: smallest mask kept, pixels.
        image_format: ``"png"`` (lossless) or ``"jpg"`` (quality 95; the research
            readers of this layout append ``.jpg`` to ``file_path``).
        progress: show a tqdm bar over the views.

    Returns:
        ``Path(out_dir)``.

    Raises:
        InputError: a parameter is out of range; ``out_dir`` holds a complete scene made
            with other parameters and ``overwrite`` is False; ``out_dir`` is a non-empty
            folder that is not a synthetic scene (it is never deleted).
    """
    from PIL import Image
    from tqdm import tqdm

    out_dir = Path(out_dir)
    params = dict(num_views=int(num_views), num_test_views=int(num_test_views),
                  width=int(width), height=int(height), seed=int(seed),
                  num_objects=int(num_objects), num_points=int(num_points),
                  mask_noise=float(mask_noise), feature_cos=float(feature_cos),
                  min_mask_px=int(min_mask_px), image_format=str(image_format),
                  format_version=FORMAT_VERSION)
    _check_params(params)
    marker = read_marker(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a folder", out_dir, "pass a folder path")
    if marker is not None and not overwrite:
        if marker.get("params") == params and all(
                (out_dir / f).exists() for f in ("points3d.ply", "transforms_train.json",
                                                 "color", "language_features")):
            return out_dir
        if marker.get("params") == params:       # our scene, damaged: make it again
            overwrite = True
        else:
            raise InputError(
                f"holds a synthetic scene made with other parameters ({marker.get('params')})",
                out_dir, "pass overwrite=True (--overwrite) to regenerate it, or another "
                "out_dir")
    if out_dir.is_dir() and any(out_dir.iterdir()) and marker is None:
        raise InputError("is a non-empty folder that is not a synthetic scene", out_dir,
                         "pass an empty or new folder; instgs never deletes foreign data")

    t0 = time.time()
    timings = {}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        scene = build_scene(seed, num_objects)
        cls_of_inst = {i.inst: i.cls for i in scene.instances}
        train_c2w, test_c2w = camera_poses(num_views, num_test_views, seed)
        for sub in ("color", "gt/instance", "gt/semantic", "gt/valid", "language_features",
                    "language_features_clean"):
            (tmp / sub).mkdir(parents=True, exist_ok=True)

        t = time.time()
        views: list[_View] = []
        jobs = ([("train", k, f"{k:05d}", c) for k, c in enumerate(train_c2w)]
                + [("test", k, f"test_{k:03d}", c) for k, c in enumerate(test_c2w)])
        meta_noisy, meta_clean = {}, {}
        cos_log = []
        class_vec = {nyu: text_feature(name) for name, nyu in CLASSES.items()}
        ext = "jpg" if image_format == "jpg" else "png"
        nyu_of_inst = np.zeros(len(scene.instances) + 1, np.uint8)
        for i in scene.instances:
            nyu_of_inst[i.inst] = CLASSES[i.cls]
        for split, k, stem, c2w in tqdm(jobs, desc="synthetic scene", unit="view",
                                        disable=not progress, leave=False):
            r = render_view(scene, c2w, width, height)
            valid = r["inst"] > 0
            v = _View(stem, split, k, c2w)
            v.stats = dict(valid_fraction=float(valid.mean()),
                           median_depth=float(np.median(r["depth"][valid])) if valid.any() else 0.0)
            img = Image.fromarray(r["rgb"])
            if ext == "jpg":
                img.save(tmp / "color" / f"{stem}.jpg", quality=95)
            else:
                img.save(tmp / "color" / f"{stem}.png")
            Image.fromarray(r["inst"].astype(np.uint16)).save(tmp / "gt/instance" / f"{stem}.png")
            Image.fromarray(nyu_of_inst[r["inst"]]).save(tmp / "gt/semantic" / f"{stem}.png")
            Image.fromarray((valid * 255).astype(np.uint8)).save(
                tmp / "gt/valid" / f"{stem}.png", optimize=True)
            seed_v = seed if split == "train" else seed + 1000
            mrng = np.random.default_rng([seed_v, 11, k])
            (seg, feats, mn), (cseg, cfeats, mc) = build_masks(
                r["inst"], r["med"], r["small"], cls_of_inst, mrng, min_px=min_mask_px,
                feature_cos=feature_cos, mask_noise=mask_noise)
            np.save(tmp / "language_features" / f"{stem}_s.npy", seg)
            np.save(tmp / "language_features" / f"{stem}_f.npy", feats)
            np.save(tmp / "language_features_clean" / f"{stem}_s.npy", cseg)
            np.save(tmp / "language_features_clean" / f"{stem}_f.npy", cfeats)
            meta_noisy[stem], meta_clean[stem] = mn, mc
            v.stats["n_masks"] = [len(lv) for lv in mn["levels"]]
            f32 = feats.astype(np.float32)
            for row, m in zip(f32, [m for lv in mn["levels"] for m in lv]):
                cos_log.append(float(row @ class_vec[m[1]]))
            views.append(v)
        timings["render+masks+write"] = time.time() - t
        train = [v for v in views if v.split == "train"]
        test = [v for v in views if v.split == "test"]

        t = time.time()
        prng = np.random.default_rng([seed, 23])
        pts = sample_points(scene, num_points, train_c2w, width, height, prng)
        timings["points"] = time.time() - t
        _write_ply(tmp / "points3d.ply", pts["xyz"], pts["rgb"])
        np.save(tmp / "gt/instance_per_vertex.npy", pts["inst"].astype(np.int32))
        np.save(tmp / "gt/nyu40_per_vertex.npy",
                nyu_of_inst[pts["inst"]].astype(np.int32))
        insts = {}
        for i in scene.instances:
            insts[i.inst] = {"nyu40": CLASSES[i.cls], "nyu40_name": NYU40_NAMES[CLASSES[i.cls]],
                             "text_feature_name": i.cls,
                             "n_vertices": int((pts["inst"] == i.inst).sum()),
                             "texture": i.texture["kind"]}
        _dump(tmp / "gt/instances.json", insts)
        _dump(tmp / "gt/nyu40_text_feature_names.json",
              {"nyu40_to_text_feature_name": {str(c): n for n, c in CLASSES.items()},
               "missing_names_mapped_to_otherfurniture": []})
        _dump(tmp / "text_features.json", text_feature_table(), compact=True)
        for split, vs in (("train", train), ("test", test)):
            if not vs:
                continue
            for conv, suffix in (("opengl", ""), ("opencv", "_opencv")):
                _dump(tmp / f"transforms_{split}{suffix}.json",
                      _transforms_json(width, height, vs, conv))
        _dump(tmp / "language_features/masks_meta.json",
              {"row_format": "[mask id (= row of _f.npy), nyu40 id, [GT instance ids], "
                             "tag (gt|part|merge), pixels]",
               "level_order": list(LEVEL_NAMES), "views": meta_noisy}, compact=True)
        _dump(tmp / "language_features_clean/masks_meta.json",
              {"row_format": "[mask id, nyu40 id, [GT instance id], 'gt', pixels]",
               "level_order": list(LEVEL_NAMES), "views": meta_clean}, compact=True)

        nm = np.array([v.stats["n_masks"] for v in train])
        vf = np.array([v.stats["valid_fraction"] for v in train])
        stats = dict(
            generator="instgs.data.synthetic", params=params,
            n_train=len(train), n_test=len(test), n_vertices=int(len(pts["xyz"])),
            vertices_per_instance={str(k): v["n_vertices"] for k, v in insts.items()},
            vertices_seen_by_train_views=dict(
                ge1=float((pts["n_views_seen"] >= 1).mean()),
                ge2=float((pts["n_views_seen"] >= 2).mean()),
                ge3=float((pts["n_views_seen"] >= 3).mean())),
            valid_fraction=dict(mean=float(vf.mean()), min=float(vf.min()), max=float(vf.max())),
            masks_per_view_mean=dict(zip(LEVEL_NAMES, [float(x) for x in nm.mean(0)])),
            feature_cos_to_text=dict(mean=float(np.mean(cos_log)) if cos_log else None,
                                     std=float(np.std(cos_log)) if cos_log else None),
            valid_fraction_per_view=dict(train=[round(v.stats["valid_fraction"], 4) for v in train],
                                         test=[round(v.stats["valid_fraction"], 4) for v in test]),
            timings_s={k: round(v, 3) for k, v in timings.items()},
        )
        stats["timings_s"]["total"] = round(time.time() - t0, 3)
        _dump(tmp / "generation_stats.json", stats)
        (tmp / "README.md").write_text(_readme(params, scene, stats))
        _write_checksums(tmp)
        write_json(tmp / "scene_complete.json",
                   dict(generator="instgs.data.synthetic", params=params,
                        n_vertices=int(len(pts["xyz"])), n_train=len(train), n_test=len(test)))
        # move into place: replace our own previous output only
        if out_dir.exists():
            if read_marker(out_dir) is None and any(out_dir.iterdir()):
                raise InputError("became a non-empty foreign folder during generation",
                                 out_dir, "pass an empty or new folder")
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _readme(params: dict, scene: SyntheticScene, stats: dict) -> str:
    objs = ", ".join(f"{i.inst}: {i.cls} ({i.texture['kind']})" for i in scene.instances)
    args = ", ".join(f"{k}={v!r}" for k, v in params.items() if k != "format_version")
    return f"""# Synthetic table scene (instgs embedded default scene)

**Not a real capture.** Ray-cast renders of a procedural scene made by
`instgs.data.synthetic.make_synthetic_scene({args})`. The per-mask features are an
ORACLE stand-in for CLIP image features: normalise(text[class] + Gaussian noise), where
text[class] is a deterministic random unit vector per class name (`text_features.json`),
not a CLIP embedding.

Layout: as written by `shared/tools/render_scannet_views.py` (OpenGaussian ScanNet-like):
`color/<stem>.{params['image_format']}`, `transforms_{{train,test}}.json` (OpenGL/Blender c2w,
fl_x/fl_y/cx/cy/w/h; `_opencv` variants with OpenCV axes), `points3d.ply` (surface samples,
x,y,z float32 + red,green,blue uchar), `gt/` (per-vertex instance/NYU40 ids, per-pixel
instance/semantic/valid PNGs), `language_features/` (LangSplat `_s.npy` int16 [4,H,W],
`_f.npy` float16 [M,512]), `language_features_clean/` (GT instance masks, noiseless rows).

Instances: {objs}. World: metres, z up, floor at z = 0, table top at z = {TABLE_TOP[1]}.
Intrinsics: fl_x = fl_y = 1170 * w / 1296, principal point at the image centre; a point
projects to pixel (floor(fx X/Z + cx), floor(fy Y/Z + cy)) in OpenCV camera coordinates.
Points: {stats['n_vertices']} ({stats['vertices_per_instance']} per instance), each seen by
at least one train view (exact ray test).

Mask levels (0 default = medium, 1 small, 2 medium, 3 large; ids cumulative in that order,
sorted by area within a level): large = instances; medium = floor halves, table top / legs,
object lower / upper halves; small = floor and table-top quadrants, each leg, object
quarters. Parts are cut in 3D, so they agree across views. Masks under
{params['min_mask_px']} px are dropped; mask_noise = {params['mask_noise']}.
"""
