"""Clustering fast paths against their slow reference twins, plus hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from instgs.core.checks import InputError
from instgs.pointcloud.ops import _reference as R
from instgs.pointcloud.ops import cluster as F


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ball_query_and_components_match_reference(seed):
    rng = np.random.default_rng(seed)
    p = rng.random((250, 3)) * 0.6
    lab = rng.integers(0, 3, 250)
    for labels in (None, lab):
        i, j = F.ball_query_graph(p, 0.06, labels)
        ri, rj = R.ball_query_graph(p, 0.06, labels)
        assert np.array_equal(i, ri) and np.array_equal(j, rj) and len(i) > 0
        assert np.array_equal(F.connected_components(250, i, j),
                              R.connected_components(250, i, j))


@pytest.mark.parametrize("seed", [0, 1])
def test_point_aggregation_matches_reference(seed):
    rng = np.random.default_rng(seed)
    centers = rng.random((6, 3)) * 2
    p = np.repeat(centers, 40, 0) + rng.normal(0, 0.02, (240, 3))
    lab = np.repeat(rng.integers(0, 5, 6), 40)
    lab[rng.random(240) < 0.1] = -100
    for r in (0.01, 0.03):
        fast = F.point_aggregation(p, lab, r, min_points=2)
        ref = R.point_aggregation(p, lab, r, min_points=2)
        assert len(fast) == len(ref)
        assert all(np.array_equal(a, b) for a, b in zip(fast, ref))


def test_point_aggregation_collapsed_points_and_background():
    # two instances collapsed exactly onto their centres, one of class 0 (background)
    p = np.r_[np.zeros((500, 3)), np.ones((300, 3)), np.full((10, 3), 5.0)]
    lab = np.r_[np.full(500, 3), np.full(300, 3), np.zeros(10, int)]
    cl = F.point_aggregation(p, lab, 0.03)
    assert [len(c) for c in cl] == [500, 300]
    assert np.array_equal(cl[1], np.arange(500, 800))
    # same place, different label -> two clusters
    assert len(F.point_aggregation(np.zeros((4, 3)), np.array([2, 2, 5, 5]))) == 2


def test_connected_components_order_and_errors():
    assert F.connected_components(5, np.array([3, 1]), np.array([4, 2])).tolist() == [0, 1, 1, 2, 2]
    assert F.connected_components(0, [], []).tolist() == []
    with pytest.raises(InputError):
        F.connected_components(3, np.array([0]), np.array([3]))


def _set_case(seed):
    rng = np.random.default_rng(seed)
    pts, lab, clusters = [], [], []
    start = 0
    for _ in range(12):
        c = rng.integers(2, 5)
        n = int(rng.choice([5, 20, 60, 120]))
        centre = rng.random(3) * 3
        pts.append(centre + rng.normal(0, 0.05, (n, 3)))
        lab.append(np.full(n, c))
        clusters.append(np.arange(start, start + n))
        start += n
    num_mean = np.array([-1, -1, 100, 150, 200.0])
    rad_mean = np.array([-1, -1, 0.8, 0.6, 1.0])
    return clusters, np.concatenate(pts), np.concatenate(lab), num_mean, rad_mean


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("variant", ["paper", "code"])
def test_set_aggregation_matches_algorithm_1(seed, variant):
    clusters, p, lab, nm, rm = _set_case(seed)
    fast, fl = F.set_aggregation(clusters, p, lab, nm, rm, variant=variant)
    ref, rl = R.set_aggregation(clusters, p, lab, nm, rm, variant=variant)
    assert np.array_equal(fl, rl) and len(fast) == len(ref)
    assert all(np.array_equal(a, b) for a, b in zip(fast, ref))


def test_set_aggregation_hand_case():
    # class 2 (mean 100 pts, r_cls 0.5): primary A (100 pts at 0), fragment f1 (10 pts at
    # 0.4 -> joins A), fragment f2 (20 pts at 3.0 -> too far; kept only by "code"),
    # fragment f3 of class 3 near A (other class -> no primary of class 3 -> dropped).
    p = np.r_[np.zeros((100, 3)), np.full((10, 3), 0.4 / np.sqrt(3)), np.full((20, 3), 3.0),
              np.zeros((6, 3))]
    lab = np.r_[np.full(130, 2), np.full(6, 3)]
    cl = [np.arange(100), np.arange(100, 110), np.arange(110, 130), np.arange(130, 136)]
    nm, rm = [-1, -1, 100, 100], [-1, -1, 0.5, 0.5]
    props, labels = F.set_aggregation(cl, p, lab, nm, rm)
    assert len(props) == 1 and np.array_equal(props[0], np.arange(110)) and labels.tolist() == [2]
    props, labels = F.set_aggregation(cl, p, lab, nm, rm, variant="code")
    # f1 (10 >= 5) and f2 (20) are kept as extra proposals; f3 (6 >= 5) too
    assert [len(x) for x in props] == [110, 10, 20, 6] and labels.tolist() == [2, 2, 2, 3]
    # r_size = 0.01*sqrt(S) wins over a tiny r_cls: sqrt(100)*0.01 = 0.1 < 0.4 -> no join
    props, _ = F.set_aggregation(cl, p, lab, nm, [-1, -1, 0.05, 0.05])
    assert len(props[0]) == 100
    with pytest.raises(InputError):
        F.set_aggregation(cl, p, lab, [-1, -1, -1, 100], rm)
    with pytest.raises(InputError):
        F.set_aggregation(cl, p, lab, nm, rm, variant="nope")


def test_point_aggregation_neighbour_cap_keeps_dense_blobs_connected():
    # 3 dense blobs (600 points within ~1 cm): every point has > 64 neighbours in 3 cm
    rng = np.random.default_rng(5)
    p = np.repeat(np.array([[0, 0, 0], [0.5, 0, 0], [0.07, 0, 0]]), 600, 0)
    p = p + rng.normal(0, 0.01, p.shape)
    lab = np.full(len(p), 4)
    capped = F.point_aggregation(p, lab, 0.03, max_neighbors=16)
    exact = F.point_aggregation(p, lab, 0.03, max_neighbors=None)
    assert len(exact) == len(capped) == 2
    assert all(np.array_equal(a, b) for a, b in zip(capped, exact))
