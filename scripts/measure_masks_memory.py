#!/usr/bin/env python
"""Peak RSS of `instgs masks` (Felzenszwalb source) against the number of images.

For each N, the first N images of a folder (default: the instant-ngp fox scene, 67 images of
1080x1920, processed at LangSplat's default resolution, height 1080) are symlinked into a fresh
temporary scene and ``python -m instgs.masks --mask-source felzenszwalb`` runs on them in a
child process. The child's peak resident set size comes from ``os.wait4`` (the kernel's
``ru_maxrss`` of that child alone). Streaming means the peak must not grow with N.

Usage:
    python scripts/measure_masks_memory.py [--images DIR] [--counts 20 67] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = REPO.parent / "shared" / "data" / "instant-ngp-fox" / "images"


def measure(images: list[Path], extra: list[str]) -> dict:
    """Run the CLI on ``images`` in a child; return its peak RSS (MiB) and wall time (s)."""
    with tempfile.TemporaryDirectory(prefix="instgs_mem_") as tmp:
        img_dir = Path(tmp) / "scene" / "images"
        img_dir.mkdir(parents=True)
        for p in images:
            (img_dir / p.name).symlink_to(p.resolve())
        cmd = [sys.executable, "-m", "instgs.masks", "--data", str(img_dir.parent),
               "--mask-source", "felzenszwalb", "--no-progress", *extra]
        t0 = time.time()
        proc = subprocess.Popen(cmd, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.time() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"instgs masks failed (exit {status}): {' '.join(cmd)}")
        written = len(list((img_dir.parent / "language_features").glob("*_s.npy")))
    # Linux reports ru_maxrss in KiB
    return {"images": len(images), "written": written, "peak_rss_mib": usage.ru_maxrss / 1024,
            "wall_s": round(wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    ap.add_argument("--counts", type=int, nargs="+", default=[20, 67])
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("extra", nargs="*", help="extra `instgs masks` arguments (after --)")
    args = ap.parse_args()
    files = sorted(p for p in args.images.iterdir()
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SystemExit(f"no images in {args.images}")
    results = []
    for n in args.counts:
        if n > len(files):
            raise SystemExit(f"asked for {n} images, {args.images} has {len(files)}")
        r = measure(files[:n], args.extra)
        results.append(r)
        print(f"N={r['images']:4d}  written={r['written']:4d}  peak RSS={r['peak_rss_mib']:8.1f} "
              f"MiB  wall={r['wall_s']:6.1f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"images_dir": str(args.images), "results": results},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
