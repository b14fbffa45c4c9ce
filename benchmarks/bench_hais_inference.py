"""Time HAIS inference per ~80k-point ScanNet scan on CPU, per stage (HAIS Table 6/7: 410 ms
per scan on a Titan X: point-wise prediction 172, point aggregation 125, set aggregation 4,
intra-instance prediction 109).

    python benchmarks/bench_hais_inference.py [--ckpt run/ckpt/last.pt] \\
        [--data ../shared/data/scannet-scene0000-mmdet3d] [--scene scene0000_01] \\
        [--preset tiny|paper] [--repeats 3] [--threads 1] [--json out.json]

Without ``--ckpt`` a randomly initialised network of ``--preset`` is timed (its grouping
stages then see untrained offsets; pass a trained checkpoint for representative
aggregation / intra-instance times). Prints per-stage median and IQR (ms) over the repeats
after one warm-up run, plus machine metadata. Stages: voxelize (collate + voxel grid),
backbone (sparse UNet, voxel -> point features), heads (semantic + offset MLPs),
point_aggregation (same-label radius graph on shifted points + components),
set_aggregation (Alg. 1), intra_instance (proposal voxelisation + UNet + mask / score
heads), postprocess (thresholds, masks), total.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np
import torch

from instgs.pointcloud.cli import load_network
from instgs.pointcloud.data import load_scannet_scene
from instgs.pointcloud.hais import HAIS, STAGES, predict
from instgs.pointcloud.presets import hais_preset

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / \
    "scannet-scene0000-mmdet3d"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--scene", default="scene0000_01")
    ap.add_argument("--preset", choices=["tiny", "paper"], default="tiny")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: fastest on a loaded shared machine)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    scene = load_scannet_scene(args.data, args.scene)
    if args.ckpt is not None:
        model = load_network(args.ckpt)
    else:
        torch.manual_seed(0)
        model = HAIS(hais_preset(args.preset)).eval()
    predict(model, scene)  # warm-up (spconv kernel setup, allocator)
    runs = []
    for r in range(args.repeats):
        p = predict(model, scene)
        runs.append(p.timings)
        print(f"run {r}: " + ", ".join(f"{k} {1000 * p.timings[k]:.0f}ms" for k in STAGES)
              + f" | clusters {p.num_clusters}, proposals {p.num_proposals}, "
              f"instances {len(p.instances)}", flush=True)
    summary = {k: {"median_ms": float(1000 * np.median([t[k] for t in runs])),
                   "iqr_ms": float(1000 * np.subtract(*np.percentile([t[k] for t in runs],
                                                                   [75, 25])))}
               for k in STAGES}
    cfg = model.cfg
    meta = {"scene": scene.name, "points": scene.num_points,
            "voxels": None, "ckpt": str(args.ckpt) if args.ckpt else None,
            "config": {"voxel_size": cfg.voxel_size, "width": cfg.width, "levels": cfg.levels,
                       "block_reps": cfg.block_reps}, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "loadavg_1min": os.getloadavg()[0],
            "repeats": args.repeats}
    from instgs.pointcloud.voxelize import voxelize

    meta["voxels"] = voxelize(scene.coord, cfg.voxel_size).num_voxels
    print(f"\n{scene.name}: {scene.num_points} points, {meta['voxels']} voxels at "
          f"{cfg.voxel_size} m, m={cfg.width}, {cfg.levels} levels, threads "
          f"{meta['threads']}, load avg {meta['loadavg_1min']:.1f}")
    print(f"{'stage':<20}{'median ms':>12}{'IQR ms':>10}")
    for k, v in summary.items():
        print(f"{k:<20}{v['median_ms']:>12.0f}{v['iqr_ms']:>10.0f}")
    if args.json:
        args.json.write_text(json.dumps({"stages": summary, "meta": meta}, indent=2) + "\n")


if __name__ == "__main__":
    main()
