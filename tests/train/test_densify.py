from __future__ import annotations

import torch

from instgs.model.scaffold import ScaffoldConfig, ScaffoldModel
from instgs.train.config import TrainConfig
from instgs.train.densify import (AnchorStats, DensifyConfig, grow_anchors, prune_anchors,
                                  update_anchor_params)
from instgs.train.optim import build_optimizer


def _model(n=64):
    torch.manual_seed(0)
    pts = torch.rand(n, 3)
    m = ScaffoldModel(ScaffoldConfig(voxel_size=0.05), pts, num_images=2)
    opt, _ = build_optimizer(m, TrainConfig(), extent=1.0)
    return m, opt


def _step(m, opt):
    loss = m.offsets.pow(2).sum() + m.anchor_feat.sum() + m.log_scaling.sum() + m.ins_feat.sum()
    loss.backward()
    opt.step()
    opt.zero_grad()


def test_update_anchor_params_keeps_adam_state_in_sync():
    m, opt = _model()
    _step(m, opt)
    n = m.num_anchors
    keep = torch.zeros(n, dtype=torch.bool)
    keep[::2] = True
    old_state = {name: opt.state[getattr(m, name)]["exp_avg"].clone()
                 for name in ("offsets", "anchor_feat")}
    extend = {"anchors": torch.zeros(3, 3), "offsets": torch.zeros(3, 5, 3),
              "anchor_feat": torch.ones(3, 32), "log_scaling": torch.zeros(3, 6),
              "ins_feat": torch.ones(3, 6)}
    update_anchor_params(m, opt, select=keep, extend=extend)
    k = int(keep.sum())
    assert m.num_anchors == k + 3
    for name in ("offsets", "anchor_feat"):
        p = getattr(m, name)
        st = opt.state[p]
        assert st["exp_avg"].shape == p.shape
        assert torch.equal(st["exp_avg"][:k], old_state[name][keep])
        assert (st["exp_avg"][k:] == 0).all()
        # the optimizer group holds the new parameter object
        assert any(g["params"][0] is p for g in opt.param_groups)
    _step(m, opt)  # a further step works with the new shapes


def test_prune_removes_transparent_seen_anchors():
    m, opt = _model()
    n = m.num_anchors
    stats = AnchorStats(n, 5)
    cfg = DensifyConfig()
    stats.anchor_denom[:] = 100
    stats.opacity_accum[:] = 10.0
    stats.opacity_accum[:5] = 0.0  # transparent
    removed = prune_anchors(m, opt, stats, cfg)
    assert removed == 5
    assert m.num_anchors == n - 5
    assert stats.opacity_accum.shape == (n - 5,)
    assert stats.grad_accum.shape == ((n - 5) * 5,)


def test_grow_adds_anchors_in_free_voxels_only():
    m, opt = _model(32)
    n = m.num_anchors
    with torch.no_grad():
        m.offsets.normal_(0, 3.0)  # children far from their anchors
    stats = AnchorStats(n, 5)
    stats.grad_accum[:] = 1.0
    stats.grad_denom[:] = 100
    cfg = DensifyConfig(update_depth=1)
    torch.manual_seed(1)
    added = grow_anchors(m, opt, stats, cfg)
    assert added > 0
    assert m.num_anchors == n + added
    size = m.voxel_size * cfg.update_init_factor
    new = m.anchors[n:]
    # new anchors sit on voxel centres not occupied by the old anchors
    q_new = torch.round(new / size).long()
    q_old = torch.round(m.anchors[:n] / size).long()
    assert torch.allclose(new, q_new.float() * size, atol=1e-5)
    old = {tuple(v) for v in q_old.tolist()}
    assert not any(tuple(v) in old for v in q_new.tolist())
    assert torch.allclose(m.log_scaling[n:], torch.log(torch.tensor(size)).expand(added, 6))
    assert stats.grad_accum.shape == ((n + added) * 5,)
    assert (stats.grad_accum[: n * 5] == 0).all()  # evaluated children reset
