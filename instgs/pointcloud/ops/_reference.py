"""Slow, readable twins of the fast paths in ``cluster.py`` and ``voxelize.py``.

Same signatures and outputs; written as the papers describe them (double loops, BFS with
a queue, Algorithm 1 verbatim). Only for tests on small inputs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

__all__ = [
    "ball_query_graph",
    "connected_components",
    "point_aggregation",
    "set_aggregation",
    "voxelize_reference",
]


def ball_query_graph(points: np.ndarray, radius: float, labels: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Brute force over all pairs i < j: edge iff ``|p_i - p_j| <= radius`` (and equal labels)."""
    p = np.asarray(points, dtype=np.float64)
    ii, jj = [], []
    for i in range(len(p)):
        for j in range(i + 1, len(p)):
            if labels is not None and labels[i] != labels[j]:
                continue
            if np.sqrt(((p[i] - p[j]) ** 2).sum()) <= radius:
                ii.append(i)
                jj.append(j)
    return np.asarray(ii, dtype=np.int64), np.asarray(jj, dtype=np.int64)


def connected_components(num_nodes: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """BFS from each unvisited node in increasing order; component ids in discovery order."""
    adj: list[list[int]] = [[] for _ in range(num_nodes)]
    for a, b in zip(np.asarray(i).tolist(), np.asarray(j).tolist()):
        adj[a].append(b)
        adj[b].append(a)
    comp = np.full(num_nodes, -1, dtype=np.int64)
    nxt = 0
    for s in range(num_nodes):
        if comp[s] >= 0:
            continue
        comp[s] = nxt
        queue = deque([s])
        while queue:
            u = queue.popleft()
            for v in adj[u]:
                if comp[v] < 0:
                    comp[v] = nxt
                    queue.append(v)
        nxt += 1
    return comp


def point_aggregation(shifted_xyz: np.ndarray, sem_labels: np.ndarray, radius: float = 0.03,
                      min_points: int = 1, ignore_classes: Sequence[int] = (0, 1),
                      max_neighbors: int | None = None) -> list[np.ndarray]:
    """HAIS Sec. 3.2 pseudo-code: BFS over foreground points, same label and distance <= r.

    ``max_neighbors`` is accepted for signature parity and ignored (the full graph)."""
    p = np.asarray(shifted_xyz, dtype=np.float64)
    lab = np.asarray(sem_labels).astype(np.int64)
    fg = [i for i in range(len(p)) if lab[i] >= 0 and lab[i] not in ignore_classes]
    visited: set[int] = set()
    clusters = []
    for s in fg:
        if s in visited:
            continue
        visited.add(s)
        comp = [s]
        queue = deque([s])
        while queue:
            u = queue.popleft()
            for v in fg:
                if v not in visited and lab[v] == lab[u] and \
                        np.sqrt(((p[u] - p[v]) ** 2).sum()) <= radius:
                    visited.add(v)
                    comp.append(v)
                    queue.append(v)
        clusters.append(np.sort(np.asarray(comp, dtype=np.int64)))
    return [c for c in clusters if len(c) >= min_points]


def set_aggregation(clusters: Sequence[np.ndarray], shifted_xyz: np.ndarray,
                    sem_labels: np.ndarray, class_numpoint_mean: Sequence[float],
                    class_radius_mean: Sequence[float], *, alpha: float = 0.01,
                    fragment_ratio: float = 0.3, keep_fragment_ratio: float = 0.05,
                    variant: str = "paper") -> tuple[list[np.ndarray], np.ndarray]:
    """HAIS Algorithm 1, line by line (see ``cluster.set_aggregation`` for the semantics)."""
    p = np.asarray(shifted_xyz, dtype=np.float64)
    lab = np.asarray(sem_labels).astype(np.int64)
    info = []
    for c in clusters:
        c = np.asarray(c, dtype=np.int64)
        vals, cnt = np.unique(lab[c], return_counts=True)
        label = int(vals[np.argmax(cnt)])
        info.append((c, label, p[c].mean(axis=0), len(c)))
    prims = [x for x in info if x[3] >= fragment_ratio * class_numpoint_mean[x[1]]]
    frags = [x for x in info if x[3] < fragment_ratio * class_numpoint_mean[x[1]]]
    r_set = [max(alpha * np.sqrt(x[3]), class_radius_mean[x[1]]) for x in prims]
    merged = [[x[0]] for x in prims]
    for fc, fl, fcen, _ in frags:
        index, d_min = -1, np.inf
        for n, (_, pl, pcen, _) in enumerate(prims):
            d = np.sqrt(((fcen - pcen) ** 2).sum())
            if fl == pl and d < d_min:
                index, d_min = n, d
        if index >= 0 and d_min < r_set[index]:
            merged[index].append(fc)
    proposals = [np.sort(np.concatenate(m)) for m in merged]
    labels = [x[1] for x in prims]
    if variant == "code":
        for fc, fl, _, size in frags:
            if size >= keep_fragment_ratio * class_numpoint_mean[fl]:
                proposals.append(np.sort(fc))
                labels.append(fl)
    return proposals, np.asarray(labels, dtype=np.int64)


def voxelize_reference(coord: np.ndarray, voxel_size: float) -> dict[str, np.ndarray]:
    """Dict-based voxelisation: keys ``floor((xyz - origin) / s)`` with origin a multiple of s.

    Returns a dict with ``coords`` [V,3] (sorted lexicographically), ``p2v`` [N] and
    ``origin`` [3], for comparison with :func:`instgs.pointcloud.voxelize.voxelize`.
    """
    c = np.asarray(coord, dtype=np.float64)
    origin = np.floor(c.min(0) / voxel_size) * voxel_size
    keys = [tuple(int(v) for v in np.floor((x - origin) / voxel_size)) for x in c]
    uniq = sorted(set(keys))
    pos = {k: n for n, k in enumerate(uniq)}
    return {"coords": np.asarray(uniq, dtype=np.int64).reshape(-1, 3),
            "p2v": np.asarray([pos[k] for k in keys], dtype=np.int64), "origin": origin}
