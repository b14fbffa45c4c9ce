"""Time CPU inference per ~80k-point ScanNet scan, stage by stage, for the four point-cloud
networks (HAIS, SSEN, 3D-QueryIS, MPNet) on one thread.

    python benchmarks/bench_pointcloud_inference.py \\
        --ckpt hais=RUN_H/ckpt/last.pt --ckpt ssen=RUN_S/ckpt/last.pt \\
        [--model queryis --model mpnet] [--data ../shared/data/scannet-scene0000-mmdet3d] \\
        [--scene scene0000_00] [--repeats 3] [--threads 1] [--no-warmup] [--json out.json]

``--ckpt NAME=PATH`` times a trained network (its grouping stages then see trained
embeddings / offsets, which is what sets their cost); ``--model NAME`` times a randomly
initialised network of the ``NAME-tiny`` preset (the network stages are representative, the
grouping stages are not). Prints per-stage medians and IQRs (ms) over the repeats after one
warm-up run, and the machine load. Stages are each network's ``STAGES``
(:mod:`instgs.pointcloud.networks`). HAIS's own script (``bench_hais_inference.py``,
938 ms on scene0000_00 in ``docs/hais.md``) times the same ``hais.predict``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np
import torch

from instgs.pointcloud.networks import NETWORKS, build_network, network_spec
from instgs.pointcloud.presets import load_setup
from instgs.pointcloud.runner import load_network, load_scenes

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / \
    "scannet-scene0000-mmdet3d"


def _models(args) -> list[tuple[str, str, torch.nn.Module]]:
    """``(network, source, model)`` for every ``--ckpt`` and ``--model``."""
    out = []
    for item in args.ckpt:
        name, _, path = item.partition("=")
        if name not in NETWORKS or not path:
            raise SystemExit(f"--ckpt wants NAME=PATH with NAME in {list(NETWORKS)}: {item}")
        out.append((name, path, load_network(Path(path), expect=name)))
    for name in args.model:
        torch.manual_seed(0)
        setup = load_setup(preset=f"{name}-tiny")
        out.append((name, f"{name}-tiny (untrained)",
                    build_network(name, setup.net_config).eval()))
    return out


def time_network(name: str, model: torch.nn.Module, scene, repeats: int,
                 warmup: bool = True) -> dict:
    """Per-stage median / IQR (ms) of ``repeats`` predictions after one warm-up run
    (``warmup=False``: none; for MPNet's minutes-long runs).

    Returns:
        ``{"stages": {stage: {"median_ms", "iqr_ms"}}, "instances": int}``.
    """
    spec = network_spec(name)
    if warmup:
        spec.predict(model, scene)  # warm-up (spconv kernel setup, allocator)
    runs, n_inst = [], 0
    for r in range(repeats):
        p = spec.predict(model, scene)
        runs.append(p.timings)
        n_inst = len(p.instances)
        print(f"{name} run {r}: " + ", ".join(f"{k} {1000 * p.timings.get(k, 0):.0f}ms"
                                             for k in spec.stages), flush=True)
    stages = {k: {"median_ms": float(1000 * np.median([t.get(k, 0.0) for t in runs])),
                  "iqr_ms": float(1000 * np.subtract(*np.percentile(
                      [t.get(k, 0.0) for t in runs], [75, 25])))} for k in spec.stages}
    return {"stages": stages, "instances": n_inst}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", action="append", default=[], help="NAME=PATH (repeatable)")
    ap.add_argument("--model", action="append", default=[], choices=NETWORKS,
                    help="time an untrained NAME-tiny network (repeatable)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--scene", default="scene0000_00")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: fastest on a loaded shared machine)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the warm-up run")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    scene = load_scenes(args.data, [args.scene], require_labels=False)[0]
    results = {}
    for name, source, model in _models(args):
        res = time_network(name, model, scene, args.repeats, warmup=not args.no_warmup)
        res["source"] = source
        results[name] = res
    meta = {"scene": scene.name, "points": scene.num_points, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "loadavg_1min": os.getloadavg()[0],
            "repeats": args.repeats}
    print(f"\n{scene.name}: {scene.num_points} points, threads {meta['threads']}, "
          f"load avg {meta['loadavg_1min']:.1f}")
    for name, res in results.items():
        print(f"\n{name} ({res['source']}, {res['instances']} instances)")
        print(f"{'stage':<20}{'median ms':>12}{'IQR ms':>10}")
        for k, v in res["stages"].items():
            print(f"{k:<20}{v['median_ms']:>12.0f}{v['iqr_ms']:>10.0f}")
    if args.json:
        args.json.write_text(json.dumps({"networks": results, "meta": meta}, indent=2) + "\n")


if __name__ == "__main__":
    main()
