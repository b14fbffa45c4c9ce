"""Carry instance labels to anchors no view labelled, along the surfaces they lie on.

Anchors that no training view saw on a SAM mask (under a bed, behind a desk, on eroded mask
borders) have untrained instance features. ``instgs segment`` first lets the masks they
project into vote (:func:`~instgs.segment.render_support.vote_unobserved`); the rest take
labels that spread over a surface graph: a k-nearest-neighbour graph over the anchors whose
edges join anchors with agreeing normals (PCA of their neighbourhood) and are at most a few
anchor spacings long. A floor vertex under a bed then takes the floor's label through the
floor, not the bed's through the air, which the plain nearest labelled anchor in xyz would
give. Two rules spread them:

* :func:`harmonic_labels` (default): label propagation (Zhu & Ghahramani 2002; Zhou et al.
  2004): every unlabelled anchor's score per label is the edge-weighted mean of its
  neighbours' scores, labelled anchors clamped to their own label, solved exactly as one
  sparse linear system. A hidden patch takes the label that surrounds it along most of its
  border, so one wrongly labelled anchor next to it no longer claims it all;
* :func:`propagate_labels`: the label of the geodesically nearest labelled anchor.

instgs addition (docs/instance-features.md); the released code relabels with an MLP on
(RGB, PE(xyz)).
"""

from __future__ import annotations

import heapq

import numpy as np
from scipy.sparse import csr_matrix, diags
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.sparse.linalg import splu
from scipy.spatial import cKDTree

from instgs.core.checks import InputError

__all__ = ["knn_graph", "pca_normals", "surface_graph", "propagate_labels",
           "propagate_labels_ref", "harmonic_labels", "harmonic_labels_ref",
           "propagation_graph"]


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


def propagation_graph(xyz, knn_weight: float = 0.1, k: int = 8) -> csr_matrix:
    """Edge weights for :func:`harmonic_labels`: 1 on every :func:`surface_graph` edge plus
    ``knn_weight`` on every :func:`knn_graph` edge (``k`` neighbours, 4 median spacings).

    The weak kNN edges reach what the surface rules cut off (thin parts, folds, patches whose
    PCA normals are noisy) without letting a crease outweigh the surface it lies on.

    Args:
        xyz: [N, 3] float anchor positions.
        knn_weight: >= 0, weight of the plain kNN edges (0 = surface graph only).
        k: neighbours of the kNN part.

    Returns:
        [N, N] symmetric scipy CSR matrix of affinities (0 = no edge).

    Raises:
        InputError: shapes, or ``knn_weight < 0``.
    """
    if knn_weight < 0:
        raise InputError(f"knn_weight must be >= 0, got {knn_weight}",
                         fix="set --propagation-knn-weight to 0 (surface graph only) or more")
    g = surface_graph(xyz)
    g.data[:] = 1.0
    if knn_weight > 0:
        kn = knn_graph(xyz, k=k)
        kn.data[:] = knn_weight
        g = (g + kn).tocsr()
    return g


