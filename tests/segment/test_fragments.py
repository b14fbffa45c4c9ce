"""No fragments: hand-made cases and the loop twin."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix

from instgs.core.checks import InputError
from instgs.segment.fragments import absorb_fragments, absorb_fragments_ref, fragment_share
from instgs.segment.propagate import knn_graph


def _chain_graph(n):
    """Anchors on a line, each joined to its neighbours."""
    i = np.arange(n - 1)
    g = coo_matrix((np.ones(2 * (n - 1)), (np.r_[i, i + 1], np.r_[i + 1, i])), shape=(n, n))
    return g.tocsr()


def test_small_piece_joins_the_similar_neighbour_not_the_other():
    # 0..29: instance A (feature e0); 30..32: fragment with A's feature; 33..62: instance B (e1)
    labels = np.r_[np.zeros(30), np.full(3, 5), np.ones(30)].astype(np.int64)
    feats = np.zeros((63, 4))
    feats[:33, 0] = 1
    feats[33:, 1] = 1
    out, rep = absorb_fragments(labels, feats, _chain_graph(63), min_size=10)
    assert (out[30:33] == 0).all() and (out[33:] == 1).all()
    assert rep.merged == 1 and rep.left == 0
    # a fragment unlike every neighbour stays, and is reported
    feats[30:33] = 0
    feats[30:33, 2] = 1
    out, rep = absorb_fragments(labels, feats, _chain_graph(63), min_size=10)
    assert (out[30:33] == 5).all() and rep.left == 1 and rep.left_anchors == 3


def test_chains_of_fragments_reach_the_large_instance():
    labels = np.r_[np.zeros(40), np.full(4, 7), np.full(3, 8), np.full(2, 9)].astype(np.int64)
    feats = np.tile([1.0, 0, 0], (49, 1)) + np.random.default_rng(0).normal(0, .01, (49, 3))
    out, rep = absorb_fragments(labels, feats, _chain_graph(49), min_size=10)
    assert (out == 0).all() and rep.left == 0
    assert out.tolist() == absorb_fragments_ref(labels, feats, _chain_graph(49), min_size=10)


def test_fragment_is_judged_by_its_observed_anchors():
    # 0..29: instance A (e0); 40..69: instance B (e1); 30..39: a fragment of B whose 4
    # observed anchors learned e1 while its 6 unobserved ones kept an initial feature near e0
    labels = np.r_[np.zeros(30), np.full(10, 5), np.ones(30)].astype(np.int64)
    feats = np.zeros((70, 3))
    feats[:30, 0] = 1
    feats[40:, 1] = 1
    feats[30:34, 1] = 1
    feats[34:40, 0] = 1
    feats[34:40, 2] = 0.1
    observed = np.ones(70, bool)
    observed[34:40] = False
    graph = _chain_graph(70)
    blind, _ = absorb_fragments(labels, feats, graph, min_size=20, max_feat_dist=0.4)
    seen, rep = absorb_fragments(labels, feats, graph, min_size=20, max_feat_dist=0.4,
                                 observed=observed)
    assert (blind[30:40] == 0).all()  # all-anchor mean: 6 of 10 look like A
    assert (seen[30:40] == 1).all() and rep.merged == 1 and rep.left == 0
    assert seen.tolist() == absorb_fragments_ref(labels, feats, graph, 20, 0.4,
                                                 observed=observed)
    # a fragment with no observed anchor falls back to the mean of all its anchors
    observed[30:34] = False
    fallback, _ = absorb_fragments(labels, feats, graph, min_size=20, max_feat_dist=0.4,
                                   observed=observed)
    assert fallback.tolist() == blind.tolist()
    with pytest.raises(InputError, match="observed"):
        absorb_fragments(labels, feats, graph, observed=observed[:5])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_the_loop_twin(seed):
    rng = np.random.default_rng(seed)
    n = 400
    xyz = rng.uniform(0, 1, (n, 3))
    centres = rng.uniform(0, 1, (12, 3))
    labels = np.argmin(((xyz[:, None] - centres[None]) ** 2).sum(-1), 1)
    labels[rng.choice(n, 40, replace=False)] = rng.integers(12, 30, 40)  # specks
    base = rng.normal(size=(30, 6))
    feats = base[labels] + rng.normal(0, 0.3, (n, 6))
    graph = knn_graph(xyz, k=6, max_edge=float("inf"))
    observed = rng.random(n) < 0.6
    for min_size, dist in ((5, 0.35), (20, 0.35), (30, 0.2)):
        fast, _ = absorb_fragments(labels, feats, graph, min_size, dist)
        assert fast.tolist() == absorb_fragments_ref(labels, feats, graph, min_size, dist)
        fast, _ = absorb_fragments(labels, feats, graph, min_size, dist, observed=observed)
        assert fast.tolist() == absorb_fragments_ref(labels, feats, graph, min_size, dist,
                                                     observed=observed)


def test_share_and_errors():
    assert fragment_share(np.r_[np.zeros(30), np.ones(5)], 10) == (1, 5 / 35)
    out, rep = absorb_fragments(np.zeros(3, np.int64), np.ones((3, 2)), _chain_graph(3),
                                min_size=0)
    assert rep.merged == 0 and out.tolist() == [0, 0, 0]
    with pytest.raises(InputError, match="disagree"):
        absorb_fragments(np.zeros(3, np.int64), np.ones((2, 2)), _chain_graph(3))
    with pytest.raises(InputError, match=">= 0"):
        absorb_fragments(np.array([0, -1, 0]), np.ones((3, 2)), _chain_graph(3))
