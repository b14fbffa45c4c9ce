"""Cameras of the synthetic scene: intrinsics, poses around the table and pixel rays."""

from __future__ import annotations

import math

import numpy as np

from .scene import TABLE_TOP

SCANNET_FX, SCANNET_W = 1170.0, 1296.0   # ScanNet colour camera, as the ScanNet tool uses


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
