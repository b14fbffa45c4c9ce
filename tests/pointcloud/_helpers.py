"""Shared fixtures of the point-cloud tests: a tiny synthetic ScanNet-like scene."""

from __future__ import annotations

import numpy as np

from instgs.pointcloud.data import PointScene, class_statistics
from instgs.pointcloud.hais import HAISConfig
from instgs.pointcloud.presets import hais_preset

#: (lower corner, size, ScanNet20 class) of the synthetic objects.
BOXES = (((0.0, 0.0, 0.0), (0.6, 0.6, 0.8), 4),      # chair-like
         ((1.4, 0.1, 0.0), (1.0, 0.5, 0.7), 6),      # table
         ((0.1, 1.5, 0.0), (0.5, 0.5, 1.0), 2),      # cabinet
         ((1.6, 1.5, 0.0), (0.4, 0.4, 0.5), 4))      # second chair


def synthetic_scene(seed: int = 0, n_box: int = 500, n_floor: int = 800,
                    name: str = "synth") -> PointScene:
    """A floor (class 1, no instance) and box surfaces (one instance each)."""
    rng = np.random.default_rng(seed)
    coords, colors, sems, insts = [], [], [], []
    fl = np.c_[rng.uniform(-0.4, 2.6, (n_floor, 2)), np.zeros(n_floor)]
    coords.append(fl)
    colors.append(np.tile([0.2, 0.2, 0.2], (n_floor, 1)))
    sems.append(np.full(n_floor, 1))
    insts.append(np.full(n_floor, -100))
    for k, (lo, size, cls) in enumerate(BOXES):
        lo, hi = np.array(lo), np.array(lo) + np.array(size)
        p = rng.uniform(lo, hi, (n_box, 3))
        axis = rng.integers(0, 3, n_box)
        side = rng.integers(0, 2, n_box)
        side[axis == 2] = 1  # no bottom face
        p[np.arange(n_box), axis] = np.where(side == 1, hi[axis], lo[axis])
        coords.append(p)
        colors.append(np.tile([cls / 10 - 1, 0.5 - cls / 20, 0.3], (n_box, 1)))
        sems.append(np.full(n_box, cls))
        insts.append(np.full(n_box, k))
    col = np.concatenate(colors) + rng.normal(0, 0.02, (n_floor + len(BOXES) * n_box, 3))
    return PointScene(name, np.concatenate(coords).astype(np.float32),
                      np.clip(col, -1, 1).astype(np.float32),
                      np.concatenate(sems).astype(np.int64), np.concatenate(insts).astype(np.int64))


def tiny_cfg(scene: PointScene | None = None) -> HAISConfig:
    cfg = hais_preset("tiny")
    # r_point 0.1 m: the synthetic surfaces are sampled ~5 cm apart (ScanNet: ~1-2 cm)
    cfg = HAISConfig(**{**cfg.__dict__, "width": 8, "levels": 3, "voxel_size": 0.06,
                        "intra_voxel_size": 0.06, "min_points": 20, "point_radius": 0.1})
    if scene is not None:
        cfg = cfg.with_class_statistics(class_statistics([scene]))
    return cfg


# --- files on disk for the CLI tests ------------------------------------------------------------
#: ``instgs-pc train`` flags that shrink HAIS-tiny to the synthetic scenes (fast, 1 thread).
HAIS_SMALL = ["--hais.width", "8", "--hais.levels", "3", "--hais.voxel-size", "0.06",
              "--hais.intra-voxel-size", "0.06", "--hais.min-points", "20",
              "--hais.point-radius", "0.1"]


def write_pointcept(root, name: str, seed: int = 0, labels: bool = True, n_box: int = 250,
                    n_floor: int = 300):
    """Pointcept ``preprocess_scannet.py`` layout: coord, color (uint8) and, with ``labels``,
    segment20 / instance with -1 for none. Returns the scene folder."""
    from pathlib import Path

    sc = synthetic_scene(seed, n_box=n_box, n_floor=n_floor)
    d = Path(root) / name
    d.mkdir(parents=True)
    np.save(d / "coord.npy", sc.coord.astype(np.float32))
    np.save(d / "color.npy", np.round((sc.color + 1) * 127.5).astype(np.uint8))
    if labels:
        np.save(d / "segment20.npy", np.where(sc.semantic < 0, -1, sc.semantic).astype(np.int16))
        np.save(d / "instance.npy", np.where(sc.instance < 0, -1, sc.instance).astype(np.int16))
    return d


class Planted:
    """An object whose unpickling creates ``marker`` (stands in for any code an attacker
    could run: ``os.system`` executes a shell command)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch '{self.marker}'",))


# --- the other three networks, sized for the synthetic scene ------------------------------------
def ssen_small(**kw):
    from instgs.pointcloud.ssen import SSENConfig

    return SSENConfig(**{"width": 8, "levels": 3, "voxel_size": 0.06, "block_reps": 1,
                         "min_points": 20, "min_cluster_size": 10, **kw})


def queryis_small(**kw):
    from instgs.pointcloud.queryis import QueryISConfig

    return QueryISConfig(**{"width": 16, "levels": 3, "rpg_layer": 1, "voxel_size": 0.06,
                            "block_reps": 1, "min_points": 20, "num_points": 64,
                            "num_queries": 12, **kw})


def mpnet_small(**kw):
    from instgs.pointcloud.mpnet import MPNetConfig

    return MPNetConfig(**{"block_points": 256, "width_scale": 0.25, "sa_npoints": (64, 16),
                          "sa_radii": (0.2, 0.4), "memory_per_class": 4, "min_points": 20,
                          "block_size": 1.5, "block_stride": 0.75, "temperature": 0.1,
                          "logit_scale": 10.0, **kw})


#: ``instgs-pc train`` flags that shrink each network to the synthetic scenes.
SMALL_FLAGS = {
    "hais": HAIS_SMALL,
    "ssen": ["--ssen.width", "8", "--ssen.levels", "3", "--ssen.voxel-size", "0.06",
             "--ssen.block-reps", "1", "--ssen.min-points", "20", "--ssen.min-cluster-size",
             "10"],
    "queryis": ["--queryis.width", "16", "--queryis.levels", "3", "--queryis.rpg-layer", "1",
                "--queryis.voxel-size", "0.06", "--queryis.block-reps", "1",
                "--queryis.min-points", "20", "--queryis.num-points", "64",
                "--queryis.num-queries", "12"],
    "mpnet": ["--mpnet.block-points", "256", "--mpnet.width-scale", "0.25",
              "--mpnet.sa-npoints", "64", "16", "--mpnet.sa-radii", "0.2", "0.4",
              "--mpnet.memory-per-class", "4", "--mpnet.min-points", "20",
              "--mpnet.block-size", "1.5", "--mpnet.block-stride", "0.75",
              "--train.batch-size", "2"],
}
