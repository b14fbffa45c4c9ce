from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _synthetic import make_synthetic_scene  # tests/segment helper

from instgs.core.checks import InputError, ShapeError
from instgs.eval.scannet import instance_miou
from instgs.run import expand_to_gaussians, load_instances, save_instances
from instgs.segment import (SegmentConfig, assign_to_seeds, fps, merge_clusters,
                            positional_encoding, reassign_small_clusters, relabel_by_size,
                            segment_anchors, voxel_adjacency)
from instgs.segment import _reference as ref


def _grid(n=5):
    g = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float32)] * 2,
                                   indexing="ij"), -1)
    return g.reshape(-1, 2)


# ---------------------------------------------------------------- FPS
def test_fps_on_grid_picks_corners_first():
    pts = _grid(5)                       # 0..4 x 0..4, index = 5 * x + y
    idx = fps(pts, 4).tolist()
    assert idx[0] == 0                   # start
    assert idx[1] == 24                  # the opposite corner (4, 4)
    assert set(idx[2:]) == {4, 20}       # then the two remaining corners
    assert idx == ref.fps_ref(pts.numpy(), 4)


@pytest.mark.parametrize("seed", range(3))
def test_fps_matches_reference_and_is_distinct(seed):
    pts = torch.from_numpy(np.random.default_rng(seed).normal(size=(200, 5)).astype(np.float32))
    idx = fps(pts, 40, start=seed)
    assert idx.tolist() == ref.fps_ref(pts.numpy(), 40, start=seed)
    assert len(set(idx.tolist())) == 40


def test_fps_spread_and_edge_cases():
    pts = _grid(10)
    idx = fps(pts, 9)
    chosen = pts[idx]
    # 9 FPS seeds on a 10x10 grid are pairwise at least ~4 apart (FPS is a 2-approximation)
    d = torch.cdist(chosen, chosen) + 1e9 * torch.eye(9)
    assert d.min() >= 3.0
    assert sorted(fps(pts[:3], 10).tolist()) == [0, 1, 2]   # k >= N: all points
    with pytest.raises(InputError):
        fps(pts, 0)
    with pytest.raises(ShapeError):
        fps(pts[:, 0], 3)


# ---------------------------------------------------------------- positional encoding
def test_positional_encoding_layout_and_values():
    xyz = torch.tensor([[0.0, 0.0, 0.0], [4.0, 2.0, 1.0]])   # box 4 x 2 x 1, scale 4
    pe = positional_encoding(xyz, num_freqs=2, dims=(0, 1))
    assert pe.shape == (2, 8)
    # point 0: u = (-1, -0.5); columns (x: l0 sin,cos, l1 sin,cos, y: ...)
    u = torch.tensor([-1.0, -0.5])
    want = torch.stack([torch.sin(torch.pi * u[0]), torch.cos(torch.pi * u[0]),
                        torch.sin(2 * torch.pi * u[0]), torch.cos(2 * torch.pi * u[0]),
                        torch.sin(torch.pi * u[1]), torch.cos(torch.pi * u[1]),
                        torch.sin(2 * torch.pi * u[1]), torch.cos(2 * torch.pi * u[1])])
    assert torch.allclose(pe[0], want, atol=1e-6)
    assert positional_encoding(xyz, 8, (0, 1, 2)).shape == (2, 48)
    with pytest.raises(InputError):
        positional_encoding(xyz, 8, (3,))


