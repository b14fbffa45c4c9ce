"""MPNet's prototype memory, its readers and its regularisers (seed 002 §3.2-3.5, Eq. 1-5).

* :func:`class_centroids` — Eq. 1: ``c_i`` = mean of the i-th block of ``N_c`` memory rows.
* :func:`memory_read` — Eq. 2 and the semantic reader: softmax over cosine similarities
  (the paper's "cosine distance" read as similarity; ``temperature`` divides them, paper:
  none = 1), output = weights times the slots.
* :func:`squash` — Eq. 5's squashing non-linearity.
* :func:`semantic_regularizer` (R_seg, Eq. 4) and :func:`instance_regularizer` (R_ins,
  Eq. 3); readable twins in :mod:`instgs.pointcloud.ops._reference_methods`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from instgs.core.checks import InputError, check_shape

__all__ = ["class_centroids", "memory_read", "squash", "semantic_regularizer",
           "instance_regularizer"]


def class_centroids(memory: torch.Tensor, per_class: int) -> torch.Tensor:
    """Semantic memory C (Eq. 1): ``c_i = 1/N_c sum_{j in block i} m_j``.

    Args:
        memory: [C * N_c, D] float prototype memory M (class-major rows).
        per_class: N_c.

    Returns:
        [C, D] float.

    Raises:
        InputError: row count not a multiple of ``per_class``.
    """
    check_shape("memory", memory, "N D")
    if memory.shape[0] % per_class:
        raise InputError(f"{memory.shape[0]} memory rows are not a multiple of {per_class}")
    return memory.reshape(-1, per_class, memory.shape[1]).mean(1)


def memory_read(query: torch.Tensor, slots: torch.Tensor, temperature: float = 1.0
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Memory reader: ``w_ij = softmax_j(cos(q_i, m_j) / T)``, ``out_i = sum_j w_ij m_j``.

    Args:
        query: [P, D] float features (F_ins or F_seg rows).
        slots: [S, D] float memory rows (M for the instance reader, C for the semantic one).
        temperature: T > 0 (paper: 1).

    Returns:
        ``(out [P, D], weights [P, S])``; every row of ``weights`` sums to 1.
    """
    check_shape("query", query, "P D")
    check_shape("slots", slots, "S D", D=query.shape[1])
    cos = F.normalize(query, dim=1) @ F.normalize(slots, dim=1).T
    w = torch.softmax(cos / temperature, dim=1)
    return w @ slots, w


def squash(v: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``squash(v) = |v|^2 / (1 + |v|^2) * v / |v|`` over the last axis (Eq. 5); the
    output norm lies in [0, 1). Shape kept."""
    n2 = (v * v).sum(-1, keepdim=True)
    return n2 / (1 + n2) * v / torch.sqrt(n2 + eps)


def semantic_regularizer(feat: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor,
                         margin: float = 5.0, ignore_index: int = -100) -> torch.Tensor:
    """R_seg (Eq. 4) averaged over the labelled points::

        max(0, ||f_i - c_{y_i}|| - sum_{j != y_i} ||f_i - c_j|| + m)

    Args:
        feat: [P, D] float calibrated semantic features. centroids: [C, D].
        labels: [P] int64 class or ``ignore_index``. margin: m (paper 5).

    Returns:
        scalar (0 with a graph when no point is labelled).
    """
    check_shape("feat", feat, "P D")
    valid = labels != ignore_index
    if not valid.any():
        return feat.sum() * 0.0
    d = torch.cdist(feat[valid], centroids)  # [P, C]
    y = labels[valid]
    pos = d.gather(1, y[:, None]).squeeze(1)
    neg = d.sum(1) - pos
    return F.relu(pos - neg + margin).mean()


def instance_regularizer(pred: torch.Tensor, coord: torch.Tensor, instance: torch.Tensor,
                         batch: torch.Tensor | None = None) -> torch.Tensor:
    """R_ins (Eq. 3): mean over instances of the mean L2 distance between the predicted
    centroid of each of its points and the instance's centroid (not squared)::

        1/K sum_k 1/N_k sum_n || G(f_n) - GT_k ||_2

    Args:
        pred: [P, 3] float predicted centroids. coord: [P, 3] float point coordinates (the
            frame the GT centroid is taken in: block-local). instance: [P] int64 (< 0 none).
        batch: [P] int64 block of each point (instances are per block; default one).

    Returns:
        scalar (0 with a graph when no point has an instance).
    """
    check_shape("pred", pred, "P 3")
    valid = instance >= 0
    if not valid.any():
        return pred.sum() * 0.0
    b = torch.zeros_like(instance) if batch is None else batch
    base = int(instance.max()) + 1
    _, inv = torch.unique(b[valid] * base + instance[valid], return_inverse=True)
    K = int(inv.max()) + 1
    cnt = torch.bincount(inv, minlength=K).to(pred.dtype)
    cen = torch.zeros(K, 3, dtype=pred.dtype).index_add(0, inv, coord[valid]) / cnt[:, None]
    d = torch.linalg.vector_norm(pred[valid] - cen[inv], dim=1)
    per = torch.zeros(K, dtype=pred.dtype).index_add(0, inv, d) / cnt
    return per.mean()
