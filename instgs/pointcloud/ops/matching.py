"""Bipartite matching of predicted masks to ground truth (3D-QueryIS, seed 001 Eq. 5-6).

The cost of query ``k`` for GT instance ``t`` is::

    C[k, t] = l_ce * (-p_k(c_t)) + l_bce * BCE(m_k, g_t)
              + l_dice * (1 - (2 m_k.g_t + 1) / (|m_k| + |g_t| + 1))

with ``p_k`` the softmax class probabilities, ``m_k = sigmoid(mask logits)`` and ``BCE`` the
mean binary cross-entropy over the N points. The assignment is
``scipy.optimize.linear_sum_assignment`` (Hungarian / Jonker-Volgenant). The readable twins
are :func:`instgs.pointcloud.ops._reference_methods.match_costs` and
:func:`~instgs.pointcloud.ops._reference_methods.hungarian_match` (brute force).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from instgs.core.checks import InputError, check_shape

__all__ = ["MatchCosts", "match_costs", "hungarian_match"]


@dataclass
class MatchCosts:
    """The three [K, T] float32 cost matrices of 3D-QueryIS Eq. 5-6 (before weighting)."""

    ce: torch.Tensor
    bce: torch.Tensor
    dice: torch.Tensor

    def total(self, w_ce: float, w_bce: float, w_dice: float) -> torch.Tensor:
        """``w_ce * ce + w_bce * bce + w_dice * dice`` ([K, T])."""
        return w_ce * self.ce + w_bce * self.bce + w_dice * self.dice


@torch.no_grad()
def match_costs(class_logits: torch.Tensor, mask_logits: torch.Tensor,
                gt_labels: torch.Tensor, gt_masks: torch.Tensor) -> MatchCosts:
    """Matching costs between K predictions and T GT instances of one scene.

    BCE over all points in closed form: ``BCE(x, g) = softplus(-x) g + softplus(x) (1-g)``,
    so the [K, T] sums are two matrix products.

    Args:
        class_logits: [K, G+1] float (last = "no object").
        mask_logits: [K, N] float per-point mask logits.
        gt_labels: [T] int64 class index in 0..G-1.
        gt_masks: [T, N] float or bool point masks.

    Returns:
        :class:`MatchCosts` with ``ce = -p_k(c_t)``, ``bce`` (mean over N) and ``dice``.

    Raises:
        ShapeError: inconsistent shapes. InputError: a GT label outside 0..G-1.
    """
    check_shape("class_logits", class_logits, "K G")
    check_shape("mask_logits", mask_logits, "K N", K=class_logits.shape[0])
    check_shape("gt_masks", gt_masks, "T N", N=mask_logits.shape[1])
    check_shape("gt_labels", gt_labels, "T", T=gt_masks.shape[0])
    G = class_logits.shape[1] - 1
    if gt_labels.numel() and (int(gt_labels.min()) < 0 or int(gt_labels.max()) >= G):
        raise InputError(f"GT labels must lie in 0..{G - 1}")
    g = gt_masks.float()
    x = mask_logits.float()
    prob = class_logits.float().softmax(-1)
    ce = -prob[:, gt_labels]
    n = max(1, x.shape[1])
    bce = (F.softplus(-x) @ g.T + F.softplus(x) @ (1 - g).T) / n
    m = torch.sigmoid(x)
    dice = 1 - (2 * (m @ g.T) + 1) / (m.sum(1)[:, None] + g.sum(1)[None, :] + 1)
    return MatchCosts(ce=ce, bce=bce, dice=dice)


def hungarian_match(cost: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one assignment (``scipy.optimize.linear_sum_assignment``).

    Args:
        cost: [K, T] float; K may differ from T (min(K, T) pairs are returned).

    Returns:
        ``(rows [M] int64, cols [M] int64)`` sorted by row, M = min(K, T).

    Raises:
        InputError: non-finite costs.
    """
    from scipy.optimize import linear_sum_assignment

    c = cost.detach().cpu().double().numpy() if isinstance(cost, torch.Tensor) else \
        np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise InputError(f"cost must be 2-D, got shape {c.shape}")
    if c.size and not np.isfinite(c).all():
        raise InputError("cost matrix has NaN / Inf entries", None,
                         "check the predictions feeding the matcher")
    if c.size == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e.copy()
    r, k = linear_sum_assignment(c)
    return r.astype(np.int64), k.astype(np.int64)
