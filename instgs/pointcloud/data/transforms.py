"""Standard point-cloud augmentations, composable and seedable.

Each transform is a callable ``(scene: PointScene, rng: np.random.Generator) -> PointScene``
that returns a new scene (inputs are not modified). The set follows HAIS / PointGroup
``data/scannetv2_inst.py`` (jitter matrix ``I + N(0, 0.1)``, x flip, z rotation, two
elastic distortions, crop to ``max_npoint``, colour noise; pointcloud-methods.md §P0 0.6)
and Pointcept's ``RandomRotate`` / ``RandomScale`` / ``RandomFlip``. Distances are metres:
HAIS's elastic parameters at ``scale = 50`` (granularity 6 and 20 voxels, magnitude 40 and
160) become 0.12 m / 0.8 and 0.4 m / 3.2.

Example::

    aug = Compose([RandomJitterMatrix(), RandomFlip(), RandomRotateZ(),
                   ElasticDistortion(0.12, 0.8), ElasticDistortion(0.4, 3.2),
                   CropToMaxPoints(250_000), ColorJitter(0.1)])
    scene = aug(scene, np.random.default_rng(0))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage
from scipy.interpolate import RegularGridInterpolator

from instgs.core.checks import InputError
from instgs.pointcloud.data.scannet import PointScene

__all__ = [
    "Compose",
    "Center",
    "RandomRotateZ",
    "RandomFlip",
    "RandomScale",
    "RandomJitterMatrix",
    "ElasticDistortion",
    "ColorJitter",
    "CropToMaxPoints",
    "hais_train_transforms",
    "RandomTilt",
    "RandomBlock",
    "room_coordinates",
    "ssen_train_transforms",
    "full_train_transforms",
]


def _with_coord(scene: PointScene, coord: np.ndarray) -> PointScene:
    return replace(scene, coord=coord.astype(np.float32))


class Compose:
    """Apply transforms in order with one shared generator."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, scene: PointScene, rng: np.random.Generator | None = None) -> PointScene:
        rng = rng if rng is not None else np.random.default_rng()
        for t in self.transforms:
            scene = t(scene, rng)
        return scene

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


@dataclass
class Center:
    """Subtract the coordinate mean (HAIS ``prepare_data_inst.py``); ``z_min=True`` instead
    puts the lowest point at z = 0 (keeps heights)."""

    z_min: bool = False

    def __call__(self, scene: PointScene, rng: np.random.Generator) -> PointScene:
        c = scene.coord.astype(np.float64)
        shift = c.mean(0)
        if self.z_min:
            shift[2] = c[:, 2].min()
        return _with_coord(scene, c - shift)


@dataclass
class RandomRotateZ:
    """Rotate about the z axis by an angle drawn uniformly from ``angle`` (radians)."""

    angle: tuple[float, float] = (-np.pi, np.pi)

    def __call__(self, scene: PointScene, rng: np.random.Generator) -> PointScene:
        a = rng.uniform(*self.angle)
        c, s = np.cos(a), np.sin(a)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return _with_coord(scene, scene.coord.astype(np.float64) @ rot.T)


@dataclass
class RandomFlip:
    """Negate coordinate ``axis`` (0 = x, as HAIS) with probability ``p``."""

    axis: int = 0
    p: float = 0.5

    def __call__(self, scene: PointScene, rng: np.random.Generator) -> PointScene:
        if rng.random() >= self.p:
            return scene
        c = scene.coord.copy()
        c[:, self.axis] = -c[:, self.axis]
        return _with_coord(scene, c)


@dataclass
class RandomScale:
    """Multiply coordinates by one factor from ``scale`` (isotropic) or one per axis."""

    scale: tuple[float, float] = (0.9, 1.1)
    anisotropic: bool = False

    def __call__(self, scene: PointScene, rng: np.random.Generator) -> PointScene:
        f = rng.uniform(*self.scale, size=3 if self.anisotropic else 1)
        return _with_coord(scene, scene.coord.astype(np.float64) * f)


