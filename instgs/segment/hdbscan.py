"""HDBSCAN baseline on the same per-anchor features (InstanceGaussian Tab. 13 comparison)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from instgs.core.checks import InputError

__all__ = ["hdbscan_points", "hdbscan_baseline"]


def hdbscan_points(anchor_xyz, ins_feat, pos_weight: float = 0.5) -> np.ndarray:
    """The points HDBSCAN clusters: ``[normalize(ins_feat), pos_weight * xyz]``.

    Args:
        anchor_xyz: [N, 3] float, metres.
        ins_feat: [N, F] float.
        pos_weight: metres -> feature units; 0.5 makes 2 m of separation count like
            antipodal unit features (distance 2 / 2 = 1). 0 clusters on features only.

    Returns:
        [N, F + 3] float64.
    """
    xyz = np.asarray(anchor_xyz, np.float64)
    f = np.asarray(ins_feat, np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or f.ndim != 2 or f.shape[0] != xyz.shape[0]:
        raise InputError(f"expected anchor_xyz [N, 3] and ins_feat [N, F], got {xyz.shape} "
                         f"and {f.shape}")
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return np.concatenate([f, pos_weight * xyz], axis=1)


def hdbscan_baseline(anchor_xyz, ins_feat, min_cluster_size: int = 50,
                     min_samples: int | None = 10, pos_weight: float = 0.5) -> np.ndarray:
    """Cluster anchors with HDBSCAN on [normalised instance feature, weighted position].

    ``sklearn.cluster.HDBSCAN`` (Campello et al. 2013; McInnes et al. 2017), Euclidean
    metric, excess-of-mass cluster selection. HDBSCAN leaves "noise" points (label -1);
    every noise point then takes the label of its nearest non-noise point in the same
    feature space (``cKDTree``), so each anchor ends up in a cluster. If HDBSCAN finds no
    cluster at all, every anchor is put in cluster 0.

    Args:
        anchor_xyz: [N, 3] float, metres.
        ins_feat: [N, F] float instance features.
        min_cluster_size: smallest cluster HDBSCAN reports (anchors).
        min_samples: core-distance neighbourhood; None = ``min_cluster_size``.
        pos_weight: see :func:`hdbscan_points`.

    Returns:
        [N] int64 cluster ids in [0, C).

    Raises:
        InputError: bad shapes or ``min_cluster_size < 2``.

    References:
        InstanceGaussian supplementary Tab. 13 (HDBSCAN vs the graph aggregation).
    """
    from sklearn.cluster import HDBSCAN

    if min_cluster_size < 2:
        raise InputError(f"min_cluster_size must be >= 2, got {min_cluster_size}")
    x = hdbscan_points(anchor_xyz, ins_feat, pos_weight)
    n = x.shape[0]
    if n < min_cluster_size:
        return np.zeros(n, np.int64)
    labels = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples,
                     copy=True).fit_predict(x).astype(np.int64)
    noise = labels < 0
    if noise.all():
        return np.zeros(n, np.int64)
    if noise.any():
        _, nn = cKDTree(x[~noise]).query(x[noise], k=1)
        labels[noise] = labels[~noise][nn]
    return labels
