"""Time ``segment_anchors`` on an 80k-anchor synthetic room (Must show 3: seconds, not minutes).

    python benchmarks/bench_segment.py [--points 80000] [--boxes 30] [--repeats 3]
        [--assign nearest|kmeans] [--pe-dims xy|xyz] [--method graph|hdbscan]
        [--threads N] [--json out.json]

Prints per-stage median and IQR over the repeats, the instance quality against the
synthetic GT (published mIoU protocol) and machine metadata. Seeds are fixed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from instgs.eval.scannet import instance_miou
from instgs.segment import SegmentConfig, segment_anchors

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "segment"))
from _synthetic import make_synthetic_scene  # noqa: E402 - test fixture: boxes in a room


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=80_000)
    ap.add_argument("--boxes", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--assign", choices=["nearest", "kmeans"], default="nearest")
    ap.add_argument("--pe-dims", choices=["xy", "xyz"], default="xy")
    ap.add_argument("--method", choices=["graph", "hdbscan"], default="graph")
    ap.add_argument("--num-seeds", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: keep)")
    ap.add_argument("--json", type=str, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    scene = make_synthetic_scene(args.points, args.boxes, seed=0)
    gen_s = time.perf_counter() - t0
    cfg = SegmentConfig(method=args.method, assign=args.assign, pe_dims=args.pe_dims,
                        num_seeds=args.num_seeds)
    runs = []
    for r in range(args.repeats):
        torch.manual_seed(r)
        res = segment_anchors(scene.xyz, scene.ins_feat, cfg)
        runs.append(res.timings)
        print(f"run {r}: " + ", ".join(f"{k} {v:.2f}s" for k, v in res.timings.items()),
              flush=True)
    m = instance_miou(res.anchor_labels, scene.labels + 1)
    stages = {k: [t[k] for t in runs] for k in runs[0]}
    summary = {k: {"median_s": float(np.median(v)),
                   "iqr_s": float(np.subtract(*np.percentile(v, [75, 25])))}
               for k, v in stages.items()}
    meta = {"points": args.points, "boxes": args.boxes, "gt_instances": scene.num_instances,
            "config": vars(args), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(),
            "machine": platform.machine(), "python": platform.python_version(),
            "scene_generation_s": gen_s}
    print(f"\nsegment_anchors on {args.points} anchors ({scene.num_instances} GT instances), "
          f"method={args.method} assign={args.assign} pe_dims={args.pe_dims}, "
          f"{args.repeats} repeats, torch threads {torch.get_num_threads()}, "
          f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'stage':<10}{'median s':>10}{'IQR s':>10}")
    for k, v in summary.items():
        print(f"{k:<10}{v['median_s']:>10.3f}{v['iqr_s']:>10.3f}")
    print(f"result: {res.num_instances} instances, mIoU {100 * m.miou:.2f} "
          f"m50 {100 * m.m50:.2f} vs GT")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "stages": summary, "num_instances": res.num_instances,
                       "miou": m.miou}, f, indent=2)


if __name__ == "__main__":
    main()
