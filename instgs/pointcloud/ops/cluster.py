"""Clustering ops of the 3D-input track: ball-query graph, connected components, HAIS
point aggregation and set aggregation (fast paths; slow twins in ``_reference.py``).

HAIS (Chen et al., ICCV 2021) runs a CUDA ball query plus a CPU BFS
(``lib/hais_ops/src/bfs_cluster``) and a CUDA ``fragment_find_primary_`` kernel
(pointcloud-methods.md §P0 0.5, reference-implementations.md §6.1). Here: scipy's cKDTree
for the ball query, ``scipy.sparse.csgraph.connected_components`` for the BFS, and
vectorised numpy for Algorithm 1.

Neighbourhoods are closed balls (``distance <= radius``, cKDTree semantics). HAIS's CUDA
ball query keeps at most 1000 neighbours per point; the graph here is exact (no cap).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as _cc
from scipy.spatial import cKDTree

from instgs.core.checks import InputError, ShapeError

__all__ = [
    "ball_query_graph",
    "connected_components",
    "point_aggregation",
    "set_aggregation",
    "cluster_centers",
    "SET_AGGREGATION_VARIANTS",
]

SET_AGGREGATION_VARIANTS = ("paper", "code")


def _points(points: np.ndarray, name: str = "points") -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ShapeError(f"{name} must have shape (N, 3), got {p.shape}")
    if not np.isfinite(p).all():
        raise InputError(f"{name} contain NaN/Inf", None, "drop or repair those points")
    return p


def _labels(labels: np.ndarray | None, n: int, name: str = "labels") -> np.ndarray | None:
    if labels is None:
        return None
    lab = np.asarray(labels).astype(np.int64).reshape(-1)
    if lab.shape[0] != n:
        raise ShapeError(f"{name} must have shape (N,) with N={n}, got {np.shape(labels)}")
    return lab


def _pairs_dedup(p: np.ndarray, radius: float) -> np.ndarray:
    """All index pairs (i < j unordered) within ``radius`` (cKDTree.query_pairs)."""
    return cKDTree(p).query_pairs(radius, output_type="ndarray").astype(np.int64)


#: point_aggregation snaps shifted points to this grid (metres) before the ball query, so
#: that points collapsed onto one centre (e.g. by exact offsets) are queried once.
SNAP = 1e-6


def ball_query_graph(points: np.ndarray, radius: float, labels: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Edges between points at most ``radius`` apart (optionally only with equal labels).

    Args:
        points: [N, 3] float coordinates (metres).
        radius: ball radius in metres (> 0); pairs with distance ``<= radius`` are edges.
        labels: optional [N] int labels; an edge needs ``labels[i] == labels[j]``.

    Returns:
        ``(i, j)``: two [E] int64 arrays with ``i < j``, sorted lexicographically; each
        undirected edge once, no self loops.

    Raises:
        ShapeError: bad shapes. InputError: ``radius <= 0`` or non-finite points.

    References:
        HAIS / PointGroup ``ballquery_batch_p`` + same-label BFS (``bfs_cluster``).
    """
    p = _points(points)
    lab = _labels(labels, len(p))
    if not radius > 0:
        raise InputError(f"radius must be > 0, got {radius}", None, "use e.g. 0.03 (metres)")
    if len(p) < 2:
        e = np.zeros(0, dtype=np.int64)
        return e, e.copy()
    if lab is None:
        pairs = _pairs_dedup(p, radius)
    else:
        # pairs only form within a label: query each label's points separately
        chunks = []
        order = np.argsort(lab, kind="stable")
        bounds = np.flatnonzero(np.diff(lab[order])) + 1
        for idx in np.split(order, bounds):
            if len(idx) < 2:
                continue
            pr = _pairs_dedup(p[idx], radius)
            if len(pr):
                chunks.append(idx[pr])
        pairs = np.concatenate(chunks) if chunks else np.zeros((0, 2), dtype=np.int64)
    if len(pairs) == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e.copy()
    i = np.minimum(pairs[:, 0], pairs[:, 1]).astype(np.int64)
    j = np.maximum(pairs[:, 0], pairs[:, 1]).astype(np.int64)
    order = np.lexsort((j, i))
    return i[order], j[order]


