"""Geometry of the synthetic scene: primitives, instances and :func:`build_scene`.

World frame: metres, z up, floor at z = 0, table top at z = ``TABLE_TOP[1]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from instgs.core.checks import InputError

FLOOR_HALF = 3.0          # floor square half-size, m
TABLE_TOP = (0.70, 0.75)  # table-top slab z range, m
TABLE_HALF = (0.8, 0.6)   # table-top half extents, m
LEG_RADIUS, LEG_INSET = 0.03, 0.08


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
    instances, prims = _floor_and_table(rng)
    kinds = [("box", "ball", "can")[i % 3] for i in range(num_objects)]
    kinds = [kinds[i] for i in rng.permutation(num_objects)]
    tex_kinds = ["checker", "stripes", "noise", "gradient", "dots"]
    tex_order = [tex_kinds[i] for i in rng.permutation(len(tex_kinds))]
    hue0 = float(rng.uniform())
    placed: list[tuple[float, float, float]] = []   # (x, y, footprint radius)
    for i, kind in enumerate(kinds):
        xy, foot, h, size = _place_object(rng, kind, placed)
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
        prims.append(_object_prim(kind, inst, xy, top, h, size, yaw))
    return SyntheticScene(tuple(instances), tuple(prims))


def _floor_and_table(rng: np.random.Generator) -> tuple[list[Instance], list[Primitive]]:
    """Instances 1 (floor) and 2 (table) and their surfaces: the floor plane, the table-top
    slab and the four legs (draws the table's wood-texture seed from ``rng``)."""
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
    return instances, prims


def _place_object(rng: np.random.Generator, kind: str, placed: list[tuple[float, float, float]]
                  ) -> tuple[np.ndarray, float, float, tuple[float, ...]]:
    """Draw the size and a table position of one object that keeps clear of ``placed``.

    Returns:
        (xy [2], footprint radius, height, size): size = (hx, hy) box half extents or
        (r,) ball / can radius, metres.
    """
    scale = 1.0
    for attempt in range(400):
        if attempt and attempt % 100 == 0:
            scale *= 0.85                            # crowded: shrink and retry
        if kind == "box":
            hx, hy = rng.uniform(0.06, 0.13, 2) * scale
            h = float(rng.uniform(0.10, 0.28) * scale)
            foot = math.hypot(hx, hy)
            size = (hx, hy)
        elif kind == "ball":
            r = float(rng.uniform(0.07, 0.12) * scale)
            h, foot = 2 * r, r
            size = (r,)
        else:
            r = float(rng.uniform(0.05, 0.085) * scale)
            h = float(rng.uniform(0.14, 0.28) * scale)
            foot = r
            size = (r,)
        lim = np.array(TABLE_HALF) - foot - 0.04
        xy = rng.uniform(-lim, lim)
        if all(math.hypot(xy[0] - px, xy[1] - py) > foot + pf + 0.06 for px, py, pf in placed):
            return xy, foot, h, size
    # 400 attempts with shrinking always succeed for <= 8 objects
    raise RuntimeError("could not place the objects on the table")  # pragma: no cover


def _object_prim(kind: str, inst: int, xy: np.ndarray, top: float, h: float,
                 size: tuple[float, ...], yaw: float) -> Primitive:
    """The surface of object ``inst`` standing on the table top at ``xy``."""
    if kind == "box":
        hx, hy = size
        return Primitive("box", inst, 0, (float(xy[0]), float(xy[1]), top + h / 2),
                         (float(hx), float(hy), h / 2), yaw=yaw)
    (r,) = size
    if kind == "ball":
        return Primitive("sphere", inst, 0, (float(xy[0]), float(xy[1]), top + r), radius=r)
    return Primitive("cylinder", inst, 0, (float(xy[0]), float(xy[1]), top),
                     radius=r, z0=top, z1=top + h)