@dataclass
class RandomJitterMatrix:
    """Multiply coordinates by ``I + N(0, sigma)`` (3x3), HAIS ``dataAugment(jitter=True)``."""

    sigma: float = 0.1

    def __call__(self, scene: PointScene, rng: np.random.Generator) -> PointScene:
        m = np.eye(3) + rng.normal(0.0, self.sigma, (3, 3))
        return _with_coord(scene, scene.coord.astype(np.float64) @ m)


@dataclass
class ElasticDistortion:
    """Smooth random displacement field (PointGroup / HAIS ``elastic``).

    Gaussian noise on a grid of spacing ``granularity`` (metres) covering the scene with a
    3-cell margin is box-blurred (3 passes of a 3-tap blur per axis), trilinearly
    interpolated at each point and added times ``magnitude``.
    """

    granularity: float = 0.12
    magnitude: float = 0.8

    def __call__(self, scene: PointScene, rng: np.random.Generator) -> PointScene:
        if not self.granularity > 0:
            raise InputError(f"granularity must be > 0, got {self.granularity}")
        x = scene.coord.astype(np.float64)
        lo = x.min(0) - 3 * self.granularity
        bb = ((x.max(0) - lo) // self.granularity).astype(int) + 4
        blurs = [np.ones((3, 1, 1)) / 3, np.ones((1, 3, 1)) / 3, np.ones((1, 1, 3)) / 3]
        noise = []
        for _ in range(3):
            n = rng.standard_normal(tuple(bb))
            for _ in range(2):
                for b in blurs:
                    n = ndimage.convolve(n, b, mode="constant", cval=0.0)
            noise.append(n)
        axes = [lo[d] + np.arange(bb[d]) * self.granularity for d in range(3)]
        disp = np.stack([RegularGridInterpolator(axes, n, bounds_error=False, fill_value=0.0)(x)
                         for n in noise], 1)
        return _with_coord(scene, x + disp * self.magnitude)


@dataclass
class ColorJitter:
    """Add ``N(0, std)`` to the colours (one offset per channel and scene, HAIS), clip to
    [-1, 1]; ``per_point=True`` draws per point instead."""

    std: float = 0.1
    per_point: bool = False

    def __call__(self, scene: PointScene, rng: np.random.Generator) -> PointScene:
        shape = scene.color.shape if self.per_point else (1, 3)
        col = scene.color + rng.normal(0.0, self.std, shape)
        return replace(scene, color=np.clip(col, -1.0, 1.0).astype(np.float32))


@dataclass
class CropToMaxPoints:
    """Keep at most ``max_points``: the points nearest (xy, L-infinity) to a random point.

    The result is a square xy window, like HAIS's crop, which shrinks an axis-aligned
    window until at most ``max_npoint`` points remain. Instance ids are made
    consecutive again; ``scene.extra["index"]`` (if present) tracks the original points.
    """

    max_points: int = 250_000

    def __call__(self, scene: PointScene, rng: np.random.Generator) -> PointScene:
        n = scene.num_points
        if n <= self.max_points:
            return scene
        if self.max_points < 1:
            raise InputError(f"max_points must be >= 1, got {self.max_points}")
        c = scene.coord[rng.integers(n), :2]
        d = np.abs(scene.coord[:, :2] - c).max(1)
        keep = np.sort(np.argpartition(d, self.max_points - 1)[: self.max_points])
        return scene.subset(keep, relabel=True)


def hais_train_transforms(max_points: int = 250_000) -> Compose:
    """The HAIS training augmentation in metres (pointcloud-methods.md §P0 0.6)."""
    return Compose([
        Center(), RandomJitterMatrix(0.1), RandomFlip(0, 0.5), RandomRotateZ(),
        ElasticDistortion(0.12, 0.8), ElasticDistortion(0.4, 3.2),
        CropToMaxPoints(max_points), ColorJitter(0.1),
    ])


@dataclass
class RandomTilt:
    """Rotate about the x axis by ``N(0, sigma)`` clipped to ``[-clip, clip]`` (radians).

    SSEN (seed 003 §3.6): "around the x-axis with 5 deg scaled Gaussian noise, with maximum
    10 deg" (defaults)."""

    sigma: float = float(np.deg2rad(5.0))
    clip: float = float(np.deg2rad(10.0))

    def __call__(self, scene: PointScene, rng: np.random.Generator) -> PointScene:
        a = float(np.clip(rng.normal(0.0, self.sigma), -self.clip, self.clip))
        c, s = np.cos(a), np.sin(a)
        rot = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
        return _with_coord(scene, scene.coord.astype(np.float64) @ rot.T)


def room_coordinates(coord: np.ndarray) -> np.ndarray:
    """Room-normalised coordinates, the last three of PointNet's / ASIS's 9-d block input:
    ``(coord - min) / extent`` per axis over the whole room.

    Args:
        coord: [N, 3] float, metres (N >= 1).

    Returns:
        [N, 3] float32 in [0, 1] (an axis without extent gives 0).
    """
    c = np.asarray(coord, dtype=np.float64)
    lo = c.min(0)
    ext = c.max(0) - lo
    return ((c - lo) / np.where(ext > 0, ext, 1.0)).astype(np.float32)


@dataclass
class RandomBlock:
    """Crop a random ``size`` x ``size`` xy column and sample ``num_points`` of its points
    (MPNet, seed 002 §2.6: 1 m blocks, 4096 points; PointNet / ASIS sampling).

    The block keeps its points' room-normalised coordinates (:func:`room_coordinates` of
    the whole scene, unless the scene already carries them) in ``extra["room_xyz"]``.

    The block centre is a random point of the scene (so blocks land where points are);
    blocks with more points are sub-sampled without replacement, smaller ones are filled
    up by drawing their points again (duplicates, as PointNet's ``room2blocks``). Instance
    ids are made consecutive again. Apply it first and augment the block afterwards (cheap).
    """

    size: float = 1.0
    num_points: int = 4096

    def __call__(self, scene: PointScene, rng: np.random.Generator) -> PointScene:
        if not (self.size > 0 and self.num_points >= 1):
            raise InputError(f"need size > 0 and num_points >= 1, got {self.size}, "
                             f"{self.num_points}")
        if "room_xyz" not in scene.extra:
            scene = replace(scene, extra={**scene.extra,
                                          "room_xyz": room_coordinates(scene.coord)})
        xy = scene.coord[:, :2].astype(np.float64)
        c = xy[rng.integers(scene.num_points)]
        idx = np.flatnonzero((np.abs(xy - c) <= self.size / 2).all(1))
        if idx.size >= self.num_points:
            pick = rng.choice(idx, self.num_points, replace=False)
        else:
            pick = np.concatenate([idx, rng.choice(idx, self.num_points - idx.size)])
        return scene.subset(np.sort(pick), relabel=True)


def ssen_train_transforms() -> Compose:
    """SSEN's training augmentation (seed 003 §3.6; paper values): z rotation, x tilt
    N(0, 5 deg) clipped at 10 deg, scale [0.8, 1.2], per-point colour noise 0.03 on
    [0, 1] colours (= 0.06 on our [-1, 1] colours)."""
    return Compose([Center(), RandomRotateZ(), RandomTilt(), RandomScale((0.8, 1.2)),
                    ColorJitter(0.06, per_point=True)])


def full_train_transforms(max_points: int | None = None) -> Compose:
    """The transfer recipe shared by the four networks: every augmentation the papers use
    (HAIS + SSEN + Pointcept): centre, rotation about z, x tilt, flips of x and y, scale
    [0.8, 1.2], HAIS's jitter matrix and two elastic distortions, an optional random crop
    to ``max_points`` and colour noise (one offset per scene, std 0.1)."""
    ts = [Center(), RandomRotateZ(), RandomTilt(), RandomFlip(0, 0.5), RandomFlip(1, 0.5),
          RandomScale((0.8, 1.2)), RandomJitterMatrix(0.1), ElasticDistortion(0.12, 0.8),
          ElasticDistortion(0.4, 3.2)]
    if max_points:
        ts.append(CropToMaxPoints(max_points))
    ts.append(ColorJitter(0.1))
    return Compose(ts)
