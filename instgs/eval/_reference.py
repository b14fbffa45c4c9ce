"""Slow, loop-clear reference twins of :mod:`instgs.eval.scannet` (the spec; tests only).

These follow the released scripts' structure (double loops over GT x predictions with
boolean masks) and are O(G·P·N); use them on small cases only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["instance_miou_ref", "hungarian_matched_iou_ref", "average_precision_ref",
           "text_query_ref", "panoptic_quality_ref"]


def _iou_matrix(pred: np.ndarray, gt: np.ndarray):
    valid = gt > 0
    gt_v, pred_v = gt[valid], pred[valid]
    gt_ids = sorted(set(gt_v.tolist()))
    pred_ids = sorted(set(p for p in pred_v.tolist() if p >= 0))
    iou = np.zeros((len(gt_ids), len(pred_ids)))
    for a, g in enumerate(gt_ids):
        gm = gt_v == g
        for b, p in enumerate(pred_ids):
            pm = pred_v == p
            inter = np.logical_and(gm, pm).sum()
            union = np.logical_or(gm, pm).sum()
            iou[a, b] = inter / union
    return iou, gt_ids, pred_ids, pred_v


def instance_miou_ref(pred, gt) -> tuple[float, float, float]:
    """(mIoU, m50, m25) with best IoU per GT instance, loops over GT x predictions."""
    iou, _, _, _ = _iou_matrix(np.asarray(pred), np.asarray(gt))
    best = []
    for row in iou:
        b = 0.0
        for v in row:
            if v > b:
                b = v
        best.append(b)
    best = np.array(best)
    return float(best.mean()), float((best > 0.5).mean()), float((best > 0.25).mean())


def hungarian_matched_iou_ref(pred, gt) -> float:
    """Maximum total IoU over one-to-one matchings / G, by brute force over permutations.

    Only for tiny cases (G, P <= 6).
    """
    import itertools

    iou, gt_ids, pred_ids, _ = _iou_matrix(np.asarray(pred), np.asarray(gt))
    G, P = iou.shape
    best = 0.0
    if P >= G:
        for perm in itertools.permutations(range(P), G):
            best = max(best, sum(iou[i, perm[i]] for i in range(G)))
    else:
        for perm in itertools.permutations(range(G), P):
            best = max(best, sum(iou[perm[j], j] for j in range(P)))
    return best / G


def average_precision_ref(pred, gt, threshold: float, scores=None) -> float:
    """AP with greedy score-ordered matching, written as the ScanNet script reads.

    ``scores`` maps predicted id -> confidence; default = vertex count on annotated vertices.
    The AP is the sum over ranks of (recall step) x (max precision at this or later ranks),
    with the curve closed at (recall 1, precision 0).
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    iou, gt_ids, pred_ids, pred_v = _iou_matrix(pred, gt)
    G, P = iou.shape
    if P == 0:
        return 0.0
    if scores is None:
        sc = [float((pred_v == p).sum()) for p in pred_ids]
    else:
        sc = [float(scores[p]) for p in pred_ids]
    order = sorted(range(P), key=lambda j: (-sc[j], j))
    used = [False] * G
    precisions, recalls = [], []
    tp = 0
    for rank, j in enumerate(order):
        best_i, best_v = -1, -1.0
        for i in range(G):
            if not used[i] and iou[i, j] > best_v:
                best_i, best_v = i, iou[i, j]
        if best_i >= 0 and best_v > threshold:
            used[best_i] = True
            tp += 1
        precisions.append(tp / (rank + 1))
        recalls.append(tp / G)
    precisions.append(0.0)
    recalls.append(1.0)
    ap, prev_r = 0.0, 0.0
    for k in range(len(recalls)):
        ap += (recalls[k] - prev_r) * max(precisions[k:])
        prev_r = recalls[k]
    return ap


def text_query_ref(leaf_ind, leaf_feat, gt_sem, text_rows, class_ids: Sequence[int],
                   occu_count=None, min_views: int = 2) -> tuple[float, float]:
    """(mIoU, mAcc) following ``eval_semantic_seg.py`` step by step with explicit loops.

    ``text_rows`` is [K, D] in ``class_ids`` order.
    """
    leaf_ind, gt_sem = np.asarray(leaf_ind), np.asarray(gt_sem)
    feats = np.array(leaf_feat, np.float64)
    if occu_count is not None:
        for m in range(len(feats)):
            if occu_count[m] < min_views:
                feats[m] = 0.0
    text = np.array(text_rows, np.float64)
    K = len(class_ids)
    inst_cls = []
    for m in range(len(feats)):
        fn = feats[m] / max(np.linalg.norm(feats[m]), 1e-12)
        best_k, best_c = 0, None
        for k in range(K):
            c = float(fn @ (text[k] / max(np.linalg.norm(text[k]), 1e-12)))
            if best_c is None or c > best_c:
                best_k, best_c = k, c
        inst_cls.append(best_k)
    gt = np.zeros(len(gt_sem), np.int64)
    for k, cid in enumerate(class_ids):
        gt[gt_sem == cid] = k + 1
    pred = np.zeros(len(gt), np.int64)
    for n in range(len(gt)):
        i = leaf_ind[n]
        if 0 <= i < len(feats):
            pred[n] = inst_cls[i] + 1
        if gt[n] == 0:
            pred[n] = 0
    ious, accs = [], []
    for c in range(1, K + 1):
        g = gt == c
        if g.sum() == 0:
            continue
        p = pred == c
        ious.append(np.logical_and(g, p).sum() / np.logical_or(g, p).sum())
        accs.append(np.logical_and(g, p).sum() / g.sum())
    return float(np.mean(ious)), float(np.mean(accs))


def panoptic_quality_ref(pred, gt) -> tuple[float, float, float]:
    """(PQ, SQ, RQ) by the definition: every (GT, prediction) pair with IoU > 0.5 is matched,
    then TP / FP / FN are counted over the lists (Kirillov et al. 2019, class-agnostic)."""
    iou, gt_ids, pred_ids, _ = _iou_matrix(np.asarray(pred), np.asarray(gt))
    matched_gt, matched_pred, ious = set(), set(), []
    for a in range(len(gt_ids)):
        for b in range(len(pred_ids)):
            if iou[a, b] > 0.5:
                assert a not in matched_gt and b not in matched_pred  # unique by geometry
                matched_gt.add(a)
                matched_pred.add(b)
                ious.append(iou[a, b])
    tp = len(ious)
    fp = len(pred_ids) - len(matched_pred)
    fn = len(gt_ids) - len(matched_gt)
    if tp + fp + fn == 0:
        return 0.0, 0.0, 0.0
    sq = sum(ious) / tp if tp else 0.0
    rq = tp / (tp + 0.5 * fp + 0.5 * fn)
    return sq * rq, sq, rq