def connected_components(num_nodes: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of an undirected graph.

    Args:
        num_nodes: number of nodes N (>= 0).
        i, j: [E] int edge endpoints in ``0..N-1``.

    Returns:
        [N] int64 component id per node; ids are consecutive and ordered by the smallest
        node of each component (node 0 is in component 0).

    Raises:
        InputError: endpoints out of range. ShapeError: ``i`` and ``j`` differ in length.
    """
    i = np.asarray(i, dtype=np.int64).reshape(-1)
    j = np.asarray(j, dtype=np.int64).reshape(-1)
    if i.shape != j.shape:
        raise ShapeError(f"i and j must have the same length, got {i.shape} and {j.shape}")
    if num_nodes == 0:
        return np.zeros(0, dtype=np.int64)
    if i.size and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= num_nodes):
        raise InputError(f"edge endpoints must lie in 0..{num_nodes - 1}")
    g = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(num_nodes, num_nodes))
    _, lab = _cc(g.tocsr(), directed=False)
    # canonical order: by smallest member (scipy already does this, but do not rely on it)
    first = np.full(lab.max() + 1, num_nodes, dtype=np.int64)
    np.minimum.at(first, lab, np.arange(num_nodes))
    rank = np.empty_like(first)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[lab].astype(np.int64)


def _knn_graph(p: np.ndarray, radius: float, labels: np.ndarray, k: int,
               chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Edges from each point to its (at most) ``k`` nearest same-label points within
    ``radius``: a subgraph of :func:`ball_query_graph` with at most N*k edges."""
    ii, jj = [], []
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for idx in np.split(order, bounds):
        if len(idx) < 2:
            continue
        tree = cKDTree(p[idx])
        kk = min(k + 1, len(idx))
        for s in range(0, len(idx), chunk):
            d, nb = tree.query(p[idx[s:s + chunk]], k=kk, distance_upper_bound=radius * (1 + 1e-9))
            d = d.reshape(len(d), -1)
            nb = nb.reshape(len(nb), -1)
            src = np.broadcast_to(np.arange(s, s + len(d))[:, None], nb.shape)
            ok = (d <= radius) & (nb != src)
            ii.append(idx[src[ok]])
            jj.append(idx[nb[ok]])
    if not ii:
        e = np.zeros(0, dtype=np.int64)
        return e, e.copy()
    return np.concatenate(ii).astype(np.int64), np.concatenate(jj).astype(np.int64)


def point_aggregation(shifted_xyz: np.ndarray, sem_labels: np.ndarray, radius: float = 0.03,
                      min_points: int = 1, ignore_classes: Sequence[int] = (0, 1),
                      max_neighbors: int | None = 64) -> list[np.ndarray]:
    """HAIS point aggregation: same-label radius graph on shifted points, then components.

    Points whose label is in ``ignore_classes`` (ScanNet: wall, floor) or negative
    (-100) are background and belong to no cluster.

    Args:
        shifted_xyz: [N, 3] ``x_i + dx_i`` (HAIS Eq. 2), metres.
        sem_labels: [N] int predicted semantic labels.
        radius: clustering bandwidth ``r_point`` (paper: 0.03 m).
        min_points: drop clusters with fewer points (1 = keep all, as HAIS before set
            aggregation).
        ignore_classes: background classes.
        max_neighbors: cap on the neighbours each point links to (its nearest ones within
            ``radius``), as HAIS's CUDA ball query keeps at most 1000 (and averages are
            watched by ``cluster_shift_meanActive``). The components are exact whenever
            no point has more than ``max_neighbors`` same-label neighbours within
            ``radius``; dense clumps, where the exact graph has O(n^2) edges (41 s for
            81k points shifted to within 1 cm of their centres), stay fast. ``None``
            uses the full graph of :func:`ball_query_graph`.

    Returns:
        Clusters as a list of int64 index arrays into ``0..N-1`` (ascending within a
        cluster; clusters ordered by their smallest index). Each foreground point is in
        exactly one cluster (before ``min_points`` filtering).

    Raises:
        ShapeError / InputError: bad shapes, non-finite points, ``radius <= 0``.

    References:
        HAIS Sec. 3.2; pointcloud-methods.md §P0 0.5 (background = classes 0, 1 in code).
    """
    p = _points(shifted_xyz, "shifted_xyz")
    lab = _labels(sem_labels, len(p), "sem_labels")
    fg = np.flatnonzero((lab >= 0) & ~np.isin(lab, np.asarray(ignore_classes, dtype=np.int64)))
    if fg.size == 0:
        return []
    # coincident points (after snapping to a 1 um grid) are one node: a collapsed
    # instance would otherwise give O(n^2) pairs. Changes distances by < 2 um.
    key = np.c_[lab[fg], np.round(p[fg] / SNAP).astype(np.int64)]
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    if max_neighbors is None:
        i, j = ball_query_graph(uniq[:, 1:] * SNAP, radius, uniq[:, 0])
    else:
        i, j = _knn_graph(uniq[:, 1:] * SNAP, radius, uniq[:, 0], int(max_neighbors))
    comp = connected_components(len(uniq), i, j)[inv]
    first = np.full(comp.max() + 1, len(comp), dtype=np.int64)
    np.minimum.at(first, comp, np.arange(len(comp)))
    rank = np.empty_like(first)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    comp = rank[comp]
    order = np.argsort(comp, kind="stable")
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    clusters = [fg[idx] for idx in np.split(order, bounds)]
    return [c for c in clusters if len(c) >= min_points]


def cluster_centers(clusters: Sequence[np.ndarray], xyz: np.ndarray) -> np.ndarray:
    """[K, 3] float64 coordinate mean of each cluster (empty clusters -> NaN)."""
    p = np.asarray(xyz, dtype=np.float64)
    if len(clusters) == 0:
        return np.zeros((0, 3))
    sizes = np.array([len(c) for c in clusters])
    idx = np.concatenate([np.asarray(c, dtype=np.int64) for c in clusters])
    owner = np.repeat(np.arange(len(clusters)), sizes)
    sums = np.zeros((len(clusters), 3))
    np.add.at(sums, owner, p[idx])
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / sizes[:, None]


def _cluster_labels(clusters: Sequence[np.ndarray], sem_labels: np.ndarray) -> np.ndarray:
    """Majority semantic label of each cluster (point aggregation makes them uniform)."""
    out = np.empty(len(clusters), dtype=np.int64)
    for k, c in enumerate(clusters):
        v = sem_labels[np.asarray(c, dtype=np.int64)]
        vals, cnt = np.unique(v, return_counts=True)
        out[k] = vals[np.argmax(cnt)]
    return out


def _check_class_statistics(cls: np.ndarray, num_mean: np.ndarray) -> None:
    """InputError unless every cluster class ``cls`` [K] has ``num_mean[c] > 0``."""
    inside = (cls >= 0) & (cls < len(num_mean))
    if inside.all() and (num_mean[cls] > 0).all():
        return
    bad = sorted(set(cls[~inside].tolist()) | set(cls[inside][num_mean[cls[inside]] <= 0].tolist()))
    raise InputError(f"no class statistics for cluster classes {bad}", None,
                     "exclude background classes in point_aggregation or pass "
                     "class_numpoint_mean > 0 for every foreground class")


def set_aggregation(clusters: Sequence[np.ndarray], shifted_xyz: np.ndarray,
                    sem_labels: np.ndarray, class_numpoint_mean: Sequence[float],
                    class_radius_mean: Sequence[float], *, alpha: float = 0.01,
                    fragment_ratio: float = 0.3, keep_fragment_ratio: float = 0.05,
                    variant: str = "paper") -> tuple[list[np.ndarray], np.ndarray]:
    """HAIS set aggregation (Algorithm 1) with the dynamic bandwidth of Eq. 3.

    A cluster of class c is a *fragment* if ``size < fragment_ratio * class_numpoint_mean[c]``
    (official code; the paper gives no rule), otherwise a *primary*. Each fragment joins
    the same-class primary whose centre (mean of shifted coordinates, code) is nearest,
    if that distance is ``< r_set = max(alpha * sqrt(S_prim), class_radius_mean[c])``
    with ``S_prim`` the primary's size before aggregation.

    Variants (pointcloud-methods.md §P0 0.5 and 0.10.11):

    * ``"paper"`` (default): returns the primaries after absorption only; fragments that
      join no primary are discarded. Output masks never overlap (the paper's claim).
    * ``"code"``: as ``hustvl/HAIS``: additionally every fragment with
      ``keep_fragment_ratio * mean <= size < fragment_ratio * mean`` is also returned as
      its own proposal (even if absorbed), so proposals can overlap.

    Args:
        clusters: K index arrays (e.g. from :func:`point_aggregation`).
        shifted_xyz: [N, 3] shifted coordinates (metres).
        sem_labels: [N] int semantic labels (a cluster's class = its majority label).
        class_numpoint_mean: [C] mean instance size per class in points (-1 = no
            instances); see :func:`instgs.pointcloud.data.scannet.class_statistics`.
        class_radius_mean: [C] mean instance radius per class (``r_cls``), metres.
        alpha: size bandwidth factor (paper: 0.01).
        fragment_ratio: primary/fragment split (code: 0.3).
        keep_fragment_ratio: lower size bound of kept fragments in ``"code"`` (0.05).
        variant: ``"paper"`` or ``"code"``.

    Returns:
        ``(proposals, labels)``: list of int64 index arrays (sorted ascending) and [P]
        int64 class labels; primaries first (in input order), then kept fragments.

    Raises:
        InputError: unknown variant, or a cluster class without statistics
            (``class_numpoint_mean[c] <= 0``, e.g. wall/floor clusters).

    References:
        HAIS Sec. 3.3, Alg. 1, Eq. 3; ``hustvl/HAIS`` ``hierarchical_aggregation``.
    """
    if variant not in SET_AGGREGATION_VARIANTS:
        raise InputError(f"variant must be one of {SET_AGGREGATION_VARIANTS}, got {variant!r}")
    p = _points(shifted_xyz, "shifted_xyz")
    lab = _labels(sem_labels, len(p), "sem_labels")
    num_mean = np.asarray(class_numpoint_mean, dtype=np.float64)
    rad_mean = np.asarray(class_radius_mean, dtype=np.float64)
    if len(clusters) == 0:
        return [], np.zeros(0, dtype=np.int64)
    clusters = [np.asarray(c, dtype=np.int64) for c in clusters]
    cls = _cluster_labels(clusters, lab)
    _check_class_statistics(cls, num_mean)
    sizes = np.array([len(c) for c in clusters], dtype=np.float64)
    centers = cluster_centers(clusters, p)
    is_frag = sizes < fragment_ratio * num_mean[cls]
    prim = np.flatnonzero(~is_frag)
    frag = np.flatnonzero(is_frag)
    r_set = np.maximum(alpha * np.sqrt(sizes[prim]), rad_mean[cls[prim]])
    members: list[list[np.ndarray]] = [[clusters[k]] for k in prim]
    if len(prim) and len(frag):
        d = np.linalg.norm(centers[frag][:, None, :] - centers[prim][None, :, :], axis=2)
        d[cls[frag][:, None] != cls[prim][None, :]] = np.inf
        best = np.argmin(d, axis=1)  # first minimum, as the strict "<" of Alg. 1
        dmin = d[np.arange(len(frag)), best]
        ok = dmin < r_set[best]
        for f, b in zip(frag[ok], best[ok]):
            members[b].append(clusters[f])
    proposals = [np.sort(np.concatenate(m)) for m in members]
    labels = list(cls[prim])
    if variant == "code":
        keep = frag[sizes[frag] >= keep_fragment_ratio * num_mean[cls[frag]]]
        proposals += [np.sort(clusters[k]) for k in keep]
        labels += list(cls[keep])
    return proposals, np.asarray(labels, dtype=np.int64)