def harmonic_labels(labels, seeds, graph: csr_matrix,
                    max_columns: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Label propagation: the harmonic solution with the seeds clamped (Zhu & Ghahramani 2002).

    For every label ``l`` the score ``f_l`` is 1 on the seeds labelled ``l``, 0 on the other
    seeds, and on every other node the ``graph``-weighted mean of its neighbours' scores:
    ``(D - W)_uu f_u = W_us y_s`` over the unlabelled nodes ``u`` of the connected components
    that hold a seed (sparse LU, once; labels in blocks of ``max_columns``). Each such node
    takes ``argmax_l f_l`` (ties: the smaller label). It is the limit of repeatedly
    replacing each node's scores by the mean of its neighbours' (:func:`harmonic_labels_ref`),
    and equals the probability that a random walk from the node first meets a seed of ``l``.

    Args:
        labels: [N] int labels >= 0; only the seeds' entries are read.
        seeds: [N] bool, the labelled nodes.
        graph: [N, N] symmetric non-negative affinities (:func:`propagation_graph`).
        max_columns: labels solved at once (bounds memory to N x ``max_columns`` floats).

    Returns:
        ``(out [N] int64, reached [N] bool)``: non-seed nodes in a component with a seed take
        their best label (``reached``); the others, and all seeds, keep theirs.

    Raises:
        InputError: shapes disagree or negative seed labels. ValueError: ``max_columns < 1``.
    """
    labels = np.asarray(labels, np.int64).reshape(-1)
    seeds = np.asarray(seeds, bool).reshape(-1)
    n = len(labels)
    if seeds.shape != (n,) or graph.shape != (n, n):
        raise InputError(f"labels [{n}], seeds {seeds.shape} and graph {graph.shape} disagree")
    if max_columns < 1:
        raise ValueError(f"max_columns must be >= 1, got {max_columns}")
    out, reached = labels.copy(), np.zeros(n, bool)
    if not seeds.any() or seeds.all():
        return out, reached
    if labels[seeds].min() < 0:
        raise InputError("seed labels must be >= 0")
    w = csr_matrix(graph, dtype=np.float64)
    _, comp = connected_components(w, directed=False)
    free = np.flatnonzero(~seeds & np.isin(comp, comp[seeds]))
    if len(free) == 0:
        return out, reached
    s = np.flatnonzero(seeds)
    names, col = np.unique(labels[s], return_inverse=True)
    w_free = w[free]
    lu = splu((diags(np.asarray(w_free.sum(1)).ravel()) - w_free[:, free]).tocsc())
    w_fs = w_free[:, s].tocsr()
    y = csr_matrix((np.ones(len(s)), (np.arange(len(s)), col)), shape=(len(s), len(names)))
    b = (w_fs @ y).tocsc()
    best = np.full(len(free), -1.0)
    arg = np.zeros(len(free), np.int64)
    for c0 in range(0, len(names), max_columns):
        cols = np.arange(c0, min(c0 + max_columns, len(names)))
        f = lu.solve(b[:, cols].toarray())
        top = f.argmax(1)
        better = f[np.arange(len(free)), top] > best + 1e-12
        best[better] = f[np.arange(len(free)), top][better]
        arg[better] = cols[top[better]]
    out[free] = names[arg]
    reached[free] = True
    return out, reached


def harmonic_labels_ref(labels, seeds, graph: csr_matrix, tol: float = 1e-12,
                        max_sweeps: int = 100000) -> list[int]:
    """Node-by-node Jacobi sweeps to convergence: the twin of :func:`harmonic_labels`
    (tests only; nodes without a path to a seed keep their label)."""
    n = len(labels)
    g = graph.tocsr()
    names = sorted({int(labels[i]) for i in range(n) if seeds[i]})
    f = [[1.0 if seeds[i] and int(labels[i]) == lb else 0.0 for lb in names] for i in range(n)]
    for _ in range(max_sweeps):
        change, new = 0.0, [row[:] for row in f]
        for i in range(n):
            if seeds[i]:
                continue
            tot = sum(float(v) for v in g.data[g.indptr[i]:g.indptr[i + 1]])
            if tot == 0:
                continue
            acc = [0.0] * len(names)
            for ptr in range(g.indptr[i], g.indptr[i + 1]):
                j, wij = int(g.indices[ptr]), float(g.data[ptr])
                for c in range(len(names)):
                    acc[c] += wij * f[j][c]
            new[i] = [a / tot for a in acc]
            change = max(change, max(abs(a - b) for a, b in zip(new[i], f[i])))
        f = new
        if change < tol:
            break
    out = [int(x) for x in labels]
    for i in range(n):
        if not seeds[i] and max(f[i]) > 0:
            out[i] = names[max(range(len(names)), key=lambda c: (f[i][c], -c))]
    return out
