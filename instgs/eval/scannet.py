"""ScanNet evaluators: class-agnostic instance mIoU/m50/m25, one-to-one AP25/AP50, text queries.

Two protocols are reproduced exactly, quirks included (``docs/evaluation.md``,
``reference-implementations.md`` §7c), and one corrected variant is reported separately:

* :func:`instance_miou` -- InstanceGaussian ``eval_instance_seg.py`` (the paper's Tab. 1):
  GT instance = annotated instance id per vertex (wall and floor included, unannotated
  vertices excluded); per GT instance the best IoU over *all* predicted clusters (no
  one-to-one matching, so one big prediction may "match" many GT instances); mIoU = mean of
  those maxima, m50 / m25 = fraction of GT instances whose best IoU is > 0.5 / > 0.25 (the
  paper's "mAcc" column is m25).
* :func:`instance_matching` -- the corrected variant: one-to-one Hungarian matching
  (maximum total IoU, ``scipy.optimize.linear_sum_assignment``) for matched mIoU /
  precision / recall / F1, and ScanNet-benchmark-style AP25 / AP50 with the usual greedy
  matching of predictions in descending confidence order; and class-agnostic panoptic
  quality (Kirillov et al., "Panoptic Segmentation", CVPR 2019): pairs with IoU > 0.5 are
  unique, TP = those pairs, FP = other predictions, FN = other GT instances,
  SQ = mean IoU of the TP, RQ = TP / (TP + FP/2 + FN/2), PQ = SQ x RQ. Unlike the published
  protocol, these count every extra (false) instance.
* :func:`text_query_scores` -- InstanceGaussian ``eval_semantic_seg.py`` = OpenGaussian
  ``scripts/eval_scannet.py`` (19 / 15 / 10 classes): instances with fewer than 2 matched
  views get a zero feature, cosine 0 to every class, and ``argmax`` returns class index 0
  -- they are predicted as **wall**; ``pred[gt == 0] = 0``; IoU and accuracy are averaged
  over the classes present in the scene's GT.

All metrics are returned as fractions in [0, 1]; the CLI prints percentages.
Every function here has a loop twin in :mod:`instgs.eval._reference`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping, Sequence

import numpy as np

from instgs.core.checks import InputError

__all__ = ["NYU40_NAMES", "CLASS_SETS", "InstanceMetrics", "MatchingMetrics",
           "TextQueryMetrics", "overlap_pairs", "instance_miou", "instance_matching",
           "average_precision", "panoptic_quality", "classify_instances",
           "text_query_scores"]

# NYU40 id -> class name, spelled as OpenGaussian's ``nyu40_dict`` and as the keys of its
# ``assets/text_features.json`` (e.g. "showercurtain", "refrigerator").
NYU40_NAMES: dict[int, str] = {
    1: "wall", 2: "floor", 3: "cabinet", 4: "bed", 5: "chair", 6: "sofa", 7: "table",
    8: "door", 9: "window", 10: "bookshelf", 11: "picture", 12: "counter", 13: "blinds",
    14: "desk", 15: "shelves", 16: "curtain", 17: "dresser", 18: "pillow", 19: "mirror",
    20: "floormat", 21: "clothes", 22: "ceiling", 23: "books", 24: "refrigerator",
    25: "television", 26: "paper", 27: "towel", 28: "showercurtain", 29: "box",
    30: "whiteboard", 31: "person", 32: "nightstand", 33: "toilet", 34: "sink", 35: "lamp",
    36: "bathtub", 37: "bag", 38: "otherstructure", 39: "otherfurniture", 40: "otherprop",
}

# The class sets of OpenGaussian / InstanceGaussian's text-query tables (NYU40 ids, in the
# order the scripts use; the order matters: ties in argmax go to the first class, "wall").
CLASS_SETS: dict[int, tuple[int, ...]] = {
    19: (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36),
    15: (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 33, 34),
    10: (1, 2, 4, 5, 6, 7, 8, 9, 10, 33),
}


@dataclass(frozen=True)
class InstanceMetrics:
    """Published class-agnostic protocol (best IoU per GT instance, no one-to-one matching).

    Attributes:
        miou: mean over GT instances of the best IoU, in [0, 1].
        m50: fraction of GT instances with best IoU > 0.5.
        m25: fraction of GT instances with best IoU > 0.25 (the paper's "mAcc").
        best_iou: [G] float64, best IoU per GT instance, in ``gt_ids`` order.
        gt_ids: [G] int64, the GT instance ids (sorted).
        num_gt: G.
        num_pred: number of distinct predicted ids on annotated vertices.
    """

    miou: float
    m50: float
    m25: float
    best_iou: np.ndarray
    gt_ids: np.ndarray
    num_gt: int
    num_pred: int


@dataclass(frozen=True)
class MatchingMetrics:
    """One-to-one matched variant (reported separately from the published protocol).

    Attributes:
        matched_miou: sum of Hungarian-matched IoUs / G (unmatched GT count as 0).
        precision: {threshold: TP / P} with TP = Hungarian pairs with IoU > threshold.
        recall: {threshold: TP / G}.
        f1: {threshold: harmonic mean of precision and recall}.
        ap: {threshold: ScanNet-style average precision}; keys 0.25 and 0.5 by default.
        num_gt: G.
        num_pred: P (distinct predicted ids on annotated vertices).
        pq, sq, rq: class-agnostic panoptic quality and its segmentation / recognition
            factors (one-to-one at IoU > 0.5; module docstring), in [0, 1].
    """

    matched_miou: float
    precision: dict[float, float]
    recall: dict[float, float]
    f1: dict[float, float]
    ap: dict[float, float]
    num_gt: int
    num_pred: int
    pq: float = 0.0
    sq: float = 0.0
    rq: float = 0.0


@dataclass(frozen=True)
class TextQueryMetrics:
    """Text-query semantic segmentation for one class set.

    Attributes:
        num_classes: size of the class set (19, 15 or 10 for the standard sets).
        miou: mean IoU over the classes present in the GT, in [0, 1].
        macc: mean accuracy (recall) over the classes present in the GT.
        per_class: {class name: {"iou": float, "acc": float}} for the present classes.
        instance_class: [M] int64, class index (0-based into the class set) per instance.
    """

    num_classes: int
    miou: float
    macc: float
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    instance_class: np.ndarray | None = None


def _as_labels(name: str, a, n: int | None = None) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise InputError(f"{name} must be one label per vertex, shape (N,), got {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        if a.size and not np.all(np.equal(np.mod(a, 1), 0)):
            raise InputError(f"{name} must hold integer ids, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if n is not None and a.shape[0] != n:
        raise InputError(f"{name} has {a.shape[0]} entries but the GT has {n} vertices",
                         fix="predictions must be one id per GT vertex, in the GT's vertex order")
    return a


def overlap_pairs(pred: np.ndarray, gt: np.ndarray):
    """Sparse GT x prediction confusion counts on annotated vertices (``gt > 0``).

    Vertices with ``pred < 0`` (unassigned) count in their GT instance's size only.

    Args:
        pred: [N] int, predicted instance id per vertex; negative = unassigned.
        gt: [N] int, GT instance id per vertex; 0 (or negative) = unannotated, excluded.

    Returns:
        ``(gt_ids [G], pred_ids [P], gi [E], pj [E], inter [E], gt_size [G], pred_size [P])``:
        the sorted distinct ids, the (GT index, prediction index) pairs with a non-zero
        intersection, the intersection counts and the sizes (all int64, vertex counts).
        Sizes are restricted to annotated vertices, as in the published protocol.
    """
    valid = gt > 0
    g_all = gt[valid]
    p_all = pred[valid]
    gt_ids, g = np.unique(g_all, return_inverse=True)
    has_p = p_all >= 0
    pred_ids, p = np.unique(p_all[has_p], return_inverse=True)
    G, P = len(gt_ids), len(pred_ids)
    gt_size = np.bincount(g, minlength=G).astype(np.int64)
    pred_size = np.bincount(p, minlength=P).astype(np.int64)
    keys, inter = np.unique(g[has_p] * max(P, 1) + p, return_counts=True)
    gi, pj = np.divmod(keys, max(P, 1))
    return gt_ids, pred_ids, gi, pj, inter.astype(np.int64), gt_size, pred_size


def instance_miou(pred, gt) -> InstanceMetrics:
    """Class-agnostic instance mIoU / m50 / m25 with InstanceGaussian's published protocol.

    Reproduces ``eval_instance_seg.py`` of ``lhj-git/InstanceGasuusian_code`` for one scene,
    with an O(N log N) sparse confusion matrix instead of its O(G·P·N) double loop.

    Args:
        pred: [N] int, predicted instance id per vertex (any integers; negative = none).
        gt: [N] int, GT instance id per vertex (aggregation group / mmdet3d
            ``ins_label_all``), 0 = unannotated (excluded).

    Returns:
        :class:`InstanceMetrics` (fractions in [0, 1]).

    Raises:
        InputError: shapes differ, ids are not integers, or the GT has no instance.
    """
    gt = _as_labels("gt instance labels", gt)
    pred = _as_labels("predicted labels", pred, gt.shape[0])
    gt_ids, pred_ids, gi, pj, inter, gsz, psz = overlap_pairs(pred, gt)
    if len(gt_ids) == 0:
        raise InputError("the GT has no annotated instance (all ids are 0)")
    iou = inter / (gsz[gi] + psz[pj] - inter)
    best = np.zeros(len(gt_ids))
    np.maximum.at(best, gi, iou)
    return InstanceMetrics(
        miou=float(best.mean()), m50=float((best > 0.5).mean()), m25=float((best > 0.25).mean()),
        best_iou=best, gt_ids=gt_ids, num_gt=len(gt_ids), num_pred=len(pred_ids))


def average_precision(iou: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """ScanNet-benchmark-style AP for one class from a dense GT x prediction IoU matrix.

    Predictions are visited in descending ``scores`` (ties: lower index first); each takes
    the still-unmatched GT instance with the highest IoU if that IoU is > ``threshold``
    (true positive), else it is a false positive. The precision-recall curve is closed with
    the point (recall 1, precision 0), made monotone (precision envelope) and integrated
    over recall steps -- ``ScanNet/BenchmarkScripts/3d_evaluation/evaluate_semantic_instance.py``
    and Pointcept's ``InsSegEvaluator`` do the same (without their ignore-region rules,
    which need no handling here because predictions are restricted to annotated vertices).

    Args:
        iou: [G, P] float IoU matrix.
        scores: [P] float confidence per prediction.
        threshold: IoU threshold (strictly greater counts), e.g. 0.25 or 0.5.

    Returns:
        AP in [0, 1]; 0 when there are no predictions; NaN when there is no GT.
    """
    G, P = iou.shape
    if G == 0:
        return float("nan")
    if P == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    free = np.ones(G, bool)
    tp = np.zeros(P)
    for rank, j in enumerate(order):
        col = np.where(free, iou[:, j], -1.0)
        i = int(np.argmax(col))
        if col[i] > threshold:
            free[i] = False
            tp[rank] = 1.0
    ctp = np.cumsum(tp)
    precision = ctp / np.arange(1, P + 1)
    recall = ctp / G
    # close the curve and take the precision envelope (monotone non-increasing)
    precision = np.concatenate([precision, [0.0]])
    recall = np.concatenate([recall, [1.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * precision))


def instance_matching(pred, gt, scores: Mapping[int, float] | np.ndarray | None = None,
                      thresholds: Sequence[float] = (0.25, 0.5)) -> MatchingMetrics:
    """One-to-one matched class-agnostic metrics: Hungarian mIoU/P/R/F1 and AP25/AP50.

    Unlike :func:`instance_miou`, a prediction can be credited to at most one GT instance.
    Predictions are restricted to annotated vertices (``gt > 0``), as in the published
    protocol; predictions with no annotated vertex are dropped.

    Args:
        pred: [N] int, predicted instance id per vertex; negative = unassigned.
        gt: [N] int, GT instance id per vertex; 0 = unannotated.
        scores: confidence per predicted id, as a mapping id -> score or an array indexed
            by id; default = the prediction's vertex count (bigger first), since bottom-up
            clusterings carry no confidence. Only the AP depends on it.
        thresholds: IoU thresholds (strictly greater counts).

    Returns:
        :class:`MatchingMetrics`.

    Raises:
        InputError: as :func:`instance_miou`.
    """
    from scipy.optimize import linear_sum_assignment

    gt = _as_labels("gt instance labels", gt)
    pred = _as_labels("predicted labels", pred, gt.shape[0])
    gt_ids, pred_ids, gi, pj, inter, gsz, psz = overlap_pairs(pred, gt)
    G, P = len(gt_ids), len(pred_ids)
    if G == 0:
        raise InputError("the GT has no annotated instance (all ids are 0)")
    iou = np.zeros((G, P))
    iou[gi, pj] = inter / (gsz[gi] + psz[pj] - inter)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    matched = iou[rows, cols]
    if scores is None:
        sc = psz.astype(np.float64)
    elif isinstance(scores, Mapping):
        sc = np.array([float(scores[int(k)]) for k in pred_ids])
    else:
        sc = np.asarray(scores, np.float64)[pred_ids]
    prec, rec, f1, ap = {}, {}, {}, {}
    for t in thresholds:
        tp = float((matched > t).sum())
        prec[t] = tp / P if P else 0.0
        rec[t] = tp / G
        f1[t] = 0.0 if tp == 0 else 2 * prec[t] * rec[t] / (prec[t] + rec[t])
        ap[t] = average_precision(iou, sc, t)
    pq, sq, rq = panoptic_quality(iou)
    return MatchingMetrics(matched_miou=float(matched.sum() / G), precision=prec, recall=rec,
                           f1=f1, ap=ap, num_gt=G, num_pred=P, pq=pq, sq=sq, rq=rq)


def panoptic_quality(iou: np.ndarray) -> tuple[float, float, float]:
    """Class-agnostic (PQ, SQ, RQ) from a GT x prediction IoU matrix (Kirillov et al. 2019).

    A pair with IoU > 0.5 is a true positive; at most one such pair exists per GT instance
    and per prediction (the GT instances are disjoint, and so are the predictions; a set
    cannot overlap two disjoint sets each by IoU > 0.5), so no assignment is needed.
    FP = predictions in no pair, FN = GT instances in none.

    Args:
        iou: [G, P] float IoU matrix.

    Returns:
        (PQ, SQ, RQ) in [0, 1]: SQ = mean IoU of the true positives (0 without any),
        RQ = TP / (TP + FP/2 + FN/2), PQ = SQ x RQ; all 0 when G + P = 0.
    """
    G, P = iou.shape
    tp_iou = iou[iou > 0.5]
    tp = len(tp_iou)
    denom = tp + 0.5 * (P - tp) + 0.5 * (G - tp)
    if denom == 0:
        return 0.0, 0.0, 0.0
    sq = float(tp_iou.mean()) if tp else 0.0
    rq = tp / denom
    return sq * rq, sq, rq


def _normalize_rows(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    # torch.nn.functional.normalize semantics: x / max(||x||, eps); zero rows stay zero.
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def classify_instances(instance_features, text_features, view_counts=None,
                       min_views: int = 2) -> np.ndarray:
    """Class index per instance by cosine similarity, with the released "zeroed -> wall" quirk.

    Args:
        instance_features: [M, D] float per-instance CLIP image features (any norm).
        text_features: [K, D] float, one row per class of the class set, in set order.
        view_counts: [M] number of views each instance was matched in (``occu_count``);
            rows with ``view_counts < min_views`` are zeroed first, as the released scripts
            do. None: nothing is zeroed.
        min_views: the threshold (2 on ScanNet in InstanceGaussian and OpenGaussian).

    Returns:
        [M] int64 in [0, K): ``argmax`` over classes of the cosine. Zero features have cosine
        0 to every class and ``argmax`` returns 0, the first class of the set ("wall").
    """
    f = np.asarray(instance_features, np.float64).copy()
    t = np.asarray(text_features, np.float64)
    if f.ndim != 2 or t.ndim != 2 or f.shape[1] != t.shape[1]:
        raise InputError(f"instance features {f.shape} and text features {t.shape} must be "
                         "[M, D] and [K, D] with the same D")
    if view_counts is not None:
        vc = np.asarray(view_counts)
        if vc.shape != (f.shape[0],):
            raise InputError(f"view counts have shape {vc.shape}, expected ({f.shape[0]},)")
        f[vc < min_views] = 0.0
    cos = _normalize_rows(f) @ _normalize_rows(t).T  # [M, K]
    return np.argmax(cos, axis=1).astype(np.int64)


def text_query_scores(pred_instance, instance_features, gt_semantic,
                      text_features: Mapping[str, Sequence[float]] | np.ndarray,
                      class_ids: Sequence[int] = CLASS_SETS[19], view_counts=None,
                      min_views: int = 2) -> TextQueryMetrics:
    """Open-vocabulary text-query mIoU / mAcc with the released InstanceGaussian protocol.

    Args:
        pred_instance: [N] int, instance id per vertex, indexing rows of
            ``instance_features`` (``leaf_ind``). Ids outside [0, M) (e.g. -1 = unassigned)
            get no class (0), so they count as misses.
        instance_features: [M, 512] float, CLIP feature per instance (``leaf_feat``).
        gt_semantic: [N] int, NYU40 id per vertex, 0 = unannotated.
        text_features: {name: [512] floats} keyed by the NYU40 names of :data:`NYU40_NAMES`
            (the OpenGaussian ``text_features.json``), or a [K, 512] array in ``class_ids``
            order.
        class_ids: NYU40 ids of the class set, in order (:data:`CLASS_SETS`).
        view_counts: [M] matched-view counts (``occu_count``); see :func:`classify_instances`.
        min_views: zeroing threshold (2 on ScanNet).

    Returns:
        :class:`TextQueryMetrics` (fractions in [0, 1]).

    Raises:
        InputError: a class name is missing from ``text_features``, shapes disagree, or no
            class of the set is present in the GT.
    """
    gt_sem = _as_labels("gt semantic labels", gt_semantic)
    inst = _as_labels("predicted instance ids", pred_instance, gt_sem.shape[0])
    class_ids = tuple(int(c) for c in class_ids)
    names = [NYU40_NAMES.get(c, str(c)) for c in class_ids]
    if isinstance(text_features, Mapping):
        missing = [n for n in names if n not in text_features]
        if missing:
            raise InputError(f"text features lack the classes {missing}",
                             fix="use a text-feature JSON keyed by NYU40 names "
                                 f"(available keys include {sorted(text_features)[:8]} ...)")
        t = np.stack([np.asarray(text_features[n], np.float64) for n in names])
    else:
        t = np.asarray(text_features, np.float64)
        if t.shape[0] != len(class_ids):
            raise InputError(f"text features have {t.shape[0]} rows for {len(class_ids)} classes")
    K = len(class_ids)
    feats = np.asarray(instance_features)
    M = feats.shape[0]
    cls = classify_instances(feats, t, view_counts, min_views)  # [M] in [0, K)
    # GT remapped to 1..K for the set's classes, 0 otherwise.
    lut = np.zeros(max(max(class_ids), int(gt_sem.max(initial=0))) + 1, np.int64)
    lut[list(class_ids)] = np.arange(1, K + 1)
    gt = np.where(gt_sem >= 0, lut[np.clip(gt_sem, 0, None)], 0)
    ok = (inst >= 0) & (inst < M)
    pred = np.zeros_like(gt)
    pred[ok] = cls[inst[ok]] + 1
    pred[gt == 0] = 0
    conf = np.bincount(gt * (K + 1) + pred, minlength=(K + 1) ** 2).reshape(K + 1, K + 1)
    inter = np.diag(conf)[1:].astype(np.float64)
    gt_n = conf.sum(1)[1:].astype(np.float64)
    pred_n = conf.sum(0)[1:].astype(np.float64)
    present = gt_n > 0
    if not present.any():
        raise InputError(f"none of the classes {names} occurs in the GT")
    iou = inter[present] / (gt_n + pred_n - inter)[present]
    acc = inter[present] / gt_n[present]
    per_class = {names[c]: {"iou": float(i), "acc": float(a)}
                 for c, i, a in zip(np.flatnonzero(present), iou, acc)}
    return TextQueryMetrics(num_classes=K, miou=float(iou.mean()), macc=float(acc.mean()),
                            per_class=per_class, instance_class=cls)
