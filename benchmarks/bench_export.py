"""Fidelity, size and speed of ``instgs export`` on a trained run (docs/export.md).

    python benchmarks/bench_export.py RUN [--threads 1] [--json out.json]

For each baking setting (SH degree 0..3 with the default rules, then the opacity and
weight rules at degree 3) the run is baked, written as a 3DGS PLY, read back with
:func:`instgs.export.read_ply` and rendered from the held-out views. Reported per setting:
PSNR of that render against the Scaffold render of the same views, held-out PSNR against
the photos (next to the Scaffold model's own), Gaussian count, file size, bake and write
time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--ridges", type=float, nargs="*", default=[0.1])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from instgs.export import BakeConfig, bake, read_ply, write_ply
    from instgs.losses import psnr
    from instgs.render import render
    from instgs.run import load_run

    run = load_run(args.run)
    views = list(run.scene.test_ids) or list(run.scene.train_ids)
    cams = run.scene.cameras
    with torch.no_grad():
        ref = {i: render(run.decode(i).gaussians, cams[i]).rgb[0].clamp(0, 1) for i in views}
    photos = {i: run.scene.load_image(i) for i in views}
    base = float(np.mean([psnr(ref[i], photos[i]) for i in views]))
    print(f"{args.run}: {len(views)} held-out views; Scaffold vs photos {base:.2f} dB")
    settings = [dict(sh_degree=d, ridge=r) for d in (0, 1, 2, 3) for r in args.ridges]
    settings += [dict(sh_degree=3, ridge=args.ridges[0], opacity=o)
                 for o in ("mean-active", "max")]
    settings += [dict(sh_degree=3, ridge=args.ridges[0], weights=w) for w in ("opacity", "seen")]
    rows = []
    for kw in settings:
        t0 = time.perf_counter()
        s = bake(run, BakeConfig(progress=False, **kw))
        t1 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            path = write_ply(Path(tmp) / "x.ply", s.select(s.opacities >= 1 / 255))
            t2 = time.perf_counter()
            size = path.stat().st_size
            back = read_ply(path)
        with torch.no_grad():
            imgs = {i: back.render(cams, i).rgb[0].clamp(0, 1) for i in views}
        row = {**{"opacity": "mean-seen", "weights": "active"}, **kw,
               "vs_scaffold_db": float(np.mean([psnr(imgs[i], ref[i]) for i in views])),
               "vs_photos_db": float(np.mean([psnr(imgs[i], photos[i]) for i in views])),
               "scaffold_vs_photos_db": base, "gaussians": len(back),
               "file_mb": size / 1e6, "bake_s": t1 - t0, "write_s": t2 - t1}
        rows.append(row)
        print(f"SH {kw['sh_degree']} ridge {row['ridge']:<5} opacity {row['opacity']:<11} "
              f"weights {row['weights']:<7}: {row['vs_scaffold_db']:6.2f} dB vs Scaffold, "
              f"{row['vs_photos_db']:6.2f} dB vs photos, {row['gaussians']:,} Gaussians, "
              f"{row['file_mb']:.1f} MB, bake {row['bake_s']:.1f} s, write {row['write_s']:.1f} s",
              flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
