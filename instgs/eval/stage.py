"""The ScanNet evaluation stage: ``instgs eval scannet`` as functions.

:func:`evaluate_scannet` computes every metric of one scene as plain data,
:func:`format_table` prints it, :func:`run_scannet` reads a run (through :mod:`instgs.run`)
or predictions made elsewhere, evaluates and writes the JSON (docs/evaluation.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from collections.abc import Sequence

import numpy as np

from instgs.core.checks import InputError
from instgs.run import save_eval

from .io import (
    Language,
    load_cluster_lang,
    load_pred_labels,
    load_run_language,
    load_scannet_gt,
    load_text_features,
)
from .scannet import CLASS_SETS, instance_matching, instance_miou, text_query_scores

__all__ = ["evaluate_scannet", "format_table", "run_scannet"]

log = logging.getLogger(__name__)


def _pct(x: float) -> float:
    # full precision: rounding here and again when printing can flip the 2nd decimal
    return float(100.0 * x)


def evaluate_scannet(pred_labels: np.ndarray, gt, language: Language | None = None,
                     text_features: dict[str, np.ndarray] | None = None,
                     class_sets: Sequence[int] = (19, 15, 10), min_views: int = 2) -> dict:
    """All ScanNet metrics for one scene as a JSON-able dict (values in percent).

    Args:
        pred_labels: [N] int64 instance id per GT vertex.
        gt: :class:`instgs.eval.io.ScanNetGT`.
        language: per-instance features (rows indexed by ``pred_labels`` unless the
            language carries its own ``labels``, e.g. ``leaf_ind``).
        text_features: {NYU40 name: [512]}; text queries are skipped without it.
        class_sets: keys of :data:`CLASS_SETS` to evaluate.
        min_views: instances matched in fewer views get a zero feature (released: 2).

    Returns:
        dict with "instance" (published protocol), "instance_matched" (one-to-one variant),
        "text_query" ({"19": {...}, ...} or None) and "notes".

    Raises:
        InputError: length mismatches between predictions, language and GT.
    """
    n = gt.instance.shape[0]
    if pred_labels.shape[0] != n:
        raise InputError(f"predictions have {pred_labels.shape[0]} labels but the GT "
                         f"({gt.source}) has {n} vertices",
                         fix="pass predictions for the same scene, one id per vertex in "
                             "_vh_clean_2.ply order")
    im = instance_miou(pred_labels, gt.instance)
    mm = instance_matching(pred_labels, gt.instance)
    out: dict = {
        "scene": gt.scene, "num_vertices": n, "units": "percent",
        "instance": {"protocol": "InstanceGaussian eval_instance_seg.py: best IoU per GT "
                                 "instance over all predictions, wall/floor included",
                     "miou": _pct(im.miou), "m50": _pct(im.m50), "m25": _pct(im.m25),
                     "num_gt": im.num_gt, "num_pred": im.num_pred},
        "instance_matched": {"protocol": "one-to-one: Hungarian max-IoU matching for mIoU/P/R/F1; "
                                         "AP with greedy matching in descending size order",
                             "matched_miou": _pct(mm.matched_miou),
                             "ap25": _pct(mm.ap[0.25]), "ap50": _pct(mm.ap[0.5]),
                             "precision50": _pct(mm.precision[0.5]),
                             "recall50": _pct(mm.recall[0.5]), "f1_50": _pct(mm.f1[0.5]),
                             "precision25": _pct(mm.precision[0.25]),
                             "recall25": _pct(mm.recall[0.25]), "f1_25": _pct(mm.f1[0.25]),
                             "pq": _pct(mm.pq), "sq": _pct(mm.sq), "rq": _pct(mm.rq),
                             "num_gt": mm.num_gt, "num_pred": mm.num_pred},
        "fragments": _fragments(pred_labels),
        "text_query": None, "notes": [],
    }
    if language is None:
        out["notes"].append("no per-instance language features: text queries skipped")
        return out
    if text_features is None:
        out["notes"].append("no --text-features given: text queries skipped")
        return out
    leaf_ind = language.labels if language.labels is not None else pred_labels
    if leaf_ind.shape[0] != n:
        raise InputError(f"language labels have {leaf_ind.shape[0]} entries, GT has {n}",
                         language.source)
    if not np.all(gt.semantic == 0):
        tq = {}
        for k in class_sets:
            r = text_query_scores(leaf_ind, language.features, gt.semantic, text_features,
                                  CLASS_SETS[k], language.view_counts, min_views)
            tq[str(k)] = {"miou": _pct(r.miou), "macc": _pct(r.macc),
                          "per_class": {c: {"iou": _pct(v["iou"]), "acc": _pct(v["acc"])}
                                        for c, v in r.per_class.items()}}
        out["text_query"] = tq
    else:
        out["notes"].append("GT has no semantic labels: text queries skipped")
    return out


def _fragments(pred_labels: np.ndarray, min_size: int = 20) -> dict:
    """Instances too small to click: under ``min_size`` points (20: a few centimetres on a
    ScanNet scan, a few pixels on screen), and the share of all points in them."""
    from instgs.segment.fragments import fragment_share

    n_small, share = fragment_share(pred_labels, min_size)
    n_all = len(np.unique(pred_labels[pred_labels >= 0]))
    return {"min_size": min_size, "share_in_small": _pct(share), "num_small": n_small,
            "num_instances": n_all,
            "definition": f"instances of fewer than {min_size} points (anchors), and the "
                          "share of all points in them (share_in_small, percent): pieces too small "
                          "to click"}


def format_table(res: dict) -> str:
    """The printed summary of :func:`evaluate_scannet`'s dict."""
    i, m = res["instance"], res["instance_matched"]
    lines = [f"ScanNet {res['scene']} ({res['num_vertices']} vertices, {i['num_gt']} GT "
             f"instances, {i['num_pred']} predicted)",
             f"{'class-agnostic (published)':<34}{'mIoU':>8}{'m50':>8}{'m25':>8}",
             f"{'':<34}{i['miou']:8.2f}{i['m50']:8.2f}{i['m25']:8.2f}",
             f"{'one-to-one (corrected)':<34}{'mIoU':>8}{'AP50':>8}{'AP25':>8}",
             f"{'':<34}{m['matched_miou']:8.2f}{m['ap50']:8.2f}{m['ap25']:8.2f}",
             f"{'one-to-one at IoU > 0.5':<34}{'P50':>8}{'R50':>8}{'F1@50':>8}",
             f"{'':<34}{m['precision50']:8.2f}{m['recall50']:8.2f}{m['f1_50']:8.2f}"]
    if "pq" in m:
        f = res.get("fragments", {})
        lines += [f"{'panoptic (IoU > 0.5)':<34}{'PQ':>8}{'SQ':>8}{'RQ':>8}",
                  f"{'':<34}{m['pq']:8.2f}{m['sq']:8.2f}{m['rq']:8.2f}"]
        if f:
            lines.append(f"instances: {m['num_pred']} predicted on GT points for "
                         f"{m['num_gt']} GT; {f['num_small']} of {f['num_instances']} under "
                         f"{f['min_size']} points, holding {f['share_in_small']:.1f} % of "
                         "the points")
    if res.get("text_query"):
        lines.append(f"{'text query':<34}{'mIoU':>8}{'mAcc':>8}")
        for k, v in res["text_query"].items():
            lines.append(f"{k + ' classes':<34}{v['miou']:8.2f}{v['macc']:8.2f}")
    lines += [f"note: {n}" for n in res.get("notes", [])]
    return "\n".join(lines)


