"""Training on CUDA (gsplat) and the later stages on the CPU. Skipped without a CUDA device.

These run in ``scripts/gpu_check.sh``; each one failed before the fix it guards (new anchor
rows built on the CPU; a run recorded with backend "gsplat" refused by ``instgs segment``).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from instgs.model.scaffold import ScaffoldConfig, ScaffoldModel
from instgs.train.config import ScheduleConfig, TrainConfig
from instgs.train.densify import AnchorStats, DensifyConfig, grow_anchors, prune_anchors
from instgs.train.optim import build_optimizer


@pytest.mark.gpu
def test_grow_and_prune_keep_every_tensor_on_cuda():
    dev = torch.device("cuda")
    m = ScaffoldModel(ScaffoldConfig(voxel_size=0.05), torch.rand(32, 3), num_images=2).to(dev)
    opt, _ = build_optimizer(m, TrainConfig(), extent=1.0)
    n = m.num_anchors
    with torch.no_grad():
        m.offsets.normal_(0, 3.0)
    stats = AnchorStats(n, 5, dev)
    stats.grad_accum[:] = 1.0
    stats.grad_denom[:] = 100
    added = grow_anchors(m, opt, stats, DensifyConfig(update_depth=2))
    assert added > 0 and m.num_anchors == n + added
    stats.anchor_denom[:] = 100
    stats.opacity_accum[:] = 10.0
    stats.opacity_accum[:3] = 0.0
    assert prune_anchors(m, opt, stats, DensifyConfig()) == 3
    for name, p in m.named_parameters():
        assert p.is_cuda, name
    loss = m.offsets.pow(2).sum() + m.anchor_feat.sum() + m.ins_feat.sum()
    loss.backward()
    opt.step()


@pytest.mark.gpu
@pytest.mark.parametrize("preset", ["default", "scannet"])
def test_train_on_cuda_then_segment_and_language_on_the_cpu(tmp_path, preset):
    from instgs import language, segment
    from instgs.data.synthetic import make_synthetic_scene
    from instgs.language.associate import LanguageConfig
    from instgs.run import load_instances, load_run
    from instgs.train import train, train_preset

    scene = make_synthetic_scene(tmp_path / "scene", num_views=8, num_test_views=2, width=64,
                                 height=48, num_points=3000, num_objects=2, progress=False)
    # 60 steps reach all three stages; densification from step 0, every 10 steps
    cfg = dataclasses.replace(
        train_preset(preset), data=scene, run_dir=tmp_path / "run", steps=60, progress=False,
        save_every=0, device="cuda", backend="gsplat",
        schedule=ScheduleConfig(semantic_start=10_000, joint_start=20_000),
        densify=dataclasses.replace(train_preset(preset).densify, start_stat=0, update_from=0,
                                    update_interval=10))
    run_dir = train(cfg)
    run = load_run(run_dir)  # on the CPU
    assert run.render_backend == "auto"
    segment.run(run_dir)
    language.run(run_dir, LanguageConfig(progress=False))
    assert load_instances(run_dir).num_instances >= 1
