"""Join touching instances that the training views' masks keep showing as one object.

Noisy SAM-style masks split some objects in some views (a door in two panels, a long wall
in two stretches). The instance features learn the split, the bottom-up merge keeps both
halves (their features differ by more than its threshold), and both halves are large, so
the fragment step leaves them too. The views themselves say more: a pair of touching
instances that one mask covers in most of the views that see both is one object; two
objects that merely touch are covered by one mask only where SAM under-segments, which is
rare.

:func:`mask_consensus_merge` counts, for every pair of touching instances (an edge of the
neighbour graph between them), the views where both are seen on masked pixels
(``min_anchors`` each) and, among them, the views where a single mask holds at least
``min_share`` of each one's sightings. Pairs seen together in at least ``min_together``
of at least ``min_views`` views are joined, in rounds of a greedy matching that test a
joined instance again as a whole. instgs addition, in
the spirit of the mask-graph merging of SAI3D (Yin et al., CVPR 2024) and MaskClustering
(Yan et al., CVPR 2024); measured in docs/evaluation.md ("Masks that agree"). The loop twin
is :func:`instgs.segment._reference.mask_consensus_merge_ref`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from instgs.core.checks import InputError

__all__ = ["ConsensusReport", "mask_consensus_merge"]


@dataclass(frozen=True)
class ConsensusReport:
    """What :func:`mask_consensus_merge` did.

    Attributes:
        pairs: touching instance pairs seen by at least ``min_views`` views (first round).
        joined: joins made (one per matched pair, over all rounds).
        rounds: rounds that joined something.
        before, after: instance counts.
    """

    pairs: int
    joined: int
    rounds: int
    before: int
    after: int


def _sightings(labels: np.ndarray, hits, min_anchors: int, min_share: float):
    """(visible [V, K] bool, rows (view, instance A, instance B) of masks holding both);
    ``hits`` holds the strict rows with a mask only."""
    view, mask, lab = hits.view, hits.mask, labels[hits.anchor]
    k = int(labels.max()) + 1
    nv = int(view.max()) + 1 if len(view) else 0
    seen = np.zeros((nv, k), np.int64)
    np.add.at(seen, (view, lab), 1)
    visible = seen >= min_anchors
    if not len(view):
        return visible, np.zeros((0, 3), np.int64)
    # one row per (view, mask, instance) with the instance's sightings inside that mask
    _, vm = np.unique(np.stack([view, mask], 1), axis=0, return_inverse=True)
    vm = vm.reshape(-1)
    key, cnt = np.unique(vm * k + lab, return_counts=True)
    grp, inst = np.divmod(key, k)
    view_of = np.zeros(int(vm.max()) + 1, np.int64)
    view_of[vm] = view
    gv = view_of[grp]
    holds = visible[gv, inst] & (cnt >= min_share * seen[gv, inst])
    grp, inst, gv = grp[holds], inst[holds], gv[holds]  # sorted by (grp, inst)
    rows = []
    for d in range(1, int(np.bincount(grp).max(initial=0))):
        same = grp[d:] == grp[:-d]
        rows.append(np.stack([gv[d:][same], inst[:-d][same], inst[d:][same]], 1))
    rows = np.concatenate(rows) if rows else np.zeros((0, 3), np.int64)
    return visible, rows


def _pair_stats(labels: np.ndarray, hits, edges: tuple[np.ndarray, np.ndarray],
                min_share: float, min_anchors: int):
    """Touching pairs (a < b) with their views seeing both and views one mask holds both."""
    k = int(labels.max()) + 1
    visible, rows = _sightings(labels, hits, min_anchors, min_share)
    a, b = labels[edges[0]], labels[edges[1]]
    touch = np.unique(np.minimum(a, b)[a != b] * k + np.maximum(a, b)[a != b])
    pa, pb = np.divmod(touch, k)
    if visible.shape[0] == 0:
        zero = np.zeros(len(touch), np.int64)
        return pa, pb, zero, zero
    both = (visible[:, pa] & visible[:, pb]).sum(0)
    lo, hi = np.minimum(rows[:, 1], rows[:, 2]), np.maximum(rows[:, 1], rows[:, 2])
    vpair = np.unique(np.stack([rows[:, 0], lo * k + hi], 1), axis=0)  # once per view
    together = np.zeros(len(touch), np.int64)
    if len(touch):
        pos = np.searchsorted(touch, vpair[:, 1])
        hit = (pos < len(touch)) & (touch[np.minimum(pos, len(touch) - 1)] == vpair[:, 1])
        np.add.at(together, pos[hit], 1)
    return pa, pb, both, together


def _matching(pa: np.ndarray, pb: np.ndarray, score: np.ndarray, votes: np.ndarray
              ) -> list[tuple[int, int]]:
    """Greedy matching: best agreement first (then more views, then smaller ids); each
    instance in at most one pair."""
    order = np.lexsort((pb, pa, -votes, -score))
    taken: set[int] = set()
    out = []
    for i in order.tolist():
        x, y = int(pa[i]), int(pb[i])
        if x not in taken and y not in taken:
            taken.update((x, y))
            out.append((x, y))
    return out


def mask_consensus_merge(labels, hits, graph, min_share: float = 0.5,
                         min_together: float = 0.5, min_views: int = 2,
                         min_anchors: int = 5) -> tuple[np.ndarray, ConsensusReport]:
    """Join touching instances that one mask covers in most views that see both.

    Joins happen in rounds: each round scores every touching pair on the current labels,
    joins a greedy matching of the pairs that pass (best agreement first, an instance in at
    most one pair) and recomputes. A joined instance is tested again as a whole, so a chain
    A-B, B-C of pairs that each pass does not become one instance unless one mask also
    covers A+B and C; this keeps colour-region masks (the Felzenszwalb fallback), which
    cover neighbours together view after view, from joining a whole scene.

    Args:
        labels: [N] int64 instance id per anchor, all >= 0.
        hits: :class:`~instgs.segment.render_support.MaskHits` over the same anchors; only
            the ``strict`` rows with a mask (the sightings the features trained on) count.
        graph: [N, N] scipy sparse neighbour graph (e.g.
            :func:`~instgs.segment.propagate.knn_graph`); instances touch where an edge
            joins them.
        min_share: share of an instance's sightings in a view that one mask must hold.
        min_together: share of the views seeing both in which one mask holds both.
        min_views: views that must see both (``min_anchors`` sightings each).
        min_anchors: sightings an instance needs in a view to count as seen there.

    Returns:
        (labels [N] int64 with ids 0..K'-1 in order of each joined instance's smallest old
        id (the input unchanged where nothing joins), :class:`ConsensusReport`).

    Raises:
        InputError: negative labels, shape mismatch, or a parameter out of range.
    """
    labels = np.asarray(labels, np.int64).reshape(-1)
    n = len(labels)
    if graph.shape != (n, n):
        raise InputError(f"graph {graph.shape} does not match {n} labels")
    if n and labels.min() < 0:
        raise InputError("labels must be >= 0 (label every anchor first)")
    if not (0 < min_share <= 1 and 0 < min_together <= 1) or min_views < 1:
        raise InputError(f"mask consensus needs 0 < share, together <= 1 and views >= 1; got "
                         f"share {min_share}, together {min_together}, views {min_views}",
                         fix="set --consensus-share / --consensus-together in (0, 1] "
                             "(--consensus-together 0 turns the join off)")
    before = len(np.unique(labels))
    keep = hits.strict & (hits.mask >= 0)
    if before < 2 or not keep.any():
        return labels.copy(), ConsensusReport(0, 0, 0, before, before)
    hits = hits.select(keep)
    g = graph.tocoo()
    edges = (g.row, g.col)
    out, pairs, joined, rounds = labels.copy(), 0, 0, 0
    while True:
        pa, pb, both, together = _pair_stats(out, hits, edges, min_share, min_anchors)
        seen = both >= min_views
        if rounds == 0:
            pairs = int(seen.sum())
        ok = seen & (together >= min_together * np.maximum(both, 1))
        if not ok.any():
            break
        match = _matching(pa[ok], pb[ok], together[ok] / both[ok], together[ok])
        root = np.arange(int(out.max()) + 1)
        for x, y in match:
            root[y] = x  # x < y: the smaller id survives
        out = root[out]
        joined += len(match)
        rounds += 1
    # compact, in order of each instance's smallest old id
    out = np.unique(out, return_inverse=True)[1].reshape(-1).astype(np.int64)
    return out, ConsensusReport(pairs=pairs, joined=joined, rounds=rounds, before=before,
                                after=int(out.max()) + 1 if n else 0)
