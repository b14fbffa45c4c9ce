"""Evaluators against hand-computed toy cases (numbers derived in the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from instgs.core.checks import InputError
from instgs.pointcloud.evaluate import (
    InstancePred,
    s3dis_instance_metrics,
    scannet_instance_ap,
    semantic_metrics,
)

CHAIR, TABLE = 4, 6  # ScanNet20 indices


def _toy_scene():
    """50 points: chair A 0-9, chair B 10-19, void 20-29, table C 30-39, void 40-49."""
    sem = np.full(50, -100)
    ins = np.full(50, -100)
    sem[0:20] = CHAIR
    ins[0:10], ins[10:20] = 0, 1
    sem[30:40], ins[30:40] = TABLE, 2
    preds = [
        InstancePred(np.arange(0, 10), CHAIR, 0.9),    # exact A: TP
        InstancePred(np.arange(0, 9), CHAIR, 0.8),     # duplicate of A (IoU .9): FP
        InstancePred(np.arange(20, 30), CHAIR, 0.99),  # all void: ignored
        InstancePred(np.arange(30, 40), CHAIR, 0.95),  # on the table: FP
        InstancePred(np.r_[10:15, 40:45], CHAIR, 0.6),  # IoU(B)=1/3, half void
    ]
    return preds, (sem, ins)


def test_scannet_ap_hand_computed_toy():
    preds, gt = _toy_scene()
    r = scannet_instance_ap([preds], [gt], min_region_size=1)
    # IoU >= .5: entries T.9 F.8 F.95 F.6, 1 hard FN (B). PR points (score>=s):
    # .6:(p=1/4,r=1/2) .8:(1/3,1/2) .9:(1/2,1/2) .95:(0,0) + (1,0); step weights
    # (r[k-1]-r[k+1])/2 = 0,0,1/4,1/4,0 -> AP = 1/2*1/4 + 0*1/4 = 0.125.
    # IoU .25: P5 matches B -> T.9 T.6 F.8 F.95, no FN: p=(1/2,1/3,1/2,0,1),
    # r=(1,1/2,1/2,0,0), steps (1/4,1/4,1/4,1/4,0) -> AP25 = 1/3.
    chair = r["per_class"]["chair"]
    assert chair["AP"] == pytest.approx(0.125)
    assert chair["AP50"] == pytest.approx(0.125)
    assert chair["AP25"] == pytest.approx(1 / 3)
    assert r["per_class"]["table"]["AP50"] == 0.0  # GT but no table prediction
    assert np.isnan(r["per_class"]["bed"]["AP"])  # no GT: left out of the mean
    assert r["AP"] == pytest.approx(0.0625)
    assert r["AP50"] == pytest.approx(0.0625)
    assert r["AP25"] == pytest.approx(1 / 6)


def test_scannet_ap_perfect_and_index_or_mask_inputs_agree():
    _, (sem, ins) = _toy_scene()
    perfect = [InstancePred(ins == k, int(sem[ins == k][0]), 1.0) for k in range(3)]
    r = scannet_instance_ap([perfect], [(sem, ins)], min_region_size=1)
    assert r["AP"] == r["AP50"] == r["AP25"] == 1.0
    as_idx = [InstancePred(np.flatnonzero(p.mask), p.label, p.score) for p in perfect]
    assert scannet_instance_ap([as_idx], [(sem, ins)], min_region_size=1)["AP"] == 1.0


def test_scannet_ap_min_region_size_drops_small_gt_and_ignores_preds_on_them():
    _, (sem, ins) = _toy_scene()
    # chair instance of 3 points (< min_region_size 5) at 40-42
    sem[40:43], ins[40:43] = CHAIR, 3
    exact = [InstancePred(ins == k, int(sem[ins == k][0]), 1.0) for k in range(3)]
    on_small = InstancePred(np.r_[40:43, 20:23], CHAIR, 0.99)  # 3 small-GT + 3 void pts
    r = scannet_instance_ap([exact + [on_small]], [(sem, ins)], min_region_size=5)
    assert r["AP"] == 1.0  # the small GT is no FN, the prediction on it no FP
    too_small = InstancePred(np.arange(0, 4), CHAIR, 0.99)  # 4 pts < 5: dropped
    assert scannet_instance_ap([exact + [too_small]], [(sem, ins)],
                               min_region_size=5)["AP"] == 1.0


def test_scannet_ap_sums_over_scenes_and_checks_inputs():
    preds, gt = _toy_scene()
    r2 = scannet_instance_ap([preds, preds], [gt, gt], min_region_size=1)
    assert r2["per_class"]["chair"]["AP50"] == pytest.approx(0.125)  # same PR shape
    with pytest.raises(InputError):
        scannet_instance_ap([preds], [gt, gt])
    with pytest.raises(InputError):
        scannet_instance_ap([[InstancePred(np.zeros(7, bool), CHAIR, 1.0)]], [gt])


def test_s3dis_metrics_hand_computed():
    sem = np.array([0] * 30 + [1] * 10)
    ins = np.array([0] * 10 + [1] * 20 + [2] * 10)
    preds = [InstancePred(np.arange(0, 8), 0, 0.9),     # IoU(a) = 8/10
             InstancePred(np.arange(10, 20), 0, 0.8),   # IoU(b) = 10/20
             InstancePred(np.r_[30:35, 0:5], 1, 0.7)]   # IoU(c) = 5/15
    r = s3dis_instance_metrics([preds], [(sem, ins)], num_classes=2)
    # Cov0 = (.8+.5)/2 = .65; WCov0 = .8*10/30 + .5*20/30 = .6; Cov1 = WCov1 = 1/3
    assert r["mCov"] == pytest.approx((0.65 + 1 / 3) / 2)
    assert r["mWCov"] == pytest.approx((0.6 + 1 / 3) / 2)
    # class 0: 2 TP of 2 preds / 2 GT; class 1: 0 TP of 1 pred / 1 GT
    assert r["mPrec"] == pytest.approx(0.5)
    assert r["mRec"] == pytest.approx(0.5)


def test_semantic_metrics_hand_computed():
    gt = np.array([0, 0, 1, 1, 2, -100])
    pred = np.array([0, 1, 1, 1, 0, 2])
    r = semantic_metrics(pred, gt, 3)
    # IoU = 1/3, 2/3, 0; Acc = 1/2, 1, 0; 3 of 5 labelled points right
    assert r["mIoU"] == pytest.approx(1 / 3)
    assert r["mAcc"] == pytest.approx(0.5)
    assert r["oAcc"] == pytest.approx(0.6)
    assert r["confusion"].tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    r2 = semantic_metrics(np.array([-100, 1]), np.array([0, 1]), 2)  # ignored pred = wrong
    assert r2["oAcc"] == 0.5 and r2["per_class"]["0"]["Acc"] == 0.0
    with pytest.raises(InputError):
        semantic_metrics(pred[:3], gt, 3)
