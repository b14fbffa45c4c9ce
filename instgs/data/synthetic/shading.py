"""Appearance of the synthetic scene: normals, procedural solid textures, Lambertian shading
and the 3D part labels behind the mask levels."""

from __future__ import annotations

import numpy as np

from .scene import Instance, Primitive, SyntheticScene, _rot_z

LIGHT_DIR = np.array([0.35, 0.25, 1.0]) / np.linalg.norm([0.35, 0.25, 1.0])
AMBIENT = 0.35


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