# ---------------------------------------------------------------- assignment
def test_assign_nearest_matches_reference_and_kmeans_improves():
    rng = np.random.default_rng(0)
    pts = torch.from_numpy(rng.normal(size=(500, 3)).astype(np.float32))
    seeds = fps(pts, 12)
    near = assign_to_seeds(pts, seeds, "nearest", chunk=64)
    assert near.tolist() == ref.nearest_seed_ref(pts.numpy(), seeds.tolist())
    km = assign_to_seeds(pts, seeds, "kmeans", iters=20)

    def inertia(lab):
        c = torch.stack([pts[lab == k].mean(0) for k in range(12) if (lab == k).any()])
        ks = [k for k in range(12) if (lab == k).any()]
        remap = {k: i for i, k in enumerate(ks)}
        return float(((pts - c[torch.tensor([remap[int(k)] for k in lab])]) ** 2).sum())

    assert inertia(km) <= inertia(near) + 1e-4
    assert int(km.min()) >= 0 and int(km.max()) < 12
    with pytest.raises(InputError, match="unknown assignment"):
        assign_to_seeds(pts, seeds, "spectral")


# ---------------------------------------------------------------- voxel adjacency
def test_voxel_adjacency_face_vs_cube():
    xyz = np.array([[0.05, 0.05, 0.05], [0.15, 0.15, 0.05], [0.05, 0.15, 0.05],
                    [0.55, 0.05, 0.05]])
    # cluster 0 at voxel (0,0,0); 1 at (1,1,0) (diagonal to 0); 2 at (0,1,0); 3 far away
    lab = np.array([0, 1, 2, 3])
    a6 = voxel_adjacency(xyz, lab, 0.1).toarray()
    a26 = voxel_adjacency(xyz, lab, 0.1, connectivity=26).toarray()
    assert not a6[0, 1] and a26[0, 1]
    assert a6[0, 2] and a6[1, 2] and not a6[:, 3].any()
    assert (a6 == a6.T).all() and not a6.diagonal().any()


@pytest.mark.parametrize("conn", [6, 26])
@pytest.mark.parametrize("seed", range(3))
def test_voxel_adjacency_matches_reference(seed, conn):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-0.5, 0.5, size=(150, 3))
    lab = rng.integers(-1, 12, 150)
    fast = voxel_adjacency(xyz, lab, 0.17, num_clusters=12, connectivity=conn)
    assert sp.issparse(fast)
    assert (fast.toarray() == ref.voxel_adjacency_ref(xyz, lab, 0.17, 12, conn)).all()


# ---------------------------------------------------------------- merge (union-find)
def test_merge_clusters_toy_graph():
    # chain 0-1-2 with equal features, 3 same feature but not adjacent, 4 adjacent but far
    feats = np.array([[1, 0], [1, 0], [1, 0.05], [1, 0], [0, 1]], float)
    adj = np.zeros((5, 5), bool)
    for i, j in [(0, 1), (1, 2), (2, 4)]:
        adj[i, j] = adj[j, i] = True
    sizes = np.array([20, 20, 20, 20, 20])
    comp = merge_clusters(feats, sp.csr_matrix(adj), sizes)
    assert comp[0] == comp[1] == comp[2] and len({comp[0], comp[3], comp[4]}) == 3
    assert comp.tolist() == ref.merge_clusters_ref(feats, adj, sizes, 0.15, 10)
    # a small sub-object never gets edges: the chain breaks at node 1
    small = merge_clusters(feats, adj, np.array([20, 5, 20, 20, 20]))
    assert len(set(small.tolist())) == 5


@pytest.mark.parametrize("seed", range(3))
def test_merge_clusters_matches_reference(seed):
    rng = np.random.default_rng(seed)
    k = 40
    feats = rng.normal(size=(k, 3)) * 0.1 + np.eye(3)[rng.integers(0, 3, k)]
    adj = rng.random((k, k)) < 0.1
    adj = adj | adj.T
    sizes = rng.integers(1, 30, k)
    got = merge_clusters(feats, adj, sizes, 0.15, 10)
    assert got.tolist() == ref.merge_clusters_ref(feats, adj, sizes, 0.15, 10)


