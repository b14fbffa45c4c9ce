"""HAIS losses (paper Eq. 1, 4, 5, 6) and proposal-to-GT targets.

All functions are differentiable in their prediction arguments and work on packed batches
(points of several scenes concatenated; instance ids globally unique, -100 = none).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from instgs.core.checks import check_shape

__all__ = ["semantic_loss", "instance_centers", "offset_loss", "proposal_gt_iou",
           "mask_targets", "mask_loss", "score_loss"]


def semantic_loss(logits: torch.Tensor, semantic: torch.Tensor,
                  ignore_index: int = -100) -> torch.Tensor:
    """Cross-entropy L_seg over points (HAIS Sec. 3.1).

    Args:
        logits: [N, C] float; semantic: [N] int64 labels in 0..C-1 or ``ignore_index``.

    Returns:
        scalar; 0 (with a graph) when every label is ignored.
    """
    check_shape("logits", logits, "N C")
    check_shape("semantic", semantic, "N", N=logits.shape[0])
    if not (semantic != ignore_index).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, semantic, ignore_index=ignore_index)


def instance_centers(coord: torch.Tensor, instance: torch.Tensor) -> torch.Tensor:
    """Per-point GT instance centre = coordinate mean of its instance (HAIS Sec. 3.1).

    Args:
        coord: [N, 3] float metres; instance: [N] int64, -100 (any negative) = none.

    Returns:
        [N, 3] float; rows of points without an instance are 0.
    """
    check_shape("coord", coord, "N 3")
    valid = instance >= 0
    out = torch.zeros_like(coord)
    if not valid.any():
        return out
    inst = instance[valid]
    num = int(inst.max()) + 1
    sums = torch.zeros(num, 3, dtype=coord.dtype).index_add_(0, inst, coord[valid])
    cnt = torch.bincount(inst, minlength=num).clamp_min(1).to(coord.dtype)
    out[valid] = (sums / cnt[:, None])[inst]
    return out


def offset_loss(pred: torch.Tensor, coord: torch.Tensor, instance: torch.Tensor, *,
                weighted: bool = True, dir_weight: float = 0.0
                ) -> tuple[torch.Tensor, dict[str, float]]:
    """Centre-shift loss L_shift (HAIS Eq. 1), optionally PointGroup's direction loss.

    ``L = sum_fg w_i ||dx_gt - dx_pred||_1 / #fg`` with ``w_i = min(||dx_gt||_2, 1)`` when
    ``weighted`` (paper), ``w_i = 1`` otherwise (official code ``offset_norm_loss``). The
    direction term (PointGroup Eq. 3) is ``-mean_fg cos(dx_gt, dx_pred)``, added with
    ``dir_weight`` (HAIS: 0).

    Args:
        pred: [N, 3] predicted offsets (metres); coord: [N, 3]; instance: [N] int64.
        weighted: paper weighting (True) or code (False).
        dir_weight: weight of the direction loss.

    Returns:
        (loss scalar, logs {"offset_l1", "offset_dir"}).
    """
    check_shape("pred", pred, "N 3")
    check_shape("coord", coord, "N 3", N=pred.shape[0])
    valid = instance >= 0
    if not valid.any():
        z = pred.sum() * 0.0
        return z, {"offset_l1": 0.0, "offset_dir": 0.0}
    gt = (instance_centers(coord, instance) - coord)[valid]
    p = pred[valid]
    l1 = (gt - p).abs().sum(1)
    if weighted:
        l1 = l1 * gt.norm(dim=1).clamp(max=1.0)
    loss_l1 = l1.sum() / (valid.sum() + 1e-6)
    loss = loss_l1
    loss_dir = torch.zeros(())
    if dir_weight > 0:
        gn = gt / (gt.norm(dim=1, keepdim=True) + 1e-8)
        pn = p / (p.norm(dim=1, keepdim=True) + 1e-8)
        loss_dir = -(gn * pn).sum(1).mean()
        loss = loss + dir_weight * loss_dir
    return loss, {"offset_l1": float(loss_l1.detach()), "offset_dir": float(loss_dir.detach())}


def proposal_gt_iou(point_idx: torch.Tensor, proposal_id: torch.Tensor, num_proposals: int,
                    instance: torch.Tensor, keep: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """IoU matrix between proposals and GT instances.

    Args:
        point_idx: [P] int64 point index of each (proposal, point) pair.
        proposal_id: [P] int64 proposal of each pair, in 0..K-1.
        num_proposals: K.
        instance: [N] int64 GT instance ids (0..G-1, negative = none).
        keep: optional [P] bool; only these pairs form the proposal (e.g. the predicted
            mask ``sigmoid > 0.5``, HAIS "mask IoU").

    Returns:
        [K, G] float32 IoU (G = instance.max() + 1; [K, 0] when no instances).
    """
    G = int(instance.max()) + 1 if (instance >= 0).any() else 0
    K = num_proposals
    if keep is None:
        keep = torch.ones_like(point_idx, dtype=torch.bool)
    pid = proposal_id[keep]
    inst = instance[point_idx[keep]]
    psize = torch.bincount(pid, minlength=K).float()
    gsize = torch.bincount(instance[instance >= 0], minlength=G).float()
    if G == 0:
        return torch.zeros(K, 0)
    v = inst >= 0
    inter = torch.bincount(pid[v] * G + inst[v], minlength=K * G).float().reshape(K, G)
    union = psize[:, None] + gsize[None, :] - inter
    return inter / union.clamp_min(1.0)


def mask_targets(point_idx: torch.Tensor, proposal_id: torch.Tensor, iou: torch.Tensor,
                 instance: torch.Tensor, fg_iou: float = 0.5
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HAIS mask targets: points of the best-matched GT are positive (Sec. 3.4).

    Args:
        point_idx, proposal_id: [P] pairs as in :func:`proposal_gt_iou`.
        iou: [K, G] IoU matrix.
        instance: [N] GT instance ids.
        fg_iou: proposals with best IoU > this are trained (paper: 0.5, Table 5).

    Returns:
        (target [P] float in {0,1}, weight [P] float in {0,1} (pairs of trained proposals),
        best_iou [K] float).
    """
    K = iou.shape[0]
    if iou.shape[1] == 0:
        z = torch.zeros(point_idx.shape[0])
        return z, z.clone(), torch.zeros(K)
    best_iou, best_gt = iou.max(1)
    target = (instance[point_idx] == best_gt[proposal_id]).float()
    weight = (best_iou[proposal_id] > fg_iou).float()
    return target, weight, best_iou


def mask_loss(mask_logits: torch.Tensor, target: torch.Tensor,
              weight: torch.Tensor) -> torch.Tensor:
    """L_mask (HAIS Eq. 4): BCE over the points of proposals with IoU > 0.5, normalised by
    their total point count. Returns 0 (with a graph) when no proposal is trained."""
    n = weight.sum()
    if n <= 0:
        return mask_logits.sum() * 0.0
    bce = F.binary_cross_entropy_with_logits(mask_logits, target, reduction="none")
    return (bce * weight).sum() / n


def score_loss(score_logits: torch.Tensor, iou: torch.Tensor) -> torch.Tensor:
    """L_score (HAIS Eq. 5): BCE of the certainty score against the soft target IoU, mean over
    proposals. score_logits, iou: [K]. Returns 0 (with a graph) for K = 0."""
    if score_logits.numel() == 0:
        return score_logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(score_logits, iou.detach())
