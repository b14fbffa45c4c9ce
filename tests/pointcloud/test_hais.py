"""HAIS: config presets and rescaling, losses on hand-made cases, model shapes, intra-instance
network, training-time proposals and inference output format (tiny synthetic scenes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from instgs.core.checks import InputError
from instgs.pointcloud.data import class_statistics
from instgs.pointcloud.evaluate import InstancePred
from instgs.pointcloud.hais import HAIS, STAGES, HAISConfig, Proposals, collate_scenes, predict
from instgs.pointcloud.hais import losses as L
from instgs.pointcloud.presets import hais_preset

from ._helpers import BOXES, synthetic_scene, tiny_cfg  # noqa: F401


# --- config ------------------------------------------------------------------------------------
def test_presets_and_rescaled_thresholds():
    p, t = hais_preset("paper"), hais_preset("tiny")
    assert (p.voxel_size, p.width, p.levels, p.block_reps) == (0.02, 32, 7, 2)
    assert (p.point_radius, p.alpha, p.score_threshold, p.min_points) == (0.03, 0.01, 0.09, 100)
    assert (t.width, t.levels, t.block_reps) == (16, 5, 1)
    assert hais_preset("tiny") == t
    with pytest.raises(InputError, match="paper"):
        hais_preset("huge")
    s = HAISConfig(point_fraction=0.25)
    assert s.scaled_min_points == 25
    assert s.scaled_numpoint_mean[2] == pytest.approx(3917 * 0.25)
    assert s.scaled_numpoint_mean[0] == -1
    # r_size = alpha * sqrt(S) is unchanged when S and alpha are both rescaled
    assert s.scaled_alpha * math.sqrt(0.25 * 4000) == pytest.approx(0.01 * math.sqrt(4000))
    with pytest.raises(InputError):
        HAISConfig(point_fraction=0.0)
    with pytest.raises(InputError):
        HAISConfig(class_numpoint_mean=(1.0,) * 3)


def test_class_statistics_override_keeps_table_for_missing_classes():
    sc = synthetic_scene()
    cfg = HAISConfig(point_fraction=0.5).with_class_statistics(class_statistics([sc]))
    assert cfg.class_numpoint_mean[4] == pytest.approx(500 / 0.5)  # stored at full density
    assert cfg.scaled_numpoint_mean[4] == pytest.approx(500)
    assert cfg.class_numpoint_mean[3] == 12056.0  # bed: no training instance -> code table
    assert cfg.class_numpoint_mean[0] == -1 and cfg.class_radius_mean[1] == -1
    assert 0 < cfg.class_radius_mean[6] < 1.0


# --- losses -----------------------------------------------------------------------------------
def test_semantic_loss_ignores_label():
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [9.0, -9.0]])
    sem = torch.tensor([0, 1, -100])
    ref = torch.nn.functional.cross_entropy(logits[:2], sem[:2])
    torch.testing.assert_close(L.semantic_loss(logits, sem), ref)
    z = L.semantic_loss(logits.requires_grad_(), torch.full((3,), -100))
    assert z.item() == 0 and z.requires_grad


def test_offset_loss_paper_weighting_and_zero_at_gt():
    coord = torch.tensor([[0.0, 0, 0], [2.0, 0, 0], [5.0, 5, 5], [0.0, 0, 0.5]])
    inst = torch.tensor([0, 0, -100, 1])
    centers = L.instance_centers(coord, inst)
    torch.testing.assert_close(centers[0], torch.tensor([1.0, 0, 0]))
    assert centers[2].abs().sum() == 0
    gt = centers - coord
    loss, _ = L.offset_loss(gt.clone(), coord, inst)
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    pred = torch.zeros(4, 3)  # |gt|_1 = 1, 1, -, 0 (point 3 alone: centre = itself)
    w, _ = L.offset_loss(pred, coord, inst, weighted=True)
    u, _ = L.offset_loss(pred, coord, inst, weighted=False)
    assert u.item() == pytest.approx(2 / 3, rel=1e-5)
    assert w.item() == pytest.approx(2 / 3, rel=1e-5)  # w = min(1, 1) = 1 here
    near = coord.clone()
    near[1, 0] = 0.4  # gt offsets +-0.2 -> weight 0.2
    w2, _ = L.offset_loss(torch.zeros(4, 3), near, inst, weighted=True)
    assert w2.item() == pytest.approx((0.2 * 0.2 * 2) / 3, rel=1e-5)
    d, logs = L.offset_loss(-gt, coord, inst, dir_weight=1.0)
    # cos = -1 for the two opposite offsets, 0 for the point whose gt offset is 0
    assert logs["offset_dir"] == pytest.approx(2 / 3, abs=1e-5)
    assert d.item() > 0


def test_proposal_iou_mask_targets_and_losses_by_hand():
    instance = torch.tensor([0, 0, 0, 0, 1, 1, -100, -100])
    # proposal 0 = points 0,1,2 (IoU with gt0 3/4); proposal 1 = 3,4,5,6 (gt1: 2/4, gt0: 1/7)
    pidx = torch.tensor([0, 1, 2, 3, 4, 5, 6])
    pid = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    iou = L.proposal_gt_iou(pidx, pid, 2, instance)
    torch.testing.assert_close(iou, torch.tensor([[0.75, 0.0], [1 / 7, 0.5]]))
    keep = torch.tensor([1, 1, 1, 0, 1, 1, 0], dtype=torch.bool)  # predicted mask
    iou_m = L.proposal_gt_iou(pidx, pid, 2, instance, keep)
    torch.testing.assert_close(iou_m[1], torch.tensor([0.0, 1.0]))
    tgt, wgt, best = L.mask_targets(pidx, pid, iou, instance)
    torch.testing.assert_close(tgt, torch.tensor([1.0, 1, 1, 0, 1, 1, 0]))
    torch.testing.assert_close(wgt, torch.tensor([1.0, 1, 1, 0, 0, 0, 0]))  # IoU 0.5 not > 0.5
    torch.testing.assert_close(best, torch.tensor([0.75, 0.5]))
    logits = torch.tensor([2.0, 2, 2, 9, 9, 9, 9])
    ref = torch.nn.functional.binary_cross_entropy_with_logits(logits[:3], tgt[:3])
    torch.testing.assert_close(L.mask_loss(logits, tgt, wgt), ref)
    s = torch.tensor([0.0, 1.0])
    ref_s = -(0.75 * math.log(0.5) + 0.25 * math.log(0.5)
              + 0.5 * math.log(torch.sigmoid(torch.tensor(1.0)).item())
              + 0.5 * math.log(1 - torch.sigmoid(torch.tensor(1.0)).item())) / 2
    assert L.score_loss(s, best).item() == pytest.approx(ref_s, rel=1e-5)
    assert L.mask_loss(logits, tgt, torch.zeros(7)).item() == 0.0


# --- model ------------------------------------------------------------------------------------
def test_collate_packs_scenes_and_unique_instances():
    a, b = synthetic_scene(0, name="a"), synthetic_scene(1, name="b")
    cfg = tiny_cfg()
    batch = collate_scenes([a, b], cfg)
    n = a.num_points
    assert batch.offsets.tolist() == [0, n, 2 * n]
    assert batch.feats.shape == (2 * n, 6)
    assert batch.instance[:n].max() == 3 and batch.instance[n:].min() == -100
    assert set(batch.instance[n:][batch.instance[n:] >= 0].tolist()) == {4, 5, 6, 7}
    assert batch.grid.batch_size == 2
    with pytest.raises(InputError):
        collate_scenes([], cfg)


def test_forward_shapes_and_loss_phases():
    sc = synthetic_scene()
    cfg = tiny_cfg(sc)
    model = HAIS(cfg)
    batch = collate_scenes([sc], cfg)
    out = model(batch)
    n = sc.num_points
    assert out["semantic_logits"].shape == (n, 20)
    assert out["offsets"].shape == (n, 3)
    assert out["point_feats"].shape == (n, 8)
    loss, logs = model.loss(batch, progress=0.0)
    assert "proposals" not in logs and set(logs) >= {"seg", "offset", "loss"}
    loss.backward()
    assert model.backbone.input_conv.weight.grad.abs().sum() > 0
    _, logs = model.loss(batch, progress=0.99)
    assert "proposals" in logs


def test_intra_instance_net_on_gt_proposals():
    sc = synthetic_scene()
    cfg = tiny_cfg(sc)
    model = HAIS(cfg)
    batch = collate_scenes([sc], cfg)
    pf = model.backbone_features(batch)
    clusters = [np.flatnonzero(sc.instance == k) for k in range(4)]
    props = Proposals.from_lists(clusters, [4, 6, 2, 4])
    assert props.num == 4 and props.sizes().tolist() == [500] * 4
    mask_logits, scores = model.intra(pf, batch.coord, props, mask_filter=True)
    assert mask_logits.shape == (2000,) and scores.shape == (4,)
    (mask_logits.sum() + scores.sum()).backward()
    assert model.intra.score_head.weight.grad is not None


def test_training_proposals_follow_shifted_points():
    """With GT offsets and GT labels, point aggregation recovers every box exactly."""
    sc = synthetic_scene()
    cfg = tiny_cfg(sc)
    model = HAIS(cfg)
    batch = collate_scenes([sc], cfg)
    gt_off = L.instance_centers(batch.coord, batch.instance) - batch.coord
    props = model.make_proposals(batch, batch.semantic, gt_off)
    assert props.num == 4
    got = sorted(sorted(batch.instance[props.point_idx[props.proposal_id == k]].unique().tolist())
                 for k in range(4))
    assert got == [[0], [1], [2], [3]]
    capped = model.make_proposals(batch, batch.semantic, gt_off, max_proposals=2)
    assert capped.num == 2


class _Fixed(torch.nn.Module):
    """A head that returns a fixed tensor (stands in for a perfectly trained head)."""

    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value


def test_predict_with_perfect_heads_recovers_boxes():
    from instgs.pointcloud.evaluate import scannet_instance_ap

    sc = synthetic_scene()
    cfg = tiny_cfg(sc)
    cfg.score_threshold = 0.0
    cfg.mask_logit_threshold = -1e9  # keep every proposal point (untrained mask head)
    model = HAIS(cfg)
    coord, inst = torch.as_tensor(sc.coord), torch.as_tensor(sc.instance)
    model.semantic_head = _Fixed(10.0 * torch.nn.functional.one_hot(
        torch.as_tensor(sc.semantic), 20).float())
    model.offset_head = _Fixed(L.instance_centers(coord, inst) - coord)
    pred = predict(model, sc)
    assert set(pred.timings) == set(STAGES) and pred.timings["total"] > 0
    assert pred.semantic.shape == (sc.num_points,) and pred.offsets.shape == (sc.num_points, 3)
    assert pred.num_clusters == 4 and len(pred.instances) == 4
    for p in pred.instances:
        assert isinstance(p, InstancePred)
        assert p.mask.dtype == bool and p.mask.shape == (sc.num_points,)
        k = np.unique(sc.instance[p.mask])
        assert len(k) == 1 and (sc.instance == k[0]).sum() == p.mask.sum()
        assert p.label == BOXES[k[0]][2]
        assert 0.0 < p.score < 1.0
    scores = [i.score for i in pred.instances]
    assert scores == sorted(scores, reverse=True)
    ap = scannet_instance_ap([pred.instances], [(sc.semantic, sc.instance)], min_region_size=20)
    assert ap["AP50"] == pytest.approx(1.0)


def test_predict_untrained_model_is_well_formed():
    sc = synthetic_scene()
    cfg = tiny_cfg(sc)
    model = HAIS(cfg)
    pred = predict(model, sc)
    for p in pred.instances:
        assert p.mask.shape == (sc.num_points,) and p.mask.sum() >= cfg.scaled_min_points
        assert p.label not in cfg.background_classes and 0 < p.score <= 1


@pytest.mark.parametrize("backprop", [True, False])
def test_intra_backprop_switch_controls_backbone_gradient(backprop):
    sc = synthetic_scene()
    cfg = tiny_cfg(sc)
    cfg.intra_backprop = backprop
    cfg.loss_weights = (0.0, 0.0, 1.0, 1.0)
    model = HAIS(cfg)
    coord, inst = torch.as_tensor(sc.coord), torch.as_tensor(sc.instance)
    model.semantic_head = _Fixed(10.0 * torch.nn.functional.one_hot(
        torch.as_tensor(sc.semantic), 20).float())
    model.offset_head = _Fixed(L.instance_centers(coord, inst) - coord)
    # progress between prepare_fraction and mask_iou_fraction: IoU of the raw proposals
    loss, logs = model.loss(collate_scenes([sc], cfg), progress=0.3)
    assert logs["proposals"] == 4 and logs["mean_iou"] == pytest.approx(1.0)
    loss.backward()
    g = model.backbone.input_conv.weight.grad
    assert (g is not None and g.abs().sum() > 0) == backprop
    assert model.intra.score_head.weight.grad.abs().sum() > 0
