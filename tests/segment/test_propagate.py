"""Surface-graph label propagation for anchors no view labelled."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.spatial import cKDTree

from instgs.core.checks import InputError
from instgs.segment.propagate import (harmonic_labels, harmonic_labels_ref, knn_graph,
                                      pca_normals, propagate_labels, propagate_labels_ref,
                                      propagation_graph, surface_graph)


def _floor_and_wall(step=0.05):
    """A floor (z = 0, x and y in [0, 1]) meeting a wall (x = 1, z in (0, 1])."""
    t = np.arange(0.0, 1.0 + 1e-9, step)
    fx, fy = np.meshgrid(t, t, indexing="ij")
    floor = np.stack([fx.ravel(), fy.ravel(), np.zeros(fx.size)], 1)
    wy, wz = np.meshgrid(t, t[1:], indexing="ij")
    wall = np.stack([np.ones(wy.size), wy.ravel(), wz.ravel()], 1)
    return floor, wall


def test_pca_normals_of_planes():
    floor, wall = _floor_and_wall()
    n = pca_normals(floor)
    assert np.allclose(np.abs(n[:, 2]), 1.0, atol=1e-6)
    interior = wall[(wall[:, 2] > 0.2)]
    assert np.allclose(np.abs(pca_normals(interior)[:, 0]), 1.0, atol=1e-6)
    assert pca_normals(np.zeros((2, 3))).tolist() == [[0, 0, 1], [0, 0, 1]]
    with pytest.raises(InputError, match="N, 3"):
        pca_normals(np.zeros((4, 2)))


def test_surface_graph_edges_follow_the_rules():
    rng = np.random.default_rng(0)
    xyz = rng.random((300, 3))
    nrm = rng.normal(size=(300, 3))
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    g = surface_graph(xyz, nrm, k=6, max_edge=0.2, min_normal_dot=0.5, max_tangent_dot=0.6)
    assert (g != g.T).nnz == 0
    _, nb = cKDTree(xyz).query(xyz, k=7)
    want = set()
    for i in range(300):
        for j in nb[i, 1:]:
            e = xyz[j] - xyz[i]
            d = float(np.linalg.norm(e))
            along = abs(float(nrm[i] @ e)) < 0.6 * d and abs(float(nrm[j] @ e)) < 0.6 * d
            if abs(float(nrm[i] @ nrm[j])) > 0.5 and d < 0.2 and along:
                want |= {(i, int(j)), (int(j), i)}
    rows, cols = g.nonzero()
    assert set(zip(rows.tolist(), cols.tolist())) == want and want
    # default max_edge: 4 median nearest-neighbour spacings (5 cm here) = 20 cm
    line = np.stack([np.arange(20) * 0.05, np.zeros(20), np.zeros(20)], 1)
    up = np.tile([0.0, 0.0, 1.0], (21, 1))
    near = surface_graph(np.concatenate([line, [[0.95 + 0.15, 0, 0]]]), up, k=3)
    far = surface_graph(np.concatenate([line, [[0.95 + 0.25, 0, 0]]]), up, k=3)
    assert near[20].nnz > 0 and far[20].nnz == 0
    with pytest.raises(InputError, match="normals"):
        surface_graph(line, np.zeros((3, 3)))


@pytest.mark.parametrize("seed", [0, 1])
def test_propagate_labels_matches_reference(seed):
    rng = np.random.default_rng(seed)
    xyz = rng.random((400, 3))
    g = surface_graph(xyz, np.tile([0.0, 0.0, 1.0], (400, 1)), k=5)
    labels = rng.integers(0, 7, 400)
    seeds = rng.random(400) < 0.2
    out, reached = propagate_labels(labels, seeds, g)
    ref = propagate_labels_ref(labels, seeds, g)
    assert out.tolist() == ref
    assert reached.any() and not (reached & seeds).any()
    assert (out[~reached] == labels[~reached]).all()
    with pytest.raises(InputError, match="disagree"):
        propagate_labels(labels[:-1], seeds, g)


def test_floor_points_near_a_wall_take_the_floor_label():
    floor, wall = _floor_and_wall()
    xyz = np.concatenate([floor, wall])
    labels = np.concatenate([np.zeros(len(floor), np.int64), np.ones(len(wall), np.int64)])
    # the floor is labelled only where x < 0.5; the wall is labelled everywhere
    seeds = np.concatenate([floor[:, 0] < 0.5, np.ones(len(wall), bool)])
    unl = np.flatnonzero(~seeds)
    near_wall = floor[unl, 0] > 0.85
    # plain nearest labelled point in xyz: the wall, for the floor strip next to it
    s = np.flatnonzero(seeds)
    _, j = cKDTree(xyz[s]).query(xyz[unl])
    assert (labels[s[j]][near_wall] == 1).all()
    out, reached = propagate_labels(labels, seeds, surface_graph(xyz))
    assert reached[unl].all()
    # along the surface: the floor, up to the crease (the tangent test stops the graph from
    # crossing it through the blended PCA normals there)
    assert (out[unl] == 0).all()
    # without the tangent test the wall label leaks into the floor near the crease
    leak, _ = propagate_labels(labels, seeds, surface_graph(xyz, max_tangent_dot=1.0))
    assert (leak[unl] == 1).any()


def _random_affinities(rng, n, p=0.04):
    a = (rng.random((n, n)) < p) * rng.uniform(0.1, 2.0, (n, n))
    a = np.triu(a, 1)
    return csr_matrix(a + a.T)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_harmonic_labels_match_reference(seed):
    rng = np.random.default_rng(seed)
    n = 60
    g = _random_affinities(rng, n).tolil()
    # nodes 55..59 form a component without any seed: they keep their labels
    g[50:, :] = 0
    g[:, 50:] = 0
    for i in range(55, 59):
        g[i, i + 1] = g[i + 1, i] = 1.0
    g = g.tocsr()
    labels = rng.integers(0, 5, n)
    seeds = rng.random(n) < 0.3
    seeds[55:] = False
    out, reached = harmonic_labels(labels, seeds, g)
    assert out.tolist() == harmonic_labels_ref(labels, seeds, g)
    assert not (reached & seeds).any() and not reached[50:].any()
    assert (out[~reached] == labels[~reached]).all()
    assert reached[:50][~seeds[:50] & (np.diff(g.indptr)[:50] > 0)].any()
    # solving the labels one block at a time gives the same answer
    assert (harmonic_labels(labels, seeds, g, max_columns=1)[0] == out).all()


def test_harmonic_labels_edge_cases_and_errors():
    g = csr_matrix(np.array([[0, 1.0], [1.0, 0]]))
    assert harmonic_labels([3, 0], [True, False], g)[0].tolist() == [3, 3]
    none = harmonic_labels([3, 0], [False, False], g)
    assert none[0].tolist() == [3, 0] and not none[1].any()
    with pytest.raises(InputError, match="disagree"):
        harmonic_labels([3, 0, 1], [True, False, False], g)
    with pytest.raises(InputError, match=">= 0"):
        harmonic_labels([-1, 0], [True, False], g)


def test_one_wrong_anchor_no_longer_claims_a_hidden_patch():
    # a floor strip (x in [0, 1]) whose middle (0.3 < x < 0.7) no view labelled, except one
    # anchor in it that segmentation got wrong (an object's label, as a mask spilling onto
    # the floor gives). Geodesic propagation gives the object every patch anchor nearer to it
    # than to the labelled floor; label propagation gives the floor the whole patch, which
    # it surrounds.
    t = np.arange(0.0, 1.0 + 1e-9, 0.05)
    gx, gy = np.meshgrid(t, t[:7], indexing="ij")
    xyz = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], 1)
    hidden = (xyz[:, 0] > 0.3) & (xyz[:, 0] < 0.7)
    wrong = np.isclose(xyz[:, 0], 0.5) & np.isclose(xyz[:, 1], 0.15)
    labels = wrong.astype(np.int64)
    seeds = ~hidden | wrong
    patch = hidden & ~wrong
    geo, _ = propagate_labels(labels, seeds, surface_graph(xyz))
    assert (geo[patch] == 1).sum() >= 8
    harm, reached = harmonic_labels(labels, seeds, propagation_graph(xyz))
    assert reached[patch].all() and (harm[patch] == 0).all()


def test_propagation_graph_weights():
    floor, wall = _floor_and_wall()
    xyz = np.concatenate([floor, wall])
    surf = surface_graph(xyz).toarray() > 0
    kn = knn_graph(xyz, k=8).toarray() > 0
    g = propagation_graph(xyz, knn_weight=0.1).toarray()
    assert np.allclose(g, g.T)
    assert (kn & ~surf).any() and (surf & ~kn).any()
    assert np.allclose(g[kn & ~surf], 0.1) and np.allclose(g[kn & surf], 1.1)
    assert np.allclose(g[surf & ~kn], 1.0) and (g[~kn & ~surf] == 0).all()
    plain = propagation_graph(xyz, knn_weight=0.0).toarray()
    assert np.array_equal(plain > 0, surf) and np.allclose(plain[surf], 1.0)
    with pytest.raises(ValueError, match="knn_weight"):
        propagation_graph(xyz, knn_weight=-1.0)
