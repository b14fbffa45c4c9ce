"""A synthetic room with known instances, for tests, benchmarks and examples.

Not a dataset: points are sampled on box surfaces (a floor, four walls and axis-aligned
boxes standing on the floor), and every instance has one random unit feature to which
per-point Gaussian noise is added -- what a well-trained instance head should give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SyntheticScene", "make_synthetic_scene"]


@dataclass(frozen=True)
class SyntheticScene:
    """Attributes: xyz [N, 3] float32 metres; ins_feat [N, F] float32; labels [N] int64
    GT instance id in [0, num_instances) (0 = floor, 1..4 = walls, then the boxes)."""

    xyz: np.ndarray
    ins_feat: np.ndarray
    labels: np.ndarray
    num_instances: int


def _box_surface(rng, lo, hi, n, open_bottom=True):
    """n points uniformly on the surface of the box [lo, hi] (without its bottom face)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    e = hi - lo
    faces = []  # (axis fixed, value, area)
    for ax in range(3):
        other = [a for a in range(3) if a != ax]
        area = e[other[0]] * e[other[1]]
        for side, val in ((0, lo[ax]), (1, hi[ax])):
            if open_bottom and ax == 2 and side == 0:
                continue
            faces.append((ax, val, area))
    areas = np.array([f[2] for f in faces])
    which = rng.choice(len(faces), size=n, p=areas / areas.sum())
    pts = lo + rng.random((n, 3)) * e
    for k, (ax, val, _) in enumerate(faces):
        pts[which == k, ax] = val
    return pts


def _distinct_features(rng, k, dim, min_dist):
    feats = []
    tries = 0
    while len(feats) < k:
        v = rng.normal(size=dim)
        v /= np.linalg.norm(v)
        tries += 1
        if all(np.linalg.norm(v - f) >= min_dist for f in feats) or tries > 100_000:
            feats.append(v)
    return np.stack(feats)


def make_synthetic_scene(num_points: int = 80_000, num_boxes: int = 30, feat_dim: int = 6,
                         room: tuple[float, float, float] = (8.0, 6.0, 2.5),
                         feat_noise: float = 0.05, min_feat_dist: float = 0.6,
                         seed: int = 0) -> SyntheticScene:
    """Sample a room (floor, 4 walls) with ``num_boxes`` boxes standing on the floor.

    Boxes are 0.3-1.2 m wide, 0.3-1.5 m tall, placed without overlap on a jittered grid;
    points are spread over instances in proportion to surface area. Instance features are
    random unit vectors at least ``min_feat_dist`` apart (L2), plus N(0, feat_noise^2) noise.

    Args:
        num_points: total points N.
        num_boxes: object instances besides floor and walls.
        feat_dim: F.
        room: room size (x, y, z) in metres.
        feat_noise: per-point feature noise sigma.
        min_feat_dist: minimum L2 distance between instance features.
        seed: RNG seed.

    Returns:
        :class:`SyntheticScene` with ``num_boxes + 5`` instances.
    """
    rng = np.random.default_rng(seed)
    X, Y, Z = room
    parts = [((0, 0, -0.01), (X, Y, 0.0)),            # floor (top face dominates)
             ((0, 0, 0), (0.01, Y, Z)), ((X - 0.01, 0, 0), (X, Y, Z)),
             ((0, 0, 0), (X, 0.01, Z)), ((0, Y - 0.01, 0), (X, Y, Z))]
    cols = int(np.ceil(np.sqrt(num_boxes * X / Y)))
    rows = int(np.ceil(num_boxes / cols))
    cw, ch = (X - 0.4) / cols, (Y - 0.4) / rows
    cells = rng.permutation(rows * cols)[:num_boxes]
    for c in cells:
        r, q = divmod(int(c), cols)
        w = rng.uniform(0.3, min(1.2, cw - 0.1), size=2)
        x0 = 0.2 + q * cw + rng.uniform(0.05, cw - w[0] - 0.05)
        y0 = 0.2 + r * ch + rng.uniform(0.05, ch - w[1] - 0.05)
        h = rng.uniform(0.3, 1.5)
        parts.append(((x0, y0, 0.0), (x0 + w[0], y0 + w[1], h)))
    areas = []
    for lo, hi in parts:
        e = np.subtract(hi, lo)
        areas.append(e[0] * e[1] + 2 * e[2] * (e[0] + e[1]))
    counts = np.floor(np.array(areas) / np.sum(areas) * num_points).astype(int)
    counts[0] += num_points - counts.sum()
    xyz, labels = [], []
    for i, ((lo, hi), n) in enumerate(zip(parts, counts)):
        xyz.append(_box_surface(rng, lo, hi, int(n)))
        labels.append(np.full(int(n), i, np.int64))
    xyz = np.concatenate(xyz).astype(np.float32)
    labels = np.concatenate(labels)
    base = _distinct_features(rng, len(parts), feat_dim, min_feat_dist)
    feats = base[labels] + feat_noise * rng.normal(size=(len(labels), feat_dim))
    perm = rng.permutation(len(labels))
    return SyntheticScene(xyz=xyz[perm], ins_feat=feats[perm].astype(np.float32),
                          labels=labels[perm], num_instances=len(parts))
