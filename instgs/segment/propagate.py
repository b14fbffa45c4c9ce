"""Carry instance labels to anchors no view labelled, along the surfaces they lie on.

Anchors that no training view saw on a SAM mask (under a bed, behind a desk, on eroded mask
borders) have untrained instance features. ``instgs segment`` first lets the masks they
project into vote (:func:`~instgs.segment.render_support.vote_unobserved`); the rest take
the label of the *geodesically* nearest labelled anchor on a surface graph: a k-nearest-
neighbour graph over the anchors whose edges join anchors with agreeing normals (PCA of
their neighbourhood) and are at most a few anchor spacings long. A floor vertex under a
bed then takes the floor's label through the floor, not the bed's through the air, which
the plain nearest labelled anchor in xyz would give. instgs addition
(docs/instance-features.md); the released code relabels with an MLP on (RGB, PE(xyz)).
"""

from __future__ import annotations

import heapq

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from instgs.core.checks import InputError

__all__ = ["knn_graph", "pca_normals", "surface_graph", "propagate_labels",
           "propagate_labels_ref"]


def _points(xyz, name: str = "anchor positions") -> np.ndarray:
    p = np.asarray(xyz, np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise InputError(f"{name} must be [N, 3], got {p.shape}")
    return p


def pca_normals(xyz, k: int = 16) -> np.ndarray:
    """Unit normal per point: the smallest-eigenvalue direction of its k-neighbourhood.

    Args:
        xyz: [N, 3] float positions (any unit).
        k: neighbourhood size (the point itself included), clipped to N.

    Returns:
        [N, 3] float64 unit normals (sign arbitrary); +z for fewer than 3 points.

    Raises:
        InputError: ``xyz`` not [N, 3].
    """
    p = _points(xyz)
    n = len(p)
    if n < 3:
        return np.tile([0.0, 0.0, 1.0], (n, 1))
    _, nb = cKDTree(p).query(p, k=min(k, n))
    q = p[nb] - p[nb].mean(axis=1, keepdims=True)
    _, vecs = np.linalg.eigh(np.einsum("nki,nkj->nij", q, q))
    return vecs[:, :, 0]


def surface_graph(xyz, normals=None, k: int = 12, max_edge: float | None = None,
                  min_normal_dot: float = 0.8, max_tangent_dot: float = 0.3,
                  spacing_factor: float = 4.0) -> csr_matrix:
    """Symmetric kNN graph joining points that lie on one smooth surface.

    An edge joins ``i`` and its ``j`` (one of its ``k`` nearest neighbours) when
    ``|n_i . n_j| > min_normal_dot``, the edge runs along both tangent planes
    (``|n . e| < max_tangent_dot`` at both ends, ``e`` the unit edge direction; this stops
    the graph from crossing a crease through the blended normals PCA gives there) and
    ``|x_i - x_j| < max_edge``; its weight is the distance.

    Args:
        xyz: [N, 3] float positions.
        normals: [N, 3] unit normals (default :func:`pca_normals`).
        k: neighbours per point.
        max_edge: longest edge in scene units; default ``spacing_factor`` times the median
            distance to the nearest neighbour, so the graph is unit-free.
        min_normal_dot: smallest ``|cos|`` between the normals of an edge's ends.
        max_tangent_dot: largest ``|cos|`` between an end's normal and the edge.
        spacing_factor: see ``max_edge``.

    Returns:
        [N, N] scipy CSR matrix of edge lengths (0 = no edge).

    Raises:
        InputError: shapes.
    """
    p = _points(xyz)
    n = len(p)
    if n < 2:
        return csr_matrix((n, n))
    nrm = pca_normals(p) if normals is None else np.asarray(normals, np.float64)
    if nrm.shape != p.shape:
        raise InputError(f"normals must be [N={n}, 3], got {nrm.shape}")
    rows, cols, dist, max_edge = _knn_edges(p, k, max_edge, spacing_factor)
    e = (p[cols] - p[rows]) / np.maximum(dist, 1e-12)[:, None]
    ok = ((np.abs((nrm[rows] * nrm[cols]).sum(1)) > min_normal_dot) & (dist < max_edge)
          & (np.abs((nrm[rows] * e).sum(1)) < max_tangent_dot)
          & (np.abs((nrm[cols] * e).sum(1)) < max_tangent_dot))
    return _symmetric(rows[ok], cols[ok], dist[ok], n)


def _knn_edges(p: np.ndarray, k: int, max_edge: float | None, spacing_factor: float):
    """(rows, cols, lengths, max_edge) of the k nearest neighbours of every point."""
    n = len(p)
    kk = min(k, n - 1)
    d, j = cKDTree(p).query(p, k=kk + 1)
    d, j = d[:, 1:].reshape(n, kk), j[:, 1:].reshape(n, kk)
    if max_edge is None:
        max_edge = spacing_factor * float(np.median(d[:, 0]))
    return np.repeat(np.arange(n), kk), j.ravel(), d.ravel(), max_edge


def _symmetric(rows: np.ndarray, cols: np.ndarray, dist: np.ndarray, n: int) -> csr_matrix:
    # + tiny epsilon: coincident points still get an edge (a stored 0 means "no edge")
    g = csr_matrix((dist + 1e-9, (rows, cols)), shape=(n, n))
    return g.maximum(g.T).tocsr()


def knn_graph(xyz, k: int = 8, max_edge: float | None = None,
              spacing_factor: float = 4.0) -> csr_matrix:
    """Symmetric kNN graph: ``i`` joins its ``k`` nearest neighbours closer than ``max_edge``
    (default ``spacing_factor`` x the median nearest-neighbour distance); weights are the
    distances. :func:`surface_graph` without the normal tests (used where a feature test
    already guards object borders, :mod:`instgs.segment.fragments`).

    Returns:
        [N, N] scipy CSR matrix (0 = no edge).

    Raises:
        InputError: shapes.
    """
    p = _points(xyz)
    n = len(p)
    if n < 2:
        return csr_matrix((n, n))
    rows, cols, dist, max_edge = _knn_edges(p, k, max_edge, spacing_factor)
    ok = dist < max_edge
    return _symmetric(rows[ok], cols[ok], dist[ok], n)


def propagate_labels(labels, seeds, graph: csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Give every non-seed node the label of its geodesically nearest seed.

    Args:
        labels: [N] int labels; only the seeds' entries are read.
        seeds: [N] bool, the labelled nodes.
        graph: [N, N] edge lengths (:func:`surface_graph`).

    Returns:
        ``(out [N] int64, reached [N] bool)``: non-seed nodes connected to some seed take its
        label (``reached``); the others, and all seeds, keep theirs.

    Raises:
        InputError: shapes disagree.
    """
    labels = np.asarray(labels, np.int64).reshape(-1)
    seeds = np.asarray(seeds, bool).reshape(-1)
    n = len(labels)
    if seeds.shape != (n,) or graph.shape != (n, n):
        raise InputError(f"labels [{n}], seeds {seeds.shape} and graph {graph.shape} disagree")
    out = labels.copy()
    reached = np.zeros(n, bool)
    s = np.flatnonzero(seeds)
    if len(s) == 0 or seeds.all():
        return out, reached
    _, _, src = dijkstra(graph, directed=False, indices=s, min_only=True,
                         return_predecessors=True)
    reached = (src >= 0) & ~seeds
    out[reached] = labels[src[reached]]
    return out, reached


def propagate_labels_ref(labels, seeds, graph: csr_matrix) -> list[int]:
    """Multi-source Dijkstra with a heap, node by node: the twin of :func:`propagate_labels`
    (tests only)."""
    n = len(labels)
    g = graph.maximum(graph.T).tocsr()
    best = [float("inf")] * n
    lab = [int(x) for x in labels]
    heap = []
    for i in range(n):
        if seeds[i]:
            best[i] = 0.0
            heap.append((0.0, i, lab[i]))
    heapq.heapify(heap)
    done = [False] * n
    while heap:
        d, i, lbl = heapq.heappop(heap)
        if done[i]:
            continue
        done[i] = True
        if not seeds[i]:
            lab[i] = lbl
        for ptr in range(g.indptr[i], g.indptr[i + 1]):
            j, w = int(g.indices[ptr]), float(g.data[ptr])
            if not done[j] and d + w < best[j]:
                best[j] = d + w
                heapq.heappush(heap, (d + w, j, lbl))
    return lab
