"""SSEN, 3D-QueryIS and MPNet on the tiny synthetic scene: shapes, the method-specific
steps (background filter, RPG, score s_k, PointNet++ ops, blocks), training lowers the loss,
inference returns instances. Sizes keep every test at a few seconds on one thread."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from instgs.core.checks import InputError
from instgs.pointcloud.batch import collate_scenes
from instgs.pointcloud.networks import NETWORKS, build_network, network_spec

from ._helpers import mpnet_small, queryis_small, ssen_small, synthetic_scene


def _fit(model, batches, steps, lr=5e-3):
    opt = torch.optim.Adam(model.parameters(), lr)
    losses = []
    for s in range(steps):
        loss, logs = model.loss(batches(s), s / steps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_factory_builds_each_network_and_refuses_a_wrong_config():
    cfgs = {"ssen": ssen_small(), "queryis": queryis_small(), "mpnet": mpnet_small()}
    for name, cfg in cfgs.items():
        assert isinstance(build_network(name, cfg), network_spec(name).model_cls)
    with pytest.raises(InputError, match="SSENConfig"):
        build_network("ssen", queryis_small())
    with pytest.raises(InputError, match="choose one of"):
        build_network("pointnet", None)
    assert NETWORKS == ("hais", "ssen", "queryis", "mpnet")


# --- SSEN ------------------------------------------------------------------------------------
def test_ssen_embeds_only_the_foreground_and_learns():
    from instgs.pointcloud.ssen import SSEN, predict

    sc = synthetic_scene(n_box=200, n_floor=300)
    cfg = ssen_small()
    torch.manual_seed(0)
    model = SSEN(cfg)
    batch = collate_scenes([sc], cfg)
    fg = batch.semantic != 1  # the floor is background
    emb = model.embed(batch, fg)
    assert emb.point_idx.tolist() == torch.nonzero(fg)[:, 0].tolist()
    assert emb.point_emb.shape == (int(fg.sum()), 8) and emb.voxel_emb.shape[1] == 8
    losses = _fit(model, lambda s: batch, 25)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    p = predict(model, sc)
    assert list(p.timings) == list(network_spec("ssen").stages)
    assert p.semantic.shape == (sc.num_points,) and p.arrays["embedding"].shape == (1100, 8)
    for inst in p.instances:  # no instance on predicted background
        assert inst.label != 1 and inst.mask.sum() >= cfg.min_points


def test_ssen_rotation_tta_averages_probabilities():
    from instgs.pointcloud.ssen import SSEN, semantic_probabilities

    sc = synthetic_scene(n_box=100, n_floor=150)
    model = SSEN(ssen_small()).eval()
    with torch.no_grad():
        p1 = semantic_probabilities(model, sc, 1)
        p4 = semantic_probabilities(model, sc, 4)
    torch.testing.assert_close(p4.sum(1), torch.ones(sc.num_points))
    assert not torch.allclose(p1, p4)  # xyz is an input feature: rotations change it


# --- 3D-QueryIS -----------------------------------------------------------------------------
def test_query_score_is_class_confidence_times_mean_mask_probability():
    from instgs.pointcloud.queryis import query_scores

    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]]))  # G = 2 + no-object
    m = torch.tensor([[0.9, 0.7, 0.2], [0.4, 0.3, 0.1]])
    label, score, b = query_scores(logits, torch.logit(m), 0.5)
    assert label.tolist() == [0, 0]  # c_k over the real classes, even when no-object wins
    assert float(score[0]) == pytest.approx(0.6 * (0.9 + 0.7) / 2)
    assert float(score[1]) == 0.0 and not b[1].any()  # empty b_k
    assert b[0].tolist() == [True, True, False]


def test_queryis_gt_instances_keep_instance_classes_only():
    from instgs.pointcloud.queryis import gt_instances

    sem = torch.tensor([4, 4, 6, 6, 1, 1, -100, -100])
    ins = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    lab, masks = gt_instances(sem, ins, tuple(range(2, 20)))
    assert lab.tolist() == [2, 4] and masks.sum(1).tolist() == [2.0, 2.0]


def test_queryis_rpg_per_scene_and_training_matches_queries():
    from instgs.pointcloud.queryis import QueryIS, predict

    a, b = synthetic_scene(0, n_box=150, n_floor=200), synthetic_scene(1, n_box=150, n_floor=200)
    cfg = queryis_small()
    torch.manual_seed(0)
    model = QueryIS(cfg)
    batch = collate_scenes([a, b], cfg)
    out = model(batch)
    assert len(out.class_logits) == 3 and out.class_logits[0].shape == (2, 12, 19)
    assert [m.shape for m in out.mask_logits[-1]] == [(12, 800), (12, 800)]
    one = collate_scenes([a], cfg)
    losses = _fit(model, lambda s: one, 30, lr=3e-3)
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    p = predict(model, a)
    assert p.semantic is None and list(p.timings) == list(network_spec("queryis").stages)
    assert all(i.label in range(2, 20) for i in p.instances)


# --- MPNet ----------------------------------------------------------------------------------
def test_pointnet2_ops_on_hand_made_points():
    from instgs.pointcloud.pointnet2 import ball_query, farthest_point_sample, three_nn_interpolate

    xyz = torch.tensor([[[0.0, 0, 0], [0.1, 0, 0], [5, 0, 0], [0, 3, 0], [5, 3, 0]]])
    assert farthest_point_sample(xyz, 3)[0].tolist() == [0, 4, 2]
    idx = ball_query(0.5, 4, xyz, xyz[:, :1])
    assert idx[0, 0].tolist() == [0, 1, 0, 0]  # lowest indices, padded with the first
    feats = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    out = three_nn_interpolate(xyz[:, :1] + 1e-6, xyz, feats)
    assert float(out[0, 0, 0]) == pytest.approx(1.0, abs=1e-3)  # on a known point


def test_pointnet2_ops_match_reference_twins():
    from instgs.pointcloud import pointnet2 as fast
    from instgs.pointcloud.ops import _reference_methods as ref

    g = torch.Generator().manual_seed(3)
    xyz = torch.rand(2, 40, 3, generator=g, dtype=torch.float64)
    new = torch.rand(2, 7, 3, generator=g, dtype=torch.float64)
    feats = torch.rand(2, 5, 40, generator=g, dtype=torch.float64)
    assert torch.equal(fast.farthest_point_sample(xyz, 9), ref.farthest_point_sample(xyz, 9))
    for r in (0.05, 0.3, 2.0):
        assert torch.equal(fast.ball_query(r, 6, xyz, new), ref.ball_query(r, 6, xyz, new))
    torch.testing.assert_close(fast.three_nn_interpolate(new, xyz, feats),
                               ref.three_nn_interpolate(new, xyz, feats))


def _rows_of(scene, block):
    """Row in ``scene`` of every point of ``block`` (matched by coordinates)."""
    from scipy.spatial import cKDTree

    d, i = cKDTree(scene.coord).query(block.coord)
    assert d.max() < 1e-6
    return i


def test_mpnet_blocks_forward_and_learning():
    from instgs.pointcloud.data.transforms import RandomBlock
    from instgs.pointcloud.mpnet import MPNet, block_chunks, collate_blocks

    sc = synthetic_scene(n_box=200, n_floor=300)
    cfg = mpnet_small()
    torch.manual_seed(0)
    model = MPNet(cfg)
    rng = np.random.default_rng(0)
    crop = RandomBlock(cfg.block_size, cfg.block_points)
    blocks = [collate_blocks([crop(sc, rng) for _ in range(2)], cfg) for _ in range(4)]
    assert blocks[0].xyz.shape == (2, 256, 3)
    assert float(blocks[0].xyz[..., 2].min()) == 0.0  # block-local z
    # features: rgb, then the room-normalised xyz of the whole scene (ASIS 9-d input)
    assert blocks[0].feats.shape == (2, 256, 6)
    one = crop(sc, rng)
    room = (sc.coord - sc.coord.min(0)) / (sc.coord.max(0) - sc.coord.min(0))
    np.testing.assert_allclose(one.extra["room_xyz"], room[_rows_of(sc, one)], atol=1e-6)
    assert 0.0 <= float(blocks[0].feats[..., 3:].min()) and float(blocks[0].feats.max()) <= 1
    with pytest.raises(InputError, match="room coordinates"):
        bare = dataclasses.replace(one, extra={})
        collate_blocks([bare], cfg)
    # memory rows start at std sqrt(N_c): each class centroid starts at unit variance
    from instgs.pointcloud.mpnet.memory import class_centroids

    torch.manual_seed(1)
    wide = dataclasses.replace(cfg, memory_per_class=64)
    cents = class_centroids(MPNet(wide).memory.detach(), 64)
    assert 0.85 < float(cents.std()) < 1.15 and 6 < float(MPNet(wide).memory.std()) < 10
    plain = MPNet(dataclasses.replace(wide, memory_init_std=1.0)).memory.detach()
    assert 0.9 < float(plain.std()) < 1.1
    rgb_only = dataclasses.replace(cfg, room_coords=False)
    assert collate_blocks([bare], rgb_only).feats.shape == (1, 256, 3)
    assert MPNet(rgb_only)(blocks[0].xyz, blocks[0].feats[..., :3])["logits"].shape[-1] == 20
    out = model(blocks[0].xyz, blocks[0].feats)
    assert out["logits"].shape == (2, 256, 20) and out["embedding"].shape == (2, 256, 5)
    assert float(out["logits"].detach().norm(dim=-1).max()) <= cfg.logit_scale  # squashed
    losses = _fit(model, lambda s: blocks[s % 4], 24, lr=3e-3)
    assert np.mean(losses[-6:]) < np.mean(losses[:6])
    chunks = block_chunks(np.arange(600), 256, rng)
    assert len(chunks) == 3 and all(len(c) == 256 for c in chunks)
    assert set(np.concatenate(chunks).tolist()) == set(range(600))
    with pytest.raises(InputError, match="different sizes"):
        collate_blocks([crop(sc, rng), RandomBlock(1.5, 100)(sc, rng)], cfg)


class _PassOffsetNet(torch.nn.Module):
    """Stands in for a trained MPNet: class 3 everywhere; instance embedding 1.2 on the first
    axis for red points, 0 for the others, shifted by 1.2 in every other forward pass (the
    discriminative loss fixes distances within one pass only, not where a pass sits)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg, self.passes = cfg, 0

    def forward(self, xyz, feats):
        b, p, _ = xyz.shape
        logits = torch.full((b, p, self.cfg.num_classes), -5.0)
        logits[..., 3] = 5.0
        emb = torch.zeros(b, p, self.cfg.emb_dim)
        shift = 1.2 * ((self.passes + torch.arange(b)) % 2).float()
        emb[..., 0] = 1.2 * (feats[..., 0] > 0).float() + shift[:, None]
        self.passes += b
        return {"logits": logits, "embedding": emb}


