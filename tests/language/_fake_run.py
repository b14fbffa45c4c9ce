"""A cheap, deterministic "trained run" for the language tests (no training).

Anchors = the scene's points (fixed-anchor protocol), one neural Gaussian per anchor with a
hand-set decoder: opacity ~0.99, isotropic scale ``scale_factor x`` the local point spacing,
identity rotation. The instance feature of every anchor is a fixed random 6-d unit vector of
its GT instance, and the GT instances are written as ``RUN/instances.npz`` (instance id =
GT id - 1; GT 0 = unannotated -> -1). Renders therefore reproduce the points, and the
association sees a perfect segmentation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from instgs.data import read_scene
from instgs.model.scaffold import ScaffoldConfig, ScaffoldModel
from instgs.run import current_source, save_instances, save_run_checkpoint, write_run_config
from instgs.train.config import TrainConfig


def make_fake_run(scene_dir: Path, run_dir: Path, *, fmt: str = "scannet",
                  scale_factor: float = 0.6, sam_level: str = "large", seed: int = 0,
                  max_images: int | None = None) -> Path:
    scene = read_scene(scene_dir, format=fmt, max_images=max_images)
    pts = scene.points
    gt = np.load(Path(scene_dir) / "gt" / "instance_per_vertex.npy").astype(np.int64)
    assert len(gt) == len(pts)
    cfg = ScaffoldConfig(n_offsets=1, appearance_dim=0, ins_feat_dim=6)
    model = ScaffoldModel(cfg, pts, num_images=len(scene.train_ids), fixed_anchors=True,
                          colors=scene.points_rgb)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.mlp_opacity[2].weight.zero_()
        model.mlp_opacity[2].bias.fill_(3.0)
        model.mlp_cov[2].weight.zero_()
        bias = torch.zeros(7)
        bias[3] = 1.0  # quaternion (1, 0, 0, 0); sigmoid(0) = 0.5
        model.mlp_cov[2].bias.copy_(bias)
        model.log_scaling[:, 3:] += float(np.log(2 * scale_factor))
        table = torch.nn.functional.normalize(torch.randn(int(gt.max()) + 1, 6, generator=g),
                                              dim=1)
        model.ins_feat.copy_(table[torch.as_tensor(gt)])
    run_dir = Path(run_dir)
    tcfg = TrainConfig(data=Path(scene_dir), format=fmt, run_dir=run_dir, sam_level=sam_level,
                       backend="auto", max_images=max_images)
    write_run_config(run_dir, tcfg)
    ckpt = {"step": 0, "model": model.state_for_checkpoint(), "anchors": model.anchors.detach(),
            "ins_feat": model.ins_feat.detach(), "n_offsets": 1, "fixed_anchors": True}
    save_run_checkpoint(run_dir, ckpt, tcfg)
    save_instances(run_dir, gt - 1, meta={"labels": "GT (test fixture)",
                                          "source": current_source(run_dir)})
    return run_dir
