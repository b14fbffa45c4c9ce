"""Method-specific losses and matching on hand-made inputs, against their readable twins:
the discriminative losses (SSEN, MPNet), 3D-QueryIS's costs, Hungarian matching and Dice,
MPNet's memory readers and regularisers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instgs.core.checks import InputError
from instgs.pointcloud.losses import dice_loss, discriminative_loss
from instgs.pointcloud.mpnet import memory as mem
from instgs.pointcloud.ops import _reference_methods as ref
from instgs.pointcloud.ops.matching import hungarian_match, match_costs

SSEN = dict(delta_pull=0.1, delta_push=0.5, hinge_power=1, size_power=1.0, push_weight=10.0)
MPNET = dict(delta_pull=0.5, delta_push=1.5, hinge_power=2, size_power=0.0)


def _clusters(centres, radius, n=20, seed=0):
    """Points on spheres of ``radius`` around ``centres`` (exact distances to the mean)."""
    rng = np.random.default_rng(seed)
    emb, ins = [], []
    for k, c in enumerate(centres):
        d = rng.normal(size=(n // 2, len(c)))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        emb += [np.asarray(c) + radius * d, np.asarray(c) - radius * d]  # mean = c exactly
        ins += [np.full(n, k)]
    return torch.tensor(np.concatenate(emb)), torch.tensor(np.concatenate(ins))


@pytest.mark.parametrize("kw", [SSEN, MPNET])
def test_discriminative_loss_is_zero_when_the_margins_hold(kw):
    # every point within delta_pull of its mean, means at least 2 delta_push apart
    r = 0.9 * kw["delta_pull"]
    gap = 2 * kw["delta_push"] + 0.01
    emb, ins = _clusters([(0, 0, 0), (gap, 0, 0), (0, gap, 0)], r)
    loss, logs = discriminative_loss(emb, ins, **kw)
    assert float(loss) == pytest.approx(0.0, abs=1e-12)
    assert logs["instances"] == 3


@pytest.mark.parametrize("kw", [SSEN, MPNET])
def test_discriminative_loss_each_margin_violation_counts(kw):
    r = kw["delta_pull"] + 0.2  # every point 0.2 beyond the pull margin
    gap = 2 * kw["delta_push"] - 0.3  # means 0.3 closer than the push margin
    emb, ins = _clusters([(0, 0), (gap, 0)], r)
    loss, logs = discriminative_loss(emb, ins, **kw)
    h = kw["hinge_power"]
    assert logs["pull"] == pytest.approx(0.2 ** h, rel=1e-9)
    assert logs["push"] == pytest.approx(0.3 ** h, rel=1e-9)
    assert float(loss) == pytest.approx(0.2 ** h + kw.get("push_weight", 1.0) * 0.3 ** h)


def test_discriminative_size_power_weights_points_or_instances():
    # instance 0: 30 points 0.2 beyond the margin; instance 1: 10 points exactly on it
    emb_a, _ = _clusters([(0.0, 0.0)], 0.3, n=30)
    emb_b, _ = _clusters([(9.0, 0.0)], 0.1, n=10)
    emb = torch.cat([emb_a, emb_b])
    ins = torch.tensor([0] * 30 + [1] * 10)
    per_point, _ = discriminative_loss(emb, ins, delta_pull=0.1, delta_push=0.5, size_power=1)
    per_inst, _ = discriminative_loss(emb, ins, delta_pull=0.1, delta_push=0.5, size_power=0)
    assert float(per_point) == pytest.approx(0.2 * 30 / 40)
    assert float(per_inst) == pytest.approx(0.2 / 2)


@pytest.mark.parametrize("kw", [SSEN, MPNET])
def test_discriminative_loss_matches_reference_twin(kw):
    rng = np.random.default_rng(1)
    emb = torch.tensor(rng.normal(size=(60, 4)), requires_grad=True)
    ins = torch.tensor(rng.integers(-1, 4, 60))
    batch = torch.tensor(np.repeat([0, 1, 2], 20))
    ins[batch == 2] = -100  # a scene without instances is skipped
    loss, logs = discriminative_loss(emb, ins, batch, reg_weight=0.01, **kw)
    want, wlogs = ref.discriminative_loss(emb.detach(), ins, batch, reg_weight=0.01, **kw)
    assert float(loss.detach()) == pytest.approx(float(want), rel=1e-9)
    for k in ("pull", "push", "reg", "instances"):
        assert logs[k] == pytest.approx(wlogs[k], rel=1e-9)
    loss.backward()
    assert torch.isfinite(emb.grad).all()
    zero, _ = discriminative_loss(emb, torch.full((60,), -100), **kw)
    assert float(zero.detach()) == 0.0


def test_match_costs_and_dice_match_reference_twin():
    rng = np.random.default_rng(2)
    logits = torch.tensor(rng.normal(size=(5, 4)))
    masks = torch.tensor(rng.normal(size=(5, 30)) * 3)
    gt_lab = torch.tensor([0, 2, 1])
    gt = torch.tensor(rng.random((3, 30)) > 0.5).float()
    fast = match_costs(logits, masks, gt_lab, gt)
    slow = ref.match_costs(logits, masks, gt_lab, gt)
    for k in ("ce", "bce", "dice"):
        np.testing.assert_allclose(getattr(fast, k).double(), getattr(slow, k), rtol=1e-5,
                                   atol=1e-6)
    np.testing.assert_allclose(dice_loss(masks[:3], gt).double(),
                               ref.dice_loss(masks[:3], gt), rtol=1e-6)
    with pytest.raises(InputError, match="GT labels"):
        match_costs(logits, masks, torch.tensor([3]), gt[:1])  # G = 3 real classes


def test_dice_is_zero_for_a_perfect_mask():
    gt = torch.tensor([[1.0, 1, 0, 0]])
    assert float(dice_loss(torch.tensor([[50.0, 50, -50, -50]]), gt)[0]) == pytest.approx(0.0,
                                                                                         abs=1e-6)


def test_hungarian_on_a_known_cost_matrix():
    cost = np.array([[4.0, 1.0, 3.0],
                     [2.0, 0.0, 5.0],
                     [3.0, 2.0, 2.0]])
    rows, cols = hungarian_match(cost)
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [1, 0, 2]  # 1 + 2 + 2 = 5
    r, c = ref.hungarian_match(cost)
    assert (r.tolist(), c.tolist()) == (rows.tolist(), cols.tolist())


@pytest.mark.parametrize("shape", [(6, 3), (3, 5), (4, 4)])
def test_hungarian_matches_brute_force(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        cost = rng.random(shape)
        rows, cols = hungarian_match(torch.tensor(cost))
        r, c = ref.hungarian_match(cost)
        assert cost[rows, cols].sum() == pytest.approx(cost[r, c].sum())
        assert len(rows) == min(shape) and len(set(cols.tolist())) == len(cols)
    assert len(hungarian_match(np.zeros((4, 0)))[0]) == 0
    with pytest.raises(InputError, match="NaN"):
        hungarian_match(np.array([[np.nan]]))


def test_memory_readers_weights_sum_to_one_and_centroids_are_block_means():
    torch.manual_seed(0)
    C, Nc, D = 4, 5, 8
    M = torch.randn(C * Nc, D)
    cents = mem.class_centroids(M, Nc)
    for i in range(C):
        torch.testing.assert_close(cents[i], M[i * Nc:(i + 1) * Nc].mean(0))
    q = torch.randn(30, D)
    for slots in (M, cents):
        for T in (1.0, 0.1):
            out, w = mem.memory_read(q, slots, T)
            torch.testing.assert_close(w.sum(1), torch.ones(30, dtype=w.dtype))
            assert (w >= 0).all()
            torch.testing.assert_close(out, w @ slots)
    # a query equal to a slot direction gets that slot's largest weight
    _, w = mem.memory_read(M[3:4] * 7.0, M, 0.05)
    assert int(w.argmax()) == 3
    with pytest.raises(InputError):
        mem.class_centroids(M[:-1], Nc)


def test_squash_norm_below_one_and_direction_kept():
    v = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.1, 0.0]])
    s = mem.squash(v)
    assert float(s[0].norm()) == pytest.approx(25 / 26)
    torch.testing.assert_close(s[0] / s[0].norm(), v[0] / 5)
    assert float(s[1].norm()) == 0.0 and float(s[2, 0]) == pytest.approx(0.01 / 1.01)


def test_mpnet_regularisers_match_reference_twins():
    rng = np.random.default_rng(3)
    feat = torch.tensor(rng.normal(size=(25, 6)))
    cents = torch.tensor(rng.normal(size=(4, 6)))
    labels = torch.tensor(rng.integers(-1, 4, 25))
    labels[labels < 0] = -100
    fast = mem.semantic_regularizer(feat, cents, labels, margin=5.0)
    assert float(fast) == pytest.approx(float(ref.semantic_regularizer(feat, cents, labels)),
                                        rel=1e-9)
    pred, coord = torch.tensor(rng.normal(size=(25, 3))), torch.tensor(rng.normal(size=(25, 3)))
    ins = torch.tensor(rng.integers(-1, 3, 25))
    blk = torch.tensor(rng.integers(0, 2, 25))
    assert float(mem.instance_regularizer(pred, coord, ins, blk)) == pytest.approx(
        float(ref.instance_regularizer(pred, coord, ins, blk)), rel=1e-9)
    # perfect centroids -> 0; far-apart own centroid -> the margin is met, 0 as well
    cen_pred = torch.zeros(4, 3)
    xyz = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 2, 0], [0, -2, 0]])
    assert float(mem.instance_regularizer(cen_pred, xyz, torch.tensor([0, 0, 1, 1]))) == 0.0
    assert float(mem.semantic_regularizer(cents[:1], cents, torch.tensor([0]), 0.1)) == 0.0
