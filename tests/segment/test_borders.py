"""Contact borders: hand-made cases, the loop twin, and the segment pipeline switch."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix

from instgs.core.checks import InputError
from instgs.segment.borders import refine_borders, refine_borders_ref
from instgs.segment.propagate import knn_graph


def _chain_graph(n):
    i = np.arange(n - 1)
    g = coo_matrix((np.ones(2 * (n - 1)), (np.r_[i, i + 1], np.r_[i + 1, i])), shape=(n, n))
    return g.tocsr()


def _two_objects(bleed: int):
    """Anchors 0..39 on a line: 0..19 have feature e0 (object A), 20..39 e1 (object B); the
    labels put the first ``bleed`` anchors of B into A."""
    feats = np.zeros((40, 3))
    feats[:20, 0] = 1
    feats[20:, 1] = 1
    labels = np.r_[np.zeros(20 + bleed), np.ones(20 - bleed)].astype(np.int64)
    return labels, feats


def test_a_border_that_bled_several_anchors_recedes_ring_by_ring():
    labels, feats = _two_objects(bleed=4)
    out, rep = refine_borders(labels, feats, _chain_graph(40), iters=10)
    assert (out[:20] == 0).all() and (out[20:] == 1).all()
    assert rep.anchors == 4 and rep.moved == 4
    assert rep.iters == 5  # one ring per iteration, then one that moves nothing
    # capped iterations move only the outer rings
    out, rep = refine_borders(labels, feats, _chain_graph(40), iters=2)
    assert (out[20:22] == 0).all() and (out[22:] == 1).all() and rep.anchors == 2


def test_correct_borders_and_small_gains_do_not_move():
    labels, feats = _two_objects(bleed=0)
    out, rep = refine_borders(labels, feats, _chain_graph(40))
    assert (out == labels).all() and rep.moved == 0
    # features that barely prefer the other side stay below the margin
    labels, feats = _two_objects(bleed=1)
    feats[20] = [1.0, 1.1, 0]  # gain about 0.04
    out, _ = refine_borders(labels, feats, _chain_graph(40), margin=0.05)
    assert out[20] == 0
    out, _ = refine_borders(labels, feats, _chain_graph(40), margin=0.0)
    assert out[20] == 1


def test_inactive_anchors_keep_their_label_and_are_not_neighbours():
    labels, feats = _two_objects(bleed=2)
    active = np.ones(40, bool)
    active[20] = False  # the bled anchor next to A cannot move, nor link 19 and 21
    out, _ = refine_borders(labels, feats, _chain_graph(40), active=active)
    assert out[20] == 0 and out[21] == 1 and (out[:20] == 0).all()
    active[:] = True
    out, _ = refine_borders(labels, feats, _chain_graph(40), active=active)
    assert (out[20:] == 1).all()


def test_matches_loop_twin_on_random_scenes():
    rng = np.random.default_rng(3)
    for trial in range(4):
        n = 150
        xyz = rng.uniform(0, 1, (n, 3))
        centres = rng.normal(size=(4, 5))
        true = np.argmin(((xyz[:, None, :2] - rng.uniform(0, 1, (4, 2))[None]) ** 2).sum(-1), 1)
        feats = centres[true] + rng.normal(0, 0.6, (n, 5))
        labels = np.where(rng.uniform(size=n) < 0.2, rng.integers(0, 4, n), true)
        active = rng.uniform(size=n) > 0.1
        g = knn_graph(xyz, k=6)
        out, _ = refine_borders(labels, feats, g, active=active, iters=5, margin=0.02)
        ref = refine_borders_ref(labels, feats, g, active=active, iters=5, margin=0.02)
        assert out.tolist() == ref, trial


def test_bad_shapes_and_negative_labels():
    labels, feats = _two_objects(0)
    with pytest.raises(InputError, match="disagree"):
        refine_borders(labels[:-1], feats, _chain_graph(40))
    with pytest.raises(InputError, match=">= 0"):
        refine_borders(np.r_[labels[:-1], -1], feats, _chain_graph(40))


def test_segment_pipeline_switch_fixes_a_bled_border():
    from instgs.segment.pipeline import SegmentConfig, segment_anchors

    # two flat objects side by side; the features tell them apart, the positions do not
    g = np.stack(np.meshgrid(np.linspace(0, 2, 60), np.linspace(0, 1, 30)), -1).reshape(-1, 2)
    xyz = np.c_[g, np.zeros(len(g))].astype(np.float32)
    true = (xyz[:, 0] > 1.0).astype(np.int64)
    feats = np.eye(6, dtype=np.float32)[true * 3] + np.random.default_rng(0).normal(
        0, 0.05, (len(g), 6)).astype(np.float32)
    base = SegmentConfig(num_seeds=8, anchors_per_seed=0, fragment_size=0, pe_weight=4.0)
    off = segment_anchors(xyz, feats, base).anchor_labels
    on = segment_anchors(xyz, feats, SegmentConfig(**{**base.__dict__, "border_iters": 10})
                         ).anchor_labels

    def errors(lab):  # anchors outside their object's majority label
        return sum((lab[true == t] != np.bincount(lab[true == t]).argmax()).sum()
                   for t in (0, 1))

    assert len(np.unique(on)) == 2 and errors(on) == 0
    assert errors(off) > 100  # the seeds' xy term cut the objects along other lines
