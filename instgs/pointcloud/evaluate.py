"""Evaluators shared by the point-cloud networks (pure NumPy).

* :func:`scannet_instance_ap` — ScanNet v2 instance AP / AP50 / AP25, following the
  official benchmark script ``ScanNet/BenchmarkScripts/3d_evaluation/
  evaluate_semantic_instance.py`` (matching, void handling, PR-curve integration).
* :func:`s3dis_instance_metrics` — mCov, mWCov, mPrec, mRec as in ASIS / HAIS
  ``eval_s3dis`` (pointcloud-methods.md §C.4).
* :func:`semantic_metrics` — mIoU, mAcc, oAcc from a confusion matrix.

Instance predictions use one format everywhere: per scene a list of
:class:`InstancePred` (point mask, class index, confidence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from instgs.core.checks import InputError
from instgs.pointcloud.data.labels import (
    IGNORE_INDEX,
    S3DIS_NAMES,
    SCANNET20_NAMES,
    SCANNET_INSTANCE_CLASSES,
)

__all__ = [
    "InstancePred",
    "SCANNET_OVERLAPS",
    "scannet_instance_ap",
    "s3dis_instance_metrics",
    "semantic_metrics",
    "confusion_matrix",
    "instances_from_labels",
]

#: IoU thresholds of the ScanNet benchmark: 0.50, 0.55, ..., 0.95 and 0.25.
SCANNET_OVERLAPS = tuple(np.round(np.append(np.arange(0.5, 0.95, 0.05), 0.25), 2).tolist())


@dataclass
class InstancePred:
    """One predicted instance.

    Attributes:
        mask: [N] bool point mask, or int index array of the member points.
        label: class index (ScanNet20 0..19, S3DIS 0..12).
        score: confidence used for ranking (higher = more confident).
    """

    mask: np.ndarray
    label: int
    score: float


def _as_mask(mask: np.ndarray, n: int, where: str) -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype == bool:
        if m.shape != (n,):
            raise InputError(f"{where}: mask has shape {m.shape}, scene has {n} points", None,
                             "pass a [N] bool mask or an index array")
        return m
    idx = m.astype(np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise InputError(f"{where}: point index out of range 0..{n - 1}", None,
                         "pass indices of this scene's points")
    out = np.zeros(n, dtype=bool)
    out[idx] = True
    return out


def _gt_arrays(gt, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(gt, (tuple, list)) or len(gt) != 2:
        raise InputError(f"{where}: ground truth must be a (semantic, instance) pair")
    sem = np.asarray(gt[0]).astype(np.int64).reshape(-1)
    ins = np.asarray(gt[1]).astype(np.int64).reshape(-1)
    if sem.shape != ins.shape:
        raise InputError(f"{where}: semantic has {sem.size} points but instance has {ins.size}",
                         None, "pass per-point arrays of one scene")
    return sem, ins


def instances_from_labels(semantic: np.ndarray, instance: np.ndarray,
                          class_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """GT instances as the benchmark defines them: one per (instance id, class) pair.

    Args:
        semantic: [N] int class per point (-100 ignore).
        instance: [N] int instance id per point (< 0 = none).
        class_ids: evaluated classes.

    Returns:
        ``(gt_of_point [N] int64, gt_label [G] int64)``: index of the point's GT instance
        (-1 = void: unannotated, non-evaluated class, or no instance id) and each GT
        instance's class.
    """
    valid = (instance >= 0) & np.isin(semantic, np.asarray(class_ids, dtype=np.int64))
    gt_of_point = np.full(semantic.shape, -1, dtype=np.int64)
    if not valid.any():
        return gt_of_point, np.zeros(0, dtype=np.int64)
    key = instance[valid] * 1024 + semantic[valid]
    uniq, inv = np.unique(key, return_inverse=True)
    gt_of_point[valid] = inv
    return gt_of_point, (uniq % 1024).astype(np.int64)


def _pr_area(y_true: np.ndarray, y_score: np.ndarray, hard_fn: int) -> float:
    """Area under the PR curve exactly as the ScanNet benchmark integrates it."""
    order = np.argsort(y_score, kind="stable")
    ys = y_score[order]
    yt = y_true[order]
    cums = np.cumsum(yt)
    _, uniq_idx = np.unique(ys, return_index=True)
    n_pr = len(uniq_idx) + 1
    n_ex = len(ys)
    n_true = cums[-1] if len(cums) else 0
    precision = np.zeros(n_pr)
    recall = np.zeros(n_pr)
    cums = np.append(cums, 0)  # cums[-1] == 0 handles idx 0
    for k, idx in enumerate(uniq_idx):
        c = cums[idx - 1]
        tp = n_true - c
        fp = n_ex - idx - tp
        fn = c + hard_fn
        precision[k] = tp / (tp + fp)
        recall[k] = tp / (tp + fn) if tp + fn > 0 else 0.0
    precision[-1] = 1.0
    recall[-1] = 0.0
    r = np.concatenate([[recall[0]], recall, [0.0]])
    steps = np.convolve(r, [-0.5, 0, 0.5], "valid")
    return float(np.dot(precision, steps))


def scannet_instance_ap(preds_per_scene: Sequence[Sequence[InstancePred]],
                        gts_per_scene: Sequence[tuple[np.ndarray, np.ndarray]],
                        class_ids: Sequence[int] = SCANNET_INSTANCE_CLASSES,
                        class_names: Sequence[str] | None = None,
                        min_region_size: int = 100,
                        overlaps: Sequence[float] = SCANNET_OVERLAPS) -> dict:
    """ScanNet instance segmentation AP (official benchmark logic).

    Per scene, GT instances are (instance id, class) pairs of the evaluated classes with
    at least ``min_region_size`` points; points outside them with a non-evaluated or
    missing class are *void*. Predictions of other classes or with fewer than
    ``min_region_size`` points are dropped. For each class and IoU threshold ``t``:

    * each GT takes, among the not-yet-used predictions of its class that overlap it (in
      prediction order), the first with IoU ``> t`` as a true positive; further ones
      become false positives with the lower of the two scores (the GT keeps the higher);
    * a prediction matching no GT at IoU ``> t`` is a false positive unless the fraction
      of its points on void, on GT of other-than-evaluated ids or on too-small GT
      instances is ``> t`` (then it is ignored);
    * unmatched GT are "hard" false negatives; AP is the area under the precision /
      recall curve sampled at each unique score with a final (recall 0, precision 1)
      point, integrated with the benchmark's ``[-0.5, 0, 0.5]`` step rule.

    AP = nan-mean over classes and the thresholds other than 0.25; AP50 / AP25 = nan-mean
    over classes at 0.5 / 0.25. A class with GT but no prediction scores 0; a class
    without GT is NaN (skipped).

    Args:
        preds_per_scene: per scene, a list of :class:`InstancePred`.
        gts_per_scene: per scene, ``(semantic [N], instance [N])`` int arrays (class
            indices with -100 ignore; instance ids with < 0 none).
        class_ids: evaluated class indices (default: the 18 ScanNet instance classes
            2..19 of ScanNet20).
        class_names: names for ``per_class`` (default: ScanNet20 names, else str(id)).
        min_region_size: minimum points of GT and predicted instances (benchmark: 100;
            scale it with the point density of subsampled scenes).
        overlaps: IoU thresholds; must contain 0.5 and 0.25 for AP50 / AP25.

    Returns:
        dict with ``AP``, ``AP50``, ``AP25`` (floats in [0, 1]), ``per_class``
        ``{name: {"AP", "AP50", "AP25"}}`` and ``ap_table`` [num_classes, num_overlaps].

    Raises:
        InputError: different numbers of scenes, mask/GT length mismatches, bad indices.

    References:
        ScanNet benchmark ``evaluate_semantic_instance.py`` (``assign_instances_for_scan``,
        ``evaluate_matches``, ``compute_averages``); HAIS ``util/eval.py``.
    """
    if len(preds_per_scene) != len(gts_per_scene):
        raise InputError(f"{len(preds_per_scene)} prediction lists for {len(gts_per_scene)} "
                         "ground-truth scenes", None, "pass one list per scene, in order")
    class_ids = [int(c) for c in class_ids]
    if class_names is None:
        class_names = [SCANNET20_NAMES[c] if 0 <= c < 20 else str(c) for c in class_ids]
    overlaps = [float(o) for o in overlaps]
    cls_pos = {c: k for k, c in enumerate(class_ids)}
    scenes = [_assign_scene(preds, gt, f"scene {s}", class_ids, cls_pos, min_region_size)
              for s, (preds, gt) in enumerate(zip(preds_per_scene, gts_per_scene))]
    ap = _evaluate_matches(scenes, class_ids, overlaps, min_region_size)
    return _compute_averages(ap, overlaps, class_names)


def _assign_scene(preds: Sequence[InstancePred], gt, where: str, class_ids: list[int],
                  cls_pos: dict[int, int], min_region_size: int) -> tuple:
    """One scene's GT instances and kept predictions (``assign_instances_for_scan``).

    Returns:
        ``(gt_label [G], gt_size [G], p_list)``; each prediction a dict with ``label``,
        ``score``, ``size``, ``void`` (points on void), ``gts`` (overlapping GT of its
        class) and ``inter`` (intersections with them).
    """
    sem, ins = _gt_arrays(gt, where)
    n = sem.size
    gt_of_point, gt_label = instances_from_labels(sem, ins, class_ids)
    gt_size = np.bincount(gt_of_point[gt_of_point >= 0], minlength=len(gt_label))
    void = gt_of_point < 0
    p_list = []
    for k, p in enumerate(preds):
        if int(p.label) not in cls_pos:
            continue
        m = _as_mask(p.mask, n, f"{where} prediction {k}")
        cnt = int(m.sum())
        if cnt < min_region_size:
            continue
        hit = gt_of_point[m]
        inter = np.bincount(hit[hit >= 0], minlength=len(gt_label))
        same = np.flatnonzero((inter > 0) & (gt_label == int(p.label)))
        p_list.append({"label": int(p.label), "score": float(p.score), "size": cnt,
                       "void": int(void[m].sum()), "gts": same, "inter": inter[same]})
    return gt_label, gt_size, p_list


def _match_gts(gts: np.ndarray, pidx: list[int], p_list: list[dict], gt_size: np.ndarray,
               visited: np.ndarray, th: float) -> tuple[list[float], list[float], int]:
    """Greedy GT -> prediction matching of one class in one scene at IoU ``> th``.

    Returns:
        ``(y_true, y_score, hard_fn)`` of the matched GT (plus duplicate false positives);
        ``visited`` marks the predictions used.
    """
    cur_true = [1.0] * len(gts)
    cur_score = [-np.inf] * len(gts)
    cur_match = [False] * len(gts)
    hard_fn = 0
    for gi, g in enumerate(gts):
        found = False
        for k in pidx:  # predictions overlapping g, in prediction order
            p = p_list[k]
            hit = np.flatnonzero(p["gts"] == g)
            if len(hit) == 0 or visited[k]:
                continue
            inter = p["inter"][hit[0]]
            iou = inter / (gt_size[g] + p["size"] - inter)
            if iou > th:
                if cur_match[gi]:
                    lo = min(cur_score[gi], p["score"])
                    cur_score[gi] = max(cur_score[gi], p["score"])
                    cur_true.append(0.0)
                    cur_score.append(lo)
                    cur_match.append(True)
                else:
                    found = True
                    cur_match[gi] = True
                    cur_score[gi] = p["score"]
                    visited[k] = True
        if not found:
            hard_fn += 1
    keep = np.asarray(cur_match, dtype=bool)
    return (list(np.asarray(cur_true)[keep]), list(np.asarray(cur_score)[keep]), hard_fn)


def _unmatched_fps(pidx: list[int], p_list: list[dict], gt_size: np.ndarray, th: float,
                   min_region_size: int) -> list[float]:
    """Scores of the predictions matching no GT at IoU ``> th`` that are false positives
    (not mostly on void or on too-small GT)."""
    scores = []
    for k in pidx:
        p = p_list[k]
        ious = p["inter"] / (gt_size[p["gts"]] + p["size"] - p["inter"])
        if (ious > th).any():
            continue
        ignored = p["void"] + int(p["inter"][gt_size[p["gts"]] < min_region_size].sum())
        if ignored / p["size"] <= th:
            scores.append(p["score"])
    return scores


def _evaluate_matches(scenes: list[tuple], class_ids: list[int], overlaps: list[float],
                      min_region_size: int) -> np.ndarray:
    """AP per class and threshold (``evaluate_matches``): [num_classes, num_overlaps]."""
    ap = np.full((len(class_ids), len(overlaps)), np.nan)
    for oi, th in enumerate(overlaps):
        visited = [np.zeros(len(pl), dtype=bool) for _, _, pl in scenes]
        for ci, c in enumerate(class_ids):
            y_true, y_score = [], []
            hard_fn = 0
            has_gt = has_pred = False
            for si, (gt_label, gt_size, p_list) in enumerate(scenes):
                gts = np.flatnonzero((gt_label == c) & (gt_size >= min_region_size))
                pidx = [k for k, p in enumerate(p_list) if p["label"] == c]
                has_gt |= len(gts) > 0
                has_pred |= len(pidx) > 0
                t, sc, fn = _match_gts(gts, pidx, p_list, gt_size, visited[si], th)
                y_true += t
                y_score += sc
                hard_fn += fn
                fps = _unmatched_fps(pidx, p_list, gt_size, th, min_region_size)
                y_true += [0.0] * len(fps)
                y_score += fps
            if has_gt and has_pred:
                ap[ci, oi] = _pr_area(np.asarray(y_true), np.asarray(y_score), hard_fn)
            elif has_gt:
                ap[ci, oi] = 0.0
    return ap


def _nanmean(a) -> float:
    a = np.asarray(a, dtype=float)
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


def _compute_averages(ap: np.ndarray, overlaps: list[float],
                      class_names: Sequence[str]) -> dict:
    """AP / AP50 / AP25 overall and per class from the AP table (``compute_averages``)."""
    ov = np.asarray(overlaps)
    o50 = np.isclose(ov, 0.5)
    o25 = np.isclose(ov, 0.25)
    rest = ~o25
    per_class = {
        name: {"AP": _nanmean(ap[ci, rest]) if rest.any() else float("nan"),
               "AP50": _nanmean(ap[ci, o50]) if o50.any() else float("nan"),
               "AP25": _nanmean(ap[ci, o25]) if o25.any() else float("nan")}
        for ci, name in enumerate(class_names)
    }
    return {"AP": _nanmean(ap[:, rest]) if rest.any() else float("nan"),
            "AP50": _nanmean(ap[:, o50]) if o50.any() else float("nan"),
            "AP25": _nanmean(ap[:, o25]) if o25.any() else float("nan"),
            "per_class": per_class, "ap_table": ap, "overlaps": tuple(overlaps)}


def _room_iou(preds: Sequence[InstancePred], gt: tuple[np.ndarray, np.ndarray],
              num_classes: int, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """IoU of one room's predictions with its GT instances.

    Returns:
        ``(iou [P, G] float, pred labels [P] int64, gt labels [G] int64, gt sizes [G])``.

    Raises:
        InputError: a label outside 0..C-1 or a mask of the wrong length (room ``s``).
    """
    sem, ins = _gt_arrays(gt, f"room {s}")
    n = sem.size
    gt_of_point, gt_label = instances_from_labels(sem, ins, range(num_classes))
    gt_size = np.bincount(gt_of_point[gt_of_point >= 0], minlength=len(gt_label))
    masks, labels = [], []
    for k, p in enumerate(preds):
        if not 0 <= int(p.label) < num_classes:
            raise InputError(f"room {s} prediction {k}: label {p.label} outside "
                             f"0..{num_classes - 1}")
        masks.append(_as_mask(p.mask, n, f"room {s} prediction {k}"))
        labels.append(int(p.label))
    labels = np.asarray(labels, dtype=np.int64)
    if not (masks and len(gt_label)):
        return np.zeros((len(masks), len(gt_label))), labels, gt_label, gt_size
    pm = np.stack(masks)
    inter = np.zeros((len(masks), len(gt_label)))
    for k in range(len(masks)):
        hit = gt_of_point[pm[k]]
        inter[k] = np.bincount(hit[hit >= 0], minlength=len(gt_label))
    union = pm.sum(1)[:, None] + gt_size[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0), labels, gt_label, gt_size


def s3dis_instance_metrics(preds_per_scene: Sequence[Sequence[InstancePred]],
                           gts_per_scene: Sequence[tuple[np.ndarray, np.ndarray]],
                           num_classes: int = 13, class_names: Sequence[str] | None = None,
                           iou_threshold: float = 0.5) -> dict:
    """S3DIS instance metrics mCov, mWCov, mPrec, mRec (ASIS / HAIS evaluation).

    Per room and class c with GT instances G_c and predictions O_c (predictions of class
    c): ``Cov = mean_g max_o IoU(g, o)``, ``WCov = sum_g w_g max_o IoU(g, o)`` with
    ``w_g = |g| / sum |g'|``; both averaged over the rooms that contain class c. A
    prediction is a TP if its best IoU with a GT of its class is ``>= iou_threshold``;
    ``Prec_c = TP / |O_c|`` and ``Rec_c = TP / |G_c|`` summed over all rooms. The m-values
    are means over the classes that have GT (precision over classes with predictions).

    Args:
        preds_per_scene: per room, a list of :class:`InstancePred` (labels 0..C-1).
        gts_per_scene: per room, ``(semantic [N], instance [N])`` (instance < 0 = none;
            a GT instance is an (instance id, class) pair).
        num_classes: C (13 for S3DIS).
        class_names: names for ``per_class`` (default: S3DIS names when C = 13).
        iou_threshold: TP threshold (0.5).

    Returns:
        dict with ``mCov``, ``mWCov``, ``mPrec``, ``mRec`` and ``per_class``
        ``{name: {"Cov", "WCov", "Prec", "Rec"}}`` (NaN where undefined).

    Raises:
        InputError: scene count or length mismatches.

    References:
        Wang et al., ASIS (CVPR 2019) ``eval_iou_accuracy.py``; HAIS Table 2.
    """
    if len(preds_per_scene) != len(gts_per_scene):
        raise InputError(f"{len(preds_per_scene)} prediction lists for {len(gts_per_scene)} "
                         "ground-truth rooms", None, "pass one list per room, in order")
    if class_names is None:
        class_names = S3DIS_NAMES if num_classes == 13 else [str(c) for c in range(num_classes)]
    covs = [[] for _ in range(num_classes)]
    wcovs = [[] for _ in range(num_classes)]
    tp = np.zeros(num_classes)
    npred = np.zeros(num_classes)
    ngt = np.zeros(num_classes)
    for s, (preds, gt) in enumerate(zip(preds_per_scene, gts_per_scene)):
        iou, labels, gt_label, gt_size = _room_iou(preds, gt, num_classes, s)
        for c in range(num_classes):
            g = np.flatnonzero(gt_label == c)
            o = np.flatnonzero(labels == c)
            sub = iou[np.ix_(o, g)]
            if len(g):
                best = sub.max(0) if len(o) else np.zeros(len(g))
                covs[c].append(best.mean())
                w = gt_size[g] / gt_size[g].sum()
                wcovs[c].append(float((best * w).sum()))
                ngt[c] += len(g)
            if len(o):
                npred[c] += len(o)
                if len(g):
                    tp[c] += int((sub.max(1) >= iou_threshold).sum())

    def _m(v):
        v = np.asarray(v, dtype=float)
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    cov = np.array([np.mean(v) if v else np.nan for v in covs])
    wcov = np.array([np.mean(v) if v else np.nan for v in wcovs])
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(npred > 0, tp / np.maximum(npred, 1), np.nan)
        rec = np.where(ngt > 0, tp / np.maximum(ngt, 1), np.nan)
    per_class = {name: {"Cov": float(cov[c]), "WCov": float(wcov[c]), "Prec": float(prec[c]),
                        "Rec": float(rec[c])} for c, name in enumerate(class_names)}
    return {"mCov": _m(cov), "mWCov": _m(wcov), "mPrec": _m(prec), "mRec": _m(rec),
            "per_class": per_class}


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                     ignore: int = IGNORE_INDEX) -> np.ndarray:
    """[C, C] int64 counts ``M[g, p]`` over points with ``gt != ignore``.

    Predictions outside 0..C-1 (e.g. -100) are in no column (see :func:`semantic_metrics`,
    which counts them as wrong for the GT class).

    Raises:
        InputError: ``pred`` and ``gt`` differ in length; GT labels outside 0..C-1.
    """
    return _confusion(pred, gt, num_classes, ignore)[0]


def _confusion(pred, gt, num_classes, ignore):
    p = np.asarray(pred).astype(np.int64).reshape(-1)
    g = np.asarray(gt).astype(np.int64).reshape(-1)
    if p.shape != g.shape:
        raise InputError(f"pred has {p.size} points but gt has {g.size}", None,
                         "pass per-point labels of the same scene")
    keep = g != ignore
    p, g = p[keep], g[keep]
    if g.size and (g.min() < 0 or g.max() >= num_classes):
        raise InputError(f"gt labels must be 0..{num_classes - 1} or {ignore}")
    ok = (p >= 0) & (p < num_classes)
    m = np.bincount(g[ok] * num_classes + p[ok], minlength=num_classes * num_classes)
    m = m.reshape(num_classes, num_classes)
    missed = np.bincount(g[~ok], minlength=num_classes)
    return m, missed


def semantic_metrics(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                     ignore: int = IGNORE_INDEX, class_names: Sequence[str] | None = None
                     ) -> dict:
    """Semantic segmentation mIoU, mAcc, oAcc (accumulate scenes by concatenating them).

    ``IoU_c = TP / (TP + FP + FN)``, ``Acc_c = TP / (TP + FN)`` (class recall),
    ``oAcc = correct / labelled points``. Points with ``gt == ignore`` are skipped;
    classes without GT points and without predictions are NaN and left out of the means.

    Args:
        pred: [N] int predicted class per point.
        gt: [N] int GT class per point (``ignore`` = unlabelled).
        num_classes: C.
        ignore: ignore label (-100).
        class_names: names for ``per_class``.

    Returns:
        dict with ``mIoU``, ``mAcc``, ``oAcc`` (floats in [0, 1]), ``per_class``
        ``{name: {"IoU", "Acc"}}`` and ``confusion`` [C, C].

    Raises:
        InputError: length mismatch or GT labels out of range.
    """
    m, missed = _confusion(pred, gt, num_classes, ignore)
    tp = np.diag(m).astype(float)
    gt_count = m.sum(1) + missed
    pred_count = m.sum(0)
    union = gt_count + pred_count - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
        acc = np.where(gt_count > 0, tp / np.maximum(gt_count, 1), np.nan)
    total = gt_count.sum()
    names = class_names or [str(c) for c in range(num_classes)]

    def _m(v):
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    return {"mIoU": _m(iou), "mAcc": _m(acc),
            "oAcc": float(tp.sum() / total) if total else float("nan"),
            "per_class": {n: {"IoU": float(iou[c]), "Acc": float(acc[c])}
                          for c, n in enumerate(names)},
            "confusion": m}
