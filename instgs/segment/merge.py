"""Sub-object graph merge (InstanceGaussian §3.3 (2)) and small-cluster clean-up.

Edges join two sub-objects when (a) their features are close and (b) they touch in space:
some voxel (edge ``voxel_size``) holding anchors of one is the same as, or a face neighbour
of (Manhattan distance <= 1 between integer voxel indices), a voxel holding anchors of the
other -- the released ``merge_clusters_graph`` rule. Sub-objects with fewer than 10 anchors
get no edges. Connected components come from ``scipy.sparse.csgraph.connected_components``
(the released code runs a Python BFS over a dense K x K matrix; same partition).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from instgs.core.checks import InputError

__all__ = ["voxel_adjacency", "merge_features", "merge_clusters", "reassign_small_clusters",
           "relabel_by_size"]

_FACE = np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1],
                  [0, 0, -1]], np.int64)
_CUBE = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)],
                 np.int64)


def _check_xyz_labels(xyz, labels):
    xyz = np.asarray(xyz, np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or labels.shape != (xyz.shape[0],):
        raise InputError(f"expected xyz [N, 3] and labels [N], got {xyz.shape} and {labels.shape}")
    return xyz, labels


def voxel_adjacency(xyz, labels, voxel_size: float = 0.10, num_clusters: int | None = None,
                    connectivity: Literal[6, 26] = 6) -> sp.csr_matrix:
    """Which clusters share a voxel or occupy neighbouring voxels.

    Points are voxelised as ``floor(xyz / voxel_size)``. Clusters a != b are adjacent when a
    voxel of a equals a voxel of b or is one of its neighbours: the 6 face neighbours
    (``connectivity=6``, Manhattan distance <= 1, the released rule) or all 26
    (``connectivity=26``, Chebyshev distance <= 1). Implemented by hashing the occupied
    (voxel, cluster) pairs to int64 keys and joining each pair's shifted keys against the
    sorted key table (``np.searchsorted``): O(V log V) for V occupied pairs, no K x K dense
    matrix.

    Args:
        xyz: [N, 3] float, metres.
        labels: [N] int cluster id per point; negative ids are ignored.
        voxel_size: voxel edge, metres (> 0).
        num_clusters: K; default ``labels.max() + 1``.
        connectivity: 6 or 26.

    Returns:
        [K, K] symmetric boolean ``scipy.sparse.csr_matrix`` with an empty diagonal.

    Raises:
        InputError: bad shapes, ``voxel_size <= 0`` or unknown connectivity.
    """
    xyz, labels = _check_xyz_labels(xyz, labels)
    if not voxel_size > 0:
        raise InputError(f"voxel_size must be > 0 metres, got {voxel_size}")
    if connectivity not in (6, 26):
        raise InputError(f"connectivity must be 6 or 26, got {connectivity}")
    K = int(labels.max(initial=-1)) + 1 if num_clusters is None else int(num_clusters)
    keep = labels >= 0
    if not keep.any() or K == 0:
        return sp.csr_matrix((K, K), dtype=bool)
    vox = np.floor(xyz[keep] / voxel_size).astype(np.int64)
    vox -= vox.min(0) - 1  # >= 1, so every neighbour index is >= 0 (no wrap-around)
    ext = vox.max(0) + 2
    strides = np.array([ext[1] * ext[2], ext[2], 1], np.int64)
    vkey = vox @ strides
    lab = labels[keep]
    # unique occupied (voxel, cluster) pairs, sorted by voxel key
    pair = np.unique(np.stack([vkey, lab], 1), axis=0)
    keys, clus = pair[:, 0], pair[:, 1]
    offsets = (_FACE if connectivity == 6 else _CUBE) @ strides
    src, dst = [], []
    for off in offsets:
        q = keys + off
        lo = np.searchsorted(keys, q, "left")
        hi = np.searchsorted(keys, q, "right")
        cnt = hi - lo
        if not cnt.any():
            continue
        rows = np.repeat(np.arange(len(q)), cnt)
        # positions lo[r], lo[r]+1, ..., hi[r]-1 for every row r
        pos = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt) + np.repeat(lo, cnt)
        a, b = clus[rows], clus[pos]
        ne = a != b
        src.append(a[ne])
        dst.append(b[ne])
    if src:
        s, d = np.concatenate(src), np.concatenate(dst)
    else:
        s = d = np.zeros(0, np.int64)
    adj = sp.coo_matrix((np.ones(len(s), bool), (s, d)), shape=(K, K)).tocsr()
    adj = (adj + adj.T).astype(bool)
    adj.sum_duplicates()
    return adj


def merge_features(feats, space: Literal["released", "raw"] = "released") -> np.ndarray:
    """Features as compared by the merge: ``(normalize(f) + 1) / 2`` (released) or raw.

    Args:
        feats: [K, F] float.
        space: "released" maps each L2-normalised row into [0, 1]^F (so L2 distances lie in
            [0, sqrt(F)] and equal half the distance between the normalised rows); "raw" uses
            ``feats`` as given.

    Returns:
        [K, F] float64.
    """
    f = np.asarray(feats, np.float64)
    if space == "raw":
        return f
    if space != "released":
        raise InputError(f"unknown feature space {space!r}; choose 'released' or 'raw'")
    return (f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12) + 1) / 2


def merge_clusters(cluster_feats, adjacency, sizes, feat_threshold: float = 0.15,
                   min_size_for_edges: int = 10,
                   feature_space: Literal["released", "raw"] = "released") -> np.ndarray:
    """Merge sub-objects into instances: connected components of the feature/space graph.

    Edge (i, j) iff ``adjacency[i, j]`` and ``||g_i - g_j||_2 < feat_threshold`` (``g`` =
    :func:`merge_features`) and both ``sizes`` are >= ``min_size_for_edges``. Distances are
    evaluated on the adjacency's non-zeros only.

    Args:
        cluster_feats: [K, F] float sub-object features (codebook entries or means).
        adjacency: [K, K] boolean (dense or scipy.sparse), e.g. :func:`voxel_adjacency`.
        sizes: [K] int, points per sub-object.
        feat_threshold: 0.15 for ScanNet, 0.1 for LeRF (released values).
        min_size_for_edges: sub-objects smaller than this never get edges (released: 10).
        feature_space: see :func:`merge_features`.

    Returns:
        [K] int64 component id per sub-object, in [0, C).

    Raises:
        InputError: shapes disagree.

    References:
        InstanceGaussian §3.3 (2), Eq. 6 and Alg. 1 lines 7-19.
    """
    g = merge_features(cluster_feats, feature_space)
    K = g.shape[0]
    sizes = np.asarray(sizes).reshape(-1)
    adj = sp.coo_matrix(adjacency)
    if adj.shape != (K, K) or sizes.shape != (K,):
        raise InputError(f"cluster_feats [{K}, F], adjacency {adj.shape} and sizes "
                         f"{sizes.shape} disagree")
    i, j = adj.row.astype(np.int64), adj.col.astype(np.int64)
    m = (adj.data != 0) & (i != j)
    i, j = i[m], j[m]
    big = sizes >= min_size_for_edges
    d = np.linalg.norm(g[i] - g[j], axis=1)
    e = big[i] & big[j] & (d < feat_threshold)
    graph = sp.coo_matrix((np.ones(int(e.sum()), bool), (i[e], j[e])), shape=(K, K))
    _, comp = connected_components(graph, directed=False)
    return comp.astype(np.int64)


def reassign_small_clusters(xyz, labels, min_size: int = 5, valid_mask=None) -> np.ndarray:
    """Give points of clusters with < ``min_size`` points (and invalid points) a valid cluster.

    The released ScanNet code marks clusters with fewer than 5 anchors invalid and lets an
    MLP (trained on the valid points' (RGB, PE(xyz)) -> cluster id) relabel everything. We
    have no such MLP here: each invalid point takes the label of its nearest valid point in
    xyz (``scipy.spatial.cKDTree``, Euclidean, metres).

    Args:
        xyz: [N, 3] float, metres.
        labels: [N] int; negative = unassigned (also reassigned).
        min_size: clusters with fewer points are dissolved.
        valid_mask: [N] bool; False points are reassigned too (and do not count in sizes).

    Returns:
        [N] int64 labels (ids from ``labels``, not compacted). If no cluster is valid the
        input labels are returned unchanged (negative ids stay negative).
    """
    xyz, labels = _check_xyz_labels(xyz, labels)
    valid = labels >= 0
    if valid_mask is not None:
        valid &= np.asarray(valid_mask, bool)
    if valid.any():
        sizes = np.bincount(labels[valid])
        valid &= sizes[np.where(valid, labels, 0)] >= min_size
    out = labels.copy()
    if not valid.any() or valid.all():
        return out
    tree = cKDTree(xyz[valid])
    _, nn = tree.query(xyz[~valid], k=1)
    out[~valid] = labels[valid][nn]
    return out


def relabel_by_size(labels) -> tuple[np.ndarray, int]:
    """Compact non-negative ids to 0..C-1, biggest cluster first (ties: smaller old id first).

    Args:
        labels: [N] int; negative ids stay -1.

    Returns:
        ([N] int64 new labels, C).
    """
    labels = np.asarray(labels).astype(np.int64)
    pos = labels >= 0
    ids, inv, cnt = np.unique(labels[pos], return_inverse=True, return_counts=True)
    order = np.lexsort((ids, -cnt))
    rank = np.empty(len(ids), np.int64)
    rank[order] = np.arange(len(ids))
    out = np.full(labels.shape, -1, np.int64)
    out[pos] = rank[inv]
    return out, len(ids)