def run_scannet(run_dir: Path | str | None, gt: Path | str | None, *, scene: str | None = None,
                pred_labels: Path | str | None = None, lang: Path | str | None = None,
                text_features: Path | str | None = None, out: Path | str | None = None,
                min_views: int = 2) -> Path:
    """``instgs eval scannet``: score a run (or predictions made elsewhere) on a ScanNet scene,
    log the table and write the JSON.

    Args:
        run_dir: a segmented run (its instances, and language features when present), or None
            with ``pred_labels`` / ``lang``.
        gt: rendered scene folder or MMDetection3D root (:func:`load_scannet_gt`).
        scene: scene name for multi-scene GT roots.
        pred_labels: per-vertex predictions (.npy / .pt) instead of a run.
        lang: a ``cluster_lang.npz`` made elsewhere.
        text_features: JSON {NYU40 name: [512 floats]}; text queries are skipped without it.
        out: JSON path (default: the run's ``eval_scannet.json`` or
            ``./eval_scannet_<scene>.json``).
        min_views: instances matched in fewer views get a zero feature (released: 2).

    Returns:
        The written JSON (percentages; with the run's ``source`` record).

    Raises:
        InputError: missing inputs, unreadable or stale files, length mismatches.
    """
    if gt is None:
        raise InputError("no GT given", fix="pass --gt SCENE_DIR or --gt MMDET3D_ROOT "
                                            "--scene NAME")
    gtd = load_scannet_gt(gt, scene)
    language, source = None, None
    if pred_labels is not None:
        pred = load_pred_labels(pred_labels)
        name = str(pred_labels)
    elif run_dir is not None:
        from instgs.run import load_instances

        inst = load_instances(run_dir)
        pred, name, source = inst.anchor_labels, str(run_dir), inst.meta.get("source")
        language = load_run_language(run_dir)
    elif lang is not None:
        language = load_cluster_lang(lang)
        pred, name = language.labels, str(lang)
    else:
        raise InputError("nothing to evaluate", fix="pass RUN, --pred-labels FILE or "
                                                    "--lang cluster_lang.npz")
    if lang is not None:
        language = load_cluster_lang(lang)
    tf = load_text_features(text_features) if text_features else None
    res = evaluate_scannet(pred, gtd, language, tf, min_views=min_views)
    res = {"prediction": name, "gt": str(gtd.source), "source": source, **res}
    log.info("%s", format_table(res))
    into_run = run_dir is not None and pred_labels is None and out is None
    if out is None and not into_run:
        out = Path(f"eval_scannet_{gtd.scene}.json")
    if into_run:
        from instgs.run import FolderLock

        with FolderLock(run_dir, "instgs eval"):
            path = save_eval(run_dir, "scannet", res)
    else:
        path = save_eval(None, "scannet", res, out=out)
    log.info("wrote %s", path)
    return path