def test_reassign_and_relabel():
    xyz = np.array([[0, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [5, 0, 0], [5.1, 0, 0], [0.3, 0, 0]])
    lab = np.array([0, 0, 0, 1, 1, 7])           # cluster 7 (1 point) is too small
    out = reassign_small_clusters(xyz, lab, min_size=2)
    assert out.tolist() == [0, 0, 0, 1, 1, 0]
    mask = np.array([1, 1, 1, 0, 1, 1], bool)     # invalid points do not count in sizes
    out = reassign_small_clusters(xyz, np.array([0, 0, 0, 1, 1, -1]), min_size=1,
                                  valid_mask=mask)
    assert out.tolist() == [0, 0, 0, 1, 1, 0]
    out = reassign_small_clusters(xyz, np.array([0, 0, 0, 1, 1, -1]), min_size=2,
                                  valid_mask=mask)
    assert out.tolist() == [0, 0, 0, 0, 0, 0]
    new, k = relabel_by_size(np.array([9, 9, 3, 3, 3, -1, 4]))
    assert k == 3 and new.tolist() == [1, 1, 0, 0, 0, -1, 2]


# ---------------------------------------------------------------- the whole pipeline
@pytest.fixture(scope="module")
def scene():
    return make_synthetic_scene(num_points=12_000, num_boxes=8, seed=1)


@pytest.mark.parametrize("cfg", [SegmentConfig(num_seeds=200),
                                 SegmentConfig(num_seeds=200, pe_dims="xyz", assign="kmeans",
                                               kmeans_iters=3)],
                         ids=["released", "xyz-kmeans"])
def test_segment_recovers_synthetic_instances(scene, cfg):
    res = segment_anchors(scene.xyz, scene.ins_feat, cfg)
    m = instance_miou(res.anchor_labels, scene.labels + 1)
    assert m.miou >= 0.9, (m.miou, res.num_instances)
    assert res.anchor_labels.dtype == np.int64 and res.anchor_labels.min() == 0
    assert res.cluster_feats.shape == (res.num_instances, 6)
    assert res.num_subobjects == 200 and {"seed", "assign", "merge", "total"} <= set(res.timings)
    sizes = np.bincount(res.anchor_labels)
    assert (np.diff(sizes) <= 0).all() and sizes.min() >= cfg.min_cluster_size_valid


def test_seed_count_caps_seeds_on_sparse_anchors():
    from instgs.segment.pipeline import seed_count

    cfg = SegmentConfig()                                   # 1000 seeds, 25 anchors per seed
    assert seed_count(cfg, 81_369) == 1000 and seed_count(cfg, 28_610) == 1000
    assert seed_count(cfg, 3850) == 154 and seed_count(cfg, 10) == 1
    assert seed_count(SegmentConfig(anchors_per_seed=0), 3850) == 1000      # released


def test_sparse_anchors_still_merge_into_objects():
    # 5k anchors: 1000 seeds leave 5 anchors per sub-object, under the 10 that merge edges
    # need, so the objects stay in pieces; the cap (200 seeds) lets them merge
    s = make_synthetic_scene(num_points=5000, num_boxes=4, seed=2)
    released = segment_anchors(s.xyz, s.ins_feat, SegmentConfig(anchors_per_seed=0))
    capped = segment_anchors(s.xyz, s.ins_feat, SegmentConfig())
    assert released.num_subobjects == 1000 and capped.num_subobjects == 200
    m_rel = instance_miou(released.anchor_labels, s.labels + 1).miou
    m_cap = instance_miou(capped.anchor_labels, s.labels + 1).miou
    assert m_cap >= 0.88 and m_cap > m_rel + 0.2, (m_cap, m_rel)
    assert abs(capped.num_instances - s.num_instances) < abs(released.num_instances
                                                              - s.num_instances)


def test_segment_hdbscan_baseline():
    s = make_synthetic_scene(num_points=3000, num_boxes=4, seed=2)
    # the smallest box has 18 points, so min_cluster_size must stay below that
    cfg = SegmentConfig(method="hdbscan", hdbscan_min_cluster_size=10, hdbscan_min_samples=5)
    res = segment_anchors(s.xyz, s.ins_feat, cfg)
    assert instance_miou(res.anchor_labels, s.labels + 1).miou >= 0.9
    assert (res.anchor_labels >= 0).all()


def test_segment_valid_mask_and_refine_callback(scene):
    valid = np.ones(len(scene.xyz), bool)
    valid[::7] = False
    calls = []

    def refine(sub_labels, feats):
        calls.append((sub_labels.shape, feats.shape, int((sub_labels < 0).sum())))
        return np.tile([1.0, 0, 0, 0, 0, 0], (sub_labels.max() + 1, 1))  # all identical

    res = segment_anchors(scene.xyz, scene.ins_feat, SegmentConfig(num_seeds=100), valid,
                          refine_fn=refine)
    assert calls == [((len(valid),), (len(valid), 6), int((~valid).sum()))]
    # identical features: every touching sub-object merges; the room is one connected piece
    assert res.num_instances <= 3
    assert (res.anchor_labels >= 0).all()       # invalid anchors were given a label


def test_appearance_only_is_a_clear_error(scene):
    with pytest.raises(InputError, match="appearance-only"):
        segment_anchors(scene.xyz, None)
    with pytest.raises(InputError, match="same instance feature"):
        segment_anchors(scene.xyz, np.ones((len(scene.xyz), 6), np.float32))
    bad = scene.ins_feat.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        segment_anchors(scene.xyz, bad)
    with pytest.raises(InputError, match=r"\[N, F\]"):
        segment_anchors(scene.xyz, scene.ins_feat[:10])


# ---------------------------------------------------------------- artifact + CLI
def test_save_load_instances(tmp_path):
    a = np.array([0, 1, 1, 2])
    path = save_instances(tmp_path, a, expand_to_gaussians(a, 3), np.eye(3, 4), {"x": 1})
    assert path.name == "instances.npz"
    got = load_instances(tmp_path)
    assert got.anchor_labels.tolist() == a.tolist() and got.num_instances == 3
    assert got.gaussian_labels.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2]
    assert got.meta == {"x": 1} and got.cluster_feats.shape == (3, 4)
    with pytest.raises(InputError, match="cluster_feats"):
        save_instances(tmp_path, a, cluster_feats=np.eye(2))
    with pytest.raises(InputError, match="instgs segment"):
        load_instances(tmp_path / "nope")


