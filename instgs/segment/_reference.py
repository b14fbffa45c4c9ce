"""Slow, loop-clear reference twins of the segment kernels (the spec; tests only)."""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["fps_ref", "voxel_adjacency_ref", "merge_clusters_ref", "nearest_seed_ref",
           "mask_consensus_merge_ref"]


def fps_ref(points, k: int, start: int = 0) -> list[int]:
    """Farthest point sampling with explicit loops (ties: lowest index)."""
    pts = np.asarray(points, np.float64)
    n = len(pts)
    k = min(k, n)
    chosen = [start]
    best = [float("inf")] * n
    while len(chosen) < k:
        last = pts[chosen[-1]]
        for i in range(n):
            d = float(((pts[i] - last) ** 2).sum())
            if d < best[i]:
                best[i] = d
        far, far_d = 0, -1.0
        for i in range(n):
            if best[i] > far_d:
                far, far_d = i, best[i]
        chosen.append(far)
    return chosen


def nearest_seed_ref(points, seed_idx) -> list[int]:
    """Index (into seed_idx) of the nearest seed of every point, loops."""
    pts = np.asarray(points, np.float64)
    out = []
    for p in pts:
        ds = [float(((p - pts[s]) ** 2).sum()) for s in seed_idx]
        out.append(int(np.argmin(ds)))
    return out


def voxel_adjacency_ref(xyz, labels, voxel_size: float, num_clusters: int,
                        connectivity: int = 6) -> np.ndarray:
    """Dense [K, K] bool: min distance between the clusters' voxel index sets <= 1.

    Manhattan distance for connectivity 6 (released rule), Chebyshev for 26.
    """
    vox: dict[int, set[tuple[int, int, int]]] = {c: set() for c in range(num_clusters)}
    for p, c in zip(np.asarray(xyz, np.float64), np.asarray(labels)):
        if c >= 0:
            vox[int(c)].add(tuple(int(v) for v in np.floor(p / voxel_size)))
    adj = np.zeros((num_clusters, num_clusters), bool)
    for a, b in itertools.combinations(range(num_clusters), 2):
        for va in vox[a]:
            hit = False
            for vb in vox[b]:
                diff = [abs(x - y) for x, y in zip(va, vb)]
                d = sum(diff) if connectivity == 6 else max(diff)
                if d <= 1:
                    hit = True
                    break
            if hit:
                adj[a, b] = adj[b, a] = True
                break
    return adj


def merge_clusters_ref(cluster_feats, adjacency, sizes, feat_threshold: float,
                       min_size_for_edges: int) -> list[int]:
    """BFS over a dense matrix, as the released ``find_connected_components`` does.

    Features compared as ``(normalize(f) + 1) / 2``. Components numbered in order of their
    smallest member (the same numbering scipy's connected_components produces).
    """
    f = np.asarray(cluster_feats, np.float64)
    g = (f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12) + 1) / 2
    adj = np.asarray(adjacency.toarray() if hasattr(adjacency, "toarray") else adjacency)
    K = len(g)
    edge = np.zeros((K, K), bool)
    for i in range(K):
        for j in range(K):
            if i != j and adj[i, j] and sizes[i] >= min_size_for_edges \
                    and sizes[j] >= min_size_for_edges \
                    and np.linalg.norm(g[i] - g[j]) < feat_threshold:
                edge[i, j] = edge[j, i] = True
    comp = [-1] * K
    nxt = 0
    for s in range(K):
        if comp[s] >= 0:
            continue
        queue = [s]
        comp[s] = nxt
        while queue:
            u = queue.pop(0)
            for v in range(K):
                if edge[u, v] and comp[v] < 0:
                    comp[v] = nxt
                    queue.append(v)
        nxt += 1
    return comp


def mask_consensus_merge_ref(labels, hits, graph, min_share=0.5, min_together=0.5,
                             min_views=2, min_anchors=5) -> list[int]:
    """Loop twin of :func:`instgs.segment.consensus.mask_consensus_merge` (tests only)."""
    labels = [int(x) for x in labels]
    g = graph.tocoo()
    edges = list(zip(g.row.tolist(), g.col.tolist()))
    rows = [(a, v, m) for a, v, m, s in zip(hits.anchor.tolist(), hits.view.tolist(),
                                            hits.mask.tolist(), hits.strict.tolist())
            if s and m >= 0]
    while True:
        seen: dict[tuple[int, int], int] = {}  # (view, instance) -> sightings
        in_mask: dict[tuple[int, int, int], int] = {}  # (view, mask, instance) -> sightings
        for a, v, m in rows:
            seen[v, labels[a]] = seen.get((v, labels[a]), 0) + 1
            in_mask[v, m, labels[a]] = in_mask.get((v, m, labels[a]), 0) + 1
        views = sorted({v for v, _ in seen})
        touching = sorted({(min(labels[i], labels[j]), max(labels[i], labels[j]))
                           for i, j in edges if labels[i] != labels[j]})
        cands = []
        for a, b in touching:
            both = together = 0
            for v in views:
                if seen.get((v, a), 0) < min_anchors or seen.get((v, b), 0) < min_anchors:
                    continue
                both += 1
                masks = {m for (vv, m, _) in in_mask if vv == v}
                if any(in_mask.get((v, m, a), 0) >= min_share * seen[v, a]
                       and in_mask.get((v, m, b), 0) >= min_share * seen[v, b]
                       for m in masks):
                    together += 1
            if both >= min_views and together >= min_together * both:
                cands.append((-together / both, -together, a, b))
        if not cands:
            break
        taken: set[int] = set()
        root: dict[int, int] = {}
        for _, _, a, b in sorted(cands):
            if a not in taken and b not in taken:
                taken.update((a, b))
                root[b] = a
        labels = [root.get(x, x) for x in labels]
    new = {r: i for i, r in enumerate(sorted(set(labels)))}
    return [new[x] for x in labels]