def test_mpnet_groups_each_forward_pass_on_its_own():
    from instgs.pointcloud.data.scannet import PointScene
    from instgs.pointcloud.mpnet import predict

    rng = np.random.default_rng(0)
    # two touching boxes of one class, red and blue, 600 points each: one 1.5 m block, 5 passes
    pts = rng.uniform([0, 0, 0], [1.0, 0.5, 0.5], (1200, 3))
    pts[600:, 1] += 0.5
    col = np.zeros((1200, 3))
    col[:600, 0], col[600:, 2] = 0.8, 0.8
    inst = np.repeat([0, 1], 600)
    sc = PointScene("two", pts.astype(np.float32), col.astype(np.float32), np.full(1200, 3),
                    inst)
    ids = {}
    for unit in ("block", "chunk"):
        model = _PassOffsetNet(mpnet_small(group_unit=unit))
        ids[unit] = predict(model, sc).arrays["cluster"]
    def mixed(room):  # room ids holding points of both boxes
        return set(room[inst == 0]) & set(room[inst == 1]) - {-1}

    # one block: red points of odd passes and blue points of even passes share an embedding
    assert len(mixed(ids["block"])) == 1
    # one pass at a time: the two boxes never mix, and each stays one instance
    assert not mixed(ids["chunk"]) and (ids["chunk"] >= 0).all()
    assert all(len(np.unique(ids["chunk"][inst == k])) == 1 for k in (0, 1))
    with pytest.raises(InputError, match="group_unit"):
        mpnet_small(group_unit="room")