def test_segment_command(tmp_path, capsys):
    from instgs.cli import main
    from instgs.segment.cli import SegmentCommand

    s = make_synthetic_scene(num_points=4000, num_boxes=3, seed=3)
    (tmp_path / "ckpt").mkdir()
    torch.save({"anchors": torch.from_numpy(s.xyz), "ins_feat": torch.from_numpy(s.ins_feat),
                "n_offsets": 5, "anchor_valid": torch.ones(len(s.xyz), dtype=torch.bool)},
               tmp_path / "ckpt" / "latest.pt")
    assert main(["segment", str(tmp_path), "--num-seeds", "100"]) == 0
    path = tmp_path / "instances.npz"
    got = load_instances(path)
    assert len(got.gaussian_labels) == 5 * len(s.xyz)
    assert (got.gaussian_labels[::5] == got.anchor_labels).all()
    assert instance_miou(got.anchor_labels, s.labels + 1).miou >= 0.9
    assert "instances" in capsys.readouterr().out
    assert (tmp_path / "manifest.json").is_file()

    app = tmp_path / "app"
    (app / "ckpt").mkdir(parents=True)
    torch.save({"anchors": torch.from_numpy(s.xyz), "ins_feat": None, "n_offsets": 5},
               app / "ckpt" / "latest.pt")
    with pytest.raises(InputError, match="appearance-only") as e:
        SegmentCommand(app).run()
    assert "latest.pt" in str(e.value) and "Fix:" in str(e.value)
    with pytest.raises(InputError, match="run folder not found"):
        SegmentCommand(tmp_path / "missing").run()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="checkpoint not found"):
        SegmentCommand(tmp_path / "empty").run()
