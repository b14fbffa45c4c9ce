#!/usr/bin/env python
"""Which part of MPNet limits its semantic fit: train on a few fixed blocks and print CE.

Cuts ``--batches`` x 8 random 1 m blocks from one ScanNet scan once, then trains a fresh
``mpnet-tiny`` MPNet on them in turn for ``--steps`` steps (Adam, constant learning rate)
and prints the mean cross-entropy and the last L_dis every 25 steps. Variants:

* ``base``: the preset as it is (memory rows at std sqrt(N_c));
* ``plain-memory``: memory rows drawn from ``randn`` (``memory_init_std 1``);
* ``plain-memory-lr1e-2``: the same at the paper's learning rate;
* ``no-memory``: plain memory, and both readers return their query (features straight to
  the heads);
* ``rgb-only``: no room-normalised xyz in the input.

docs/pointcloud-networks.md ("Must show 1") has the numbers. Needs
``../shared/data/scannet-scene0000-mmdet3d``.

Usage:
    python scripts/mpnet_memory_ablation.py VARIANT [--steps 150] [--scene scene0000_00]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "scannet-scene0000-mmdet3d"
VARIANTS = ("base", "plain-memory", "plain-memory-lr1e-2", "no-memory", "rgb-only")


def main() -> None:
    from instgs.pointcloud.data.transforms import RandomBlock
    from instgs.pointcloud.mpnet import MPNet, collate_blocks
    from instgs.pointcloud.mpnet import memory as mem
    from instgs.pointcloud.presets import load_setup
    from instgs.pointcloud.runner import load_scenes

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("variant", choices=VARIANTS)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batches", type=int, default=3, help="fixed batches of 8 blocks")
    ap.add_argument("--scene", default="scene0000_00")
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()

    torch.set_num_threads(1)
    cfg = load_setup("mpnet-tiny").net_config
    if args.variant in ("plain-memory", "plain-memory-lr1e-2", "no-memory"):
        cfg = dataclasses.replace(cfg, memory_init_std=1.0)
    if args.variant == "rgb-only":
        cfg = dataclasses.replace(cfg, room_coords=False)
    scene = load_scenes(args.data, [args.scene])[0]
    rng = np.random.default_rng(0)
    crop = RandomBlock(cfg.block_size, cfg.block_points)
    batches = [collate_blocks([crop(scene, rng) for _ in range(8)], cfg)
               for _ in range(args.batches)]
    torch.manual_seed(0)
    model = MPNet(cfg)
    if args.variant == "no-memory":
        mem.memory_read = lambda query, slots, temperature=1.0: (query, None)
    lr = 1e-2 if args.variant.endswith("lr1e-2") else 2e-3
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    t0, ces = time.perf_counter(), []
    for step in range(args.steps):
        loss, logs = model.loss(batches[step % len(batches)], step / args.steps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ces.append(logs["ce"])
        if (step + 1) % 25 == 0:
            print(f"{args.variant} step {step + 1}: CE {np.mean(ces[-25:]):.3f} "
                  f"L_dis {logs['dis']:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