class _OtherObjectNet(torch.nn.Module):
    """Stands in for a trained MPNet with ``other_class``: red points class 3, blue points
    the "other object" class C; one instance embedding for all (mean shift alone would make
    one group of both)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg

    def forward(self, xyz, feats):
        b, p, _ = xyz.shape
        logits = torch.full((b, p, self.cfg.out_classes), -5.0)
        red = feats[..., 0] > 0
        logits[..., 3] = torch.where(red, 5.0, 0.0)
        logits[..., self.cfg.num_classes] = torch.where(red, -5.0, 5.0)
        return {"logits": logits, "embedding": torch.zeros(b, p, self.cfg.emb_dim)}


def test_mpnet_other_object_class_is_learned_and_gets_no_instances():
    from instgs.pointcloud.data.scannet import PointScene
    from instgs.pointcloud.data.transforms import RandomBlock
    from instgs.pointcloud.mpnet import MPNet, collate_blocks, predict, training_semantic

    cfg = mpnet_small(other_class=True)
    assert cfg.out_classes == 21 and cfg.no_instance_classes == (0, 1, 20)
    assert mpnet_small().out_classes == 20 and mpnet_small().no_instance_classes == (0, 1)
    # annotated points outside the label space (semantic -100, instance kept) -> class C;
    # unannotated points (both -100) stay ignored; labelled points keep their class
    sem, ins = np.array([3, -100, -100, 0]), np.array([0, 1, -100, -100])
    np.testing.assert_array_equal(training_semantic(sem, ins, cfg), [3, 20, -100, 0])
    np.testing.assert_array_equal(training_semantic(sem, ins, mpnet_small()), sem)
    sc = synthetic_scene(n_box=200, n_floor=300)
    sc.semantic[sc.instance == 1] = -100  # one box becomes a non-benchmark object
    crop = RandomBlock(cfg.block_size, cfg.block_points)
    batch = collate_blocks([crop(sc, np.random.default_rng(s)) for s in range(2)], cfg)
    assert (batch.semantic == 20).any() and int(batch.semantic.max()) == 20
    torch.manual_seed(0)
    loss, logs = MPNet(cfg).loss(batch, 0.0)
    assert MPNet(cfg)(batch.xyz, batch.feats)["logits"].shape[-1] == 21
    assert np.isfinite(float(loss)) and logs["ce"] > 0
    # inference: the other-object box joins nothing and is no instance
    rng = np.random.default_rng(0)
    pts = rng.uniform([0, 0, 0], [1.0, 0.5, 0.5], (1200, 3))
    pts[600:, 1] += 0.5
    col = np.zeros((1200, 3))
    col[:600, 0], col[600:, 2] = 0.8, 0.8
    two = PointScene("two", pts.astype(np.float32), col.astype(np.float32),
                     np.full(1200, 3), np.repeat([0, 1], 600))
    p = predict(_OtherObjectNet(cfg), two)
    assert len(p.instances) == 1 and p.instances[0].label == 3
    np.testing.assert_array_equal(p.instances[0].mask, np.arange(1200) < 600)
    assert (p.arrays["cluster"][600:] == -1).all() and p.semantic.max() < 20


def test_mpnet_predict_merges_blocks_into_room_instances():
    from instgs.pointcloud.mpnet import MPNet, predict

    sc = synthetic_scene(n_box=150, n_floor=200)
    model = MPNet(mpnet_small())
    p = predict(model, sc)
    assert list(p.timings) == list(network_spec("mpnet").stages)
    assert p.semantic.shape == (sc.num_points,) and p.arrays["cluster"].shape == (800,)
    for inst in p.instances:
        assert inst.mask.sum() >= 20 and 0 <= inst.score <= 1
