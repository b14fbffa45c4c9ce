"""Mask-consensus merge: touching instances that one mask covers in most views join; the
loop twin agrees on random inputs."""

from __future__ import annotations

import numpy as np
import pytest

from instgs.core.checks import InputError
from instgs.segment._reference import mask_consensus_merge_ref
from instgs.segment.consensus import mask_consensus_merge
from instgs.segment.propagate import knn_graph
from instgs.segment.render_support import MaskHits


def _line_scene():
    """30 anchors on a line in three touching instances: A (0-9) and B (10-19) are the two
    halves of one object, C (20-29) is another object touching B. Five views see them all:
    in four, one mask covers A and B and C has its own; in one (over-split), A and B have
    a mask each; in one of the four, the mask over A and B also covers C (under-segmented)."""
    xyz = np.c_[np.arange(30) * 0.01, np.zeros(30), np.zeros(30)]
    labels = np.repeat([0, 1, 2], 10)
    rows = []
    for v in range(5):
        for i in range(30):
            if v == 4:
                m = [0, 1, 2][labels[i]]
            elif v == 0:
                m = 0
            else:
                m = 0 if labels[i] < 2 else 1
            rows.append((i, v, m))
    a = np.array(rows)
    return xyz, labels, MaskHits(a[:, 0], a[:, 1], a[:, 2], np.ones(len(a), bool))


def test_halves_one_mask_covers_join_and_a_neighbour_stays():
    xyz, labels, hits = _line_scene()
    graph = knn_graph(xyz, k=2)
    out, rep = mask_consensus_merge(labels, hits, graph)
    # A+B: together in 4 of 5 views; B+C: 1 of 5
    assert out.tolist() == [0] * 20 + [1] * 10
    assert (rep.pairs, rep.joined, rep.rounds, rep.before, rep.after) == (2, 1, 1, 3, 2)
    assert out.tolist() == mask_consensus_merge_ref(labels, hits, graph)
    # asking for more agreement than the views give keeps all three
    out, rep = mask_consensus_merge(labels, hits, graph, min_together=0.9)
    assert out.tolist() == labels.tolist() and rep.joined == 0
    # too few views seeing both: nothing joins
    out, _ = mask_consensus_merge(labels, hits, graph, min_views=6)
    assert out.tolist() == labels.tolist()
    # rows that are not strict (loose sightings) do not count
    loose = MaskHits(hits.anchor, hits.view, hits.mask, hits.view == 4)
    out, rep = mask_consensus_merge(labels, loose, graph, min_views=1)
    assert out.tolist() == labels.tolist() and rep.pairs == 2
    # instances that do not touch never join, whatever the masks say
    far = xyz.copy()
    far[10:20, 1] = 5.0
    out, _ = mask_consensus_merge(labels, hits, knn_graph(far, k=2))
    assert len(np.unique(out)) == 3


def test_consensus_errors():
    xyz, labels, hits = _line_scene()
    graph = knn_graph(xyz, k=2)
    with pytest.raises(InputError, match="graph"):
        mask_consensus_merge(labels[:5], hits, graph)
    with pytest.raises(InputError, match=">= 0"):
        mask_consensus_merge(np.r_[-1, labels[1:]], hits, graph)
    with pytest.raises(InputError, match="needs 0 < share"):
        mask_consensus_merge(labels, hits, graph, min_together=0)
    empty = MaskHits(*(np.zeros(0, np.int64),) * 3, np.zeros(0, bool))
    out, rep = mask_consensus_merge(labels, empty, graph)
    assert out.tolist() == labels.tolist() and rep.joined == 0


def test_consensus_matches_loop_twin_on_random_inputs():
    rng = np.random.default_rng(5)
    for _trial in range(6):
        n = int(rng.integers(20, 60))
        xyz = rng.uniform(0, 1, (n, 3))
        labels = rng.integers(0, 6, n)
        labels[:6] = np.arange(6)
        r = int(rng.integers(50, 400))
        hits = MaskHits(rng.integers(0, n, r), rng.integers(0, 6, r), rng.integers(-1, 4, r),
                        rng.random(r) < 0.8)
        kw = {"min_share": float(rng.uniform(0.3, 0.7)),
              "min_together": float(rng.uniform(0.2, 0.8)),
              "min_views": int(rng.integers(1, 3)), "min_anchors": int(rng.integers(1, 3))}
        graph = knn_graph(xyz, k=4, max_edge=float("inf"))
        out, _ = mask_consensus_merge(labels, hits, graph, **kw)
        assert out.tolist() == mask_consensus_merge_ref(labels, hits, graph, **kw)


def test_a_chain_of_passing_pairs_is_tested_again_as_a_whole():
    """A (20 anchors), B (6) and C (20) on a line; two views show one mask over A+B, two
    show one over B+C. Each pair passes alone (2 of 4 views), so connected components
    would make one instance; joined in rounds, A+B is tested again against C and fails
    (the B+C mask holds 6 of its 26 sightings)."""
    sizes = [20, 6, 20]
    labels = np.repeat([0, 1, 2], sizes)
    n = len(labels)
    xyz = np.c_[np.arange(n) * 0.01, np.zeros(n), np.zeros(n)]
    rows = []
    for v in range(4):
        for i in range(n):
            together = (0, 1) if v < 2 else (1, 2)
            rows.append((i, v, 0 if labels[i] in together else 1 + labels[i]))
    a = np.array(rows)
    hits = MaskHits(a[:, 0], a[:, 1], a[:, 2], np.ones(len(a), bool))
    graph = knn_graph(xyz, k=2)
    out, rep = mask_consensus_merge(labels, hits, graph)
    assert out.tolist() == [0] * 26 + [1] * 20
    assert (rep.joined, rep.rounds, rep.after) == (1, 1, 2)
    assert out.tolist() == mask_consensus_merge_ref(labels, hits, graph)
