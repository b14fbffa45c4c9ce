#!/usr/bin/env python
"""The synthetic scene of ``instgs make-scene``, but with SfM-like initial points.

Writes the scene of :func:`instgs.data.synthetic.make_synthetic_scene` (defaults: 160x120,
24 train + 4 held-out views, GT instance masks), then replaces its ``points3d.ply`` with
2,000 of the surface samples moved by N(0, 1 cm) noise plus 100 uniform outliers in their
bounding box (5 %), the sparse and noisy start a structure-from-motion run gives. Anchors
then grow from these points under the ``default`` preset. docs/evaluation.md ("The photo
preset") trains the instance targets on this scene and scores them with ``instgs eval
masks``.

Usage:
    python scripts/make_sfm_like_scene.py OUT_DIR [--points 2000] [--noise 0.01]
        [--outliers 100] [--seed 0]
    instgs train --data OUT_DIR --format nerf --steps 1200 --seed S --run-dir RUN
    instgs segment RUN && instgs eval masks RUN
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement


def main() -> None:
    from instgs.data.synthetic import make_synthetic_scene

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--noise", type=float, default=0.01, help="std of the point noise (m)")
    ap.add_argument("--outliers", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    make_synthetic_scene(args.out, progress=False)
    ply_path = args.out / "points3d.ply"
    v = PlyData.read(str(ply_path))["vertex"].data
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(v), args.points, replace=False)
    xyz = np.stack([v["x"], v["y"], v["z"]], 1)[idx].astype(np.float32)
    rgb = np.stack([v["red"], v["green"], v["blue"]], 1)[idx]
    xyz += rng.normal(0, args.noise, xyz.shape).astype(np.float32)
    lo, hi = xyz.min(0), xyz.max(0)
    xyz = np.concatenate([xyz, rng.uniform(lo, hi, (args.outliers, 3)).astype(np.float32)])
    rgb = np.concatenate([rgb, rng.integers(0, 255, (args.outliers, 3)).astype(rgb.dtype)])
    el = np.empty(len(xyz), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"),
                                   ("green", "u1"), ("blue", "u1")])
    el["x"], el["y"], el["z"] = xyz.T
    el["red"], el["green"], el["blue"] = rgb.T
    tmp = ply_path.with_suffix(".ply.tmp")
    PlyData([PlyElement.describe(el, "vertex")]).write(str(tmp))
    tmp.replace(ply_path)
    # the scene is no longer the generated one: make-scene must not take it as complete
    (args.out / "scene_complete.json").unlink(missing_ok=True)
    print(f"{args.out}: {len(xyz)} initial points ({args.outliers} outliers)")


if __name__ == "__main__":
    main()
