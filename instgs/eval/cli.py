"""``instgs eval scannet``: score a run (or predictions made elsewhere) on a ScanNet scene.

    instgs eval scannet RUN --gt SCENE_DIR [--text-features text_features.json]
    instgs eval scannet --pred-labels cluster_result.pt --lang cluster_lang.npz \\
        --gt ../shared/data/scannet-scene0000-mmdet3d --scene scene0000_00 \\
        --text-features ../shared/data/opengaussian-clip-text-features/assets/text_features.json

Prints a table and writes JSON (percentages) atomically; see docs/evaluation.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional, Sequence

import numpy as np
import tyro

from instgs.core.artifacts import write_json
from instgs.core.checks import InputError

from .io import (Language, load_cluster_lang, load_pred_labels, load_run_language,
                 load_scannet_gt, load_text_features)
from .scannet import CLASS_SETS, instance_matching, instance_miou, text_query_scores

__all__ = ["EvalScannetCommand", "EvalCommand", "evaluate_scannet", "format_table"]


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
                             "recall25": _pct(mm.recall[0.25]), "f1_25": _pct(mm.f1[0.25])},
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


def format_table(res: dict) -> str:
    """The printed summary of :func:`evaluate_scannet`'s dict."""
    i, m = res["instance"], res["instance_matched"]
    lines = [f"ScanNet {res['scene']} ({res['num_vertices']} vertices, {i['num_gt']} GT "
             f"instances, {i['num_pred']} predicted)",
             f"{'class-agnostic (published)':<34}{'mIoU':>8}{'m50':>8}{'m25':>8}",
             f"{'':<34}{i['miou']:8.2f}{i['m50']:8.2f}{i['m25']:8.2f}",
             f"{'one-to-one (corrected)':<34}{'mIoU':>8}{'AP50':>8}{'AP25':>8}",
             f"{'':<34}{m['matched_miou']:8.2f}{m['ap50']:8.2f}{m['ap25']:8.2f}"]
    if res.get("text_query"):
        lines.append(f"{'text query':<34}{'mIoU':>8}{'mAcc':>8}")
        for k, v in res["text_query"].items():
            lines.append(f"{k + ' classes':<34}{v['miou']:8.2f}{v['macc']:8.2f}")
    lines += [f"note: {n}" for n in res.get("notes", [])]
    return "\n".join(lines)


@dataclass
class EvalScannetCommand:
    """Score class-agnostic instances (published best-IoU protocol + one-to-one AP variant)
    and, with per-instance CLIP features and text features, 19/15/10-class text queries."""

    run_dir: Annotated[Optional[Path], tyro.conf.Positional, tyro.conf.arg(metavar="RUN")] = None
    """Run folder (instances.npz; language.npz if present). Omit when --pred-labels is given."""
    gt: Optional[Path] = None
    """GT: a rendered scene folder (gt/instance_per_vertex.npy) or the MMDetection3D ScanNet
    root (scannet_train_instance_data/)."""
    scene: Optional[str] = None
    """Scene name, e.g. scene0000_00 (needed for multi-scene GT roots)."""
    pred_labels: Optional[Path] = None
    """One instance id per vertex (.npy or .pt), instead of a run."""
    lang: Optional[Path] = None
    """cluster_lang.npz (leaf_feat, occu_count, leaf_ind) made elsewhere."""
    text_features: Optional[Path] = None
    """JSON {NYU40 name: [512 floats]} standing in for a CLIP text encoder."""
    out: Optional[Path] = None
    """JSON output (default: RUN/eval_scannet.json, or eval_scannet_<scene>.json here)."""
    min_views: int = 2
    """Instances matched in fewer views get a zero feature (-> 'wall'), as released."""

    def run(self) -> Path:
        """Evaluate, print the table, write the JSON; return its path.

        Raises:
            InputError: missing inputs, unreadable files, or length mismatches.
        """
        if self.gt is None:
            raise InputError("no GT given", fix="pass --gt SCENE_DIR or --gt MMDET3D_ROOT "
                                                "--scene NAME")
        gt = load_scannet_gt(self.gt, self.scene)
        language = None
        if self.pred_labels is not None:
            pred = load_pred_labels(self.pred_labels)
            source = str(self.pred_labels)
        elif self.run_dir is not None:
            from instgs.segment.labels import load_instances

            pred = load_instances(self.run_dir).anchor_labels
            source = str(self.run_dir)
            language = load_run_language(self.run_dir)
        elif self.lang is not None:
            language = load_cluster_lang(self.lang)
            pred = language.labels
            source = str(self.lang)
        else:
            raise InputError("nothing to evaluate", fix="pass RUN, --pred-labels FILE or "
                                                        "--lang cluster_lang.npz")
        if self.lang is not None:
            language = load_cluster_lang(self.lang)
        tf = load_text_features(self.text_features) if self.text_features else None
        res = evaluate_scannet(pred, gt, language, tf, min_views=self.min_views)
        res = {"prediction": source, "gt": str(gt.source), **res}
        print(format_table(res))
        out = self.out
        if out is None:
            out = (Path(self.run_dir) / "eval_scannet.json" if self.run_dir is not None
                   and self.pred_labels is None else Path(f"eval_scannet_{gt.scene}.json"))
        path = write_json(out, res)
        print(f"wrote {path}")
        sys.stdout.flush()
        return path


@dataclass
class EvalCommand:
    """``instgs eval BENCHMARK ...``: dispatch to a benchmark's command (only ``scannet``)."""

    @staticmethod
    def parse_cli(args: Sequence[str], prog: str = "instgs eval"):
        """Parse ``scannet ARGS...`` into an :class:`EvalScannetCommand`."""
        args = list(args)
        benchmarks = {"scannet": EvalScannetCommand}
        if not args or args[0] in ("-h", "--help"):
            print(f"usage: {prog} {{{','.join(benchmarks)}}} [ARGS...]\n\n"
                  "  scannet   ScanNet class-agnostic instance + text-query evaluation")
            raise SystemExit(0 if args else 2)
        if args[0] not in benchmarks:
            print(f"{prog}: unknown benchmark {args[0]!r}; choose one of {list(benchmarks)}",
                  file=sys.stderr)
            raise SystemExit(2)
        return tyro.cli(benchmarks[args[0]], args=args[1:], prog=f"{prog} {args[0]}",
                        description=benchmarks[args[0]].__doc__)

    def run(self) -> Path:  # pragma: no cover - parse_cli returns the benchmark command
        raise InputError("choose a benchmark", fix="run `instgs eval scannet ...`")
