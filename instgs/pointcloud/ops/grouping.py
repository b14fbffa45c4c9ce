"""Embedding clustering for the metric-learning networks (SSEN, MPNet).

* :func:`hdbscan_labels` — SSEN (seed 003 §3.5): ``sklearn.cluster.HDBSCAN`` on the
  foreground embeddings (euclidean; official code ``min_cluster_size 200``).
* :func:`mean_shift_labels` — MPNet (seed 002 §2.5, assumed ASIS grouping): flat-kernel
  ``sklearn.cluster.MeanShift`` with ``bandwidth = sigma_v`` and bin seeding. Readable twin:
  :func:`instgs.pointcloud.ops._reference_methods.mean_shift_labels`.
* :func:`clusters_to_instances` — cluster ids + per-point class probabilities -> instances
  (majority class, mean probability of that class as the confidence). Readable twin:
  :func:`instgs.pointcloud.ops._reference_methods.clusters_to_instances`.

Labels are int64, ``-1`` = noise / unassigned, clusters numbered 0..K-1 by first point.
"""

from __future__ import annotations

import numpy as np

from instgs.core.checks import InputError

__all__ = ["hdbscan_labels", "mean_shift_labels", "clusters_to_instances", "relabel_first_seen"]


def _emb(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"embeddings must be [N, D], got shape {x.shape}")
    if x.size and not np.isfinite(x).all():
        raise InputError("embeddings contain NaN / Inf", None, "check the network output")
    return x


def relabel_first_seen(labels: np.ndarray) -> np.ndarray:
    """Renumber cluster ids 0..K-1 in order of their first point; negatives become -1.

    Args:
        labels: [N] int cluster ids.

    Returns:
        [N] int64.
    """
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full(labels.shape, -1, dtype=np.int64)
    valid = labels >= 0
    if valid.any():
        uniq, first, inv = np.unique(labels[valid], return_index=True, return_inverse=True)
        rank = np.empty(len(uniq), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(uniq))
        out[valid] = rank[inv]
    return out


def hdbscan_labels(emb: np.ndarray, min_cluster_size: int, min_samples: int | None = None,
                   allow_single_cluster: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """HDBSCAN (Campello et al. 2013) on embeddings, scikit-learn's implementation.

    Args:
        emb: [N, D] float embeddings.
        min_cluster_size: smallest cluster (points of ``emb``; SSEN code: 200 voxels at
            2 cm, scale with the density).
        min_samples: core-distance neighbourhood (None = ``min_cluster_size``; the SSEN code
            passes 0, which scikit-learn rejects, so 1 is its closest value).
        allow_single_cluster: accept one cluster (SSEN ``eval.py``).

    Returns:
        ``(labels [N] int64 (-1 noise), probabilities [N] float64 in [0, 1])``.

    Raises:
        InputError: bad shapes, non-finite values, ``min_cluster_size < 2``.
    """
    from sklearn.cluster import HDBSCAN

    x = _emb(emb)
    if min_cluster_size < 2:
        raise InputError(f"min_cluster_size must be >= 2, got {min_cluster_size}")
    n = x.shape[0]
    if n < max(2, min_cluster_size):
        return np.full(n, -1, dtype=np.int64), np.zeros(n)
    ms = None if min_samples is None else max(1, min(int(min_samples), n - 1))
    h = HDBSCAN(min_cluster_size=int(min_cluster_size), min_samples=ms,
                allow_single_cluster=allow_single_cluster, copy=True).fit(x)
    return relabel_first_seen(h.labels_), np.asarray(h.probabilities_, dtype=np.float64)


def mean_shift_labels(emb: np.ndarray, bandwidth: float, bin_seeding: bool = True,
                      min_bin_freq: int = 1) -> np.ndarray:
    """Flat-kernel mean shift (Comaniciu & Meer 2002), ``sklearn.cluster.MeanShift``.

    Every point joins its nearest mode (``cluster_all=True``, as ASIS). Modes closer than
    ``bandwidth`` to a mode with more points inside its window are removed.

    Args:
        emb: [N, D] float embeddings.
        bandwidth: kernel radius (MPNet/ASIS: sigma_v = 0.5).
        bin_seeding: seeds on a grid of cell ``bandwidth`` (fast) instead of every point.
        min_bin_freq: smallest bin that seeds (bin seeding only).

    Returns:
        [N] int64 cluster ids 0..K-1 (first-seen order).

    Raises:
        InputError: bad shapes, non-finite values, ``bandwidth <= 0``.
    """
    from sklearn.cluster import MeanShift

    x = _emb(emb)
    if not bandwidth > 0:
        raise InputError(f"bandwidth must be > 0, got {bandwidth}")
    if x.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if x.shape[0] == 1:
        return np.zeros(1, dtype=np.int64)
    ms = MeanShift(bandwidth=float(bandwidth), bin_seeding=bin_seeding,
                   min_bin_freq=int(min_bin_freq), cluster_all=True)
    return relabel_first_seen(ms.fit(x).labels_)


def clusters_to_instances(labels: np.ndarray, sem_prob: np.ndarray, min_points: int = 1,
                          ignore_classes: tuple[int, ...] = ()
                          ) -> list[tuple[np.ndarray, int, float]]:
    """Instances from cluster ids: class = majority predicted class of the members,
    confidence = mean probability of that class over the members.

    Args:
        labels: [N] int cluster id per point (< 0 = none).
        sem_prob: [N, C] float class probabilities per point.
        min_points: clusters with fewer points are dropped.
        ignore_classes: clusters whose majority class is one of these are dropped
            (e.g. wall / floor).

    Returns:
        list of ``(point_idx [n] int64, class, score)`` in cluster-id order.

    Raises:
        InputError: length mismatch.
    """
    labels = np.asarray(labels, dtype=np.int64)
    prob = np.asarray(sem_prob, dtype=np.float64)
    if prob.ndim != 2 or prob.shape[0] != labels.shape[0]:
        raise InputError(f"sem_prob {prob.shape} does not fit {labels.shape[0]} labels")
    valid = labels >= 0
    if not valid.any():
        return []
    K = int(labels.max()) + 1
    C = prob.shape[1]
    pred = prob.argmax(1)
    votes = np.zeros((K, C), dtype=np.int64)
    np.add.at(votes, (labels[valid], pred[valid]), 1)
    cls = votes.argmax(1)
    size = votes.sum(1)
    order = np.argsort(labels[valid], kind="stable")
    idx_sorted = np.flatnonzero(valid)[order]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(labels[valid], minlength=K))])
    out = []
    for k in range(K):
        if size[k] < max(1, min_points) or int(cls[k]) in ignore_classes:
            continue
        pts = np.sort(idx_sorted[bounds[k]:bounds[k + 1]])
        out.append((pts, int(cls[k]), float(prob[pts, cls[k]].mean())))
    return out
