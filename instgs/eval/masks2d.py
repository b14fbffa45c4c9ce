"""``instgs eval masks``: a 2D instance score for scenes with GT instance masks but no
labelled 3D points (the synthetic scene; photos with annotated masks).

Each held-out view's instance map is rendered from the run -- every pixel takes the instance
of its top contributor (:func:`instgs.segment.views.render_instance_ids`, which says why) --
and compared with the view's GT instance mask on the pixels the GT annotates (id > 0). The
per-view scores are the 3D evaluator's, applied to pixels instead of points: the published
best-IoU mIoU / m50 (:func:`instgs.eval.scannet.instance_miou`) and the one-to-one panoptic
quality and F1 at IoU > 0.5 (:func:`instgs.eval.scannet.instance_matching`), which count
every extra instance. The summary averages the views.

GT masks: ``<DIR>/<image stem>.png`` (8- or 16-bit, one id per instance, 0 = not
annotated) or ``<stem>.npy`` (integer [H, W]); the synthetic scene writes them to
``gt/instance/``, the default when the run's scene has that folder. Masks of another
resolution are resized (nearest) to the rendered views.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from instgs.core.checks import InputError

from .scannet import instance_matching, instance_miou

__all__ = ["score_instance_map", "read_gt_mask", "evaluate_masks", "run_masks",
           "format_masks_table"]

log = logging.getLogger(__name__)

_KEYS = ("miou", "m50", "pq", "sq", "rq", "precision50", "recall50", "f1_50")


def score_instance_map(pred: np.ndarray, gt: np.ndarray) -> dict:
    """Scores of one predicted instance map against a GT instance mask (percent).

    Args:
        pred: [H, W] int predicted instance id per pixel; negative = none (unassigned, or no
            Gaussian).
        gt: [H, W] int GT instance id per pixel; 0 (or negative) = not annotated, excluded.

    Returns:
        {"miou", "m50" (published best IoU per GT instance), "pq", "sq", "rq",
        "precision50", "recall50", "f1_50" (one-to-one at IoU > 0.5): percent;
        "num_gt", "num_pred" (predictions on annotated pixels)}.

    Raises:
        InputError: the shapes differ, or the GT annotates no pixel.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise InputError(f"instance map is {pred.shape} but the GT mask is {gt.shape}")
    p, g = pred.astype(np.int64).ravel(), np.maximum(gt.astype(np.int64).ravel(), 0)
    im, mm = instance_miou(p, g), instance_matching(p, g, thresholds=(0.5,))
    return {"miou": 100 * im.miou, "m50": 100 * im.m50, "pq": 100 * mm.pq,
            "sq": 100 * mm.sq, "rq": 100 * mm.rq, "precision50": 100 * mm.precision[0.5],
            "recall50": 100 * mm.recall[0.5], "f1_50": 100 * mm.f1[0.5],
            "num_gt": mm.num_gt, "num_pred": mm.num_pred}


def read_gt_mask(folder: Path, stem: str, height: int, width: int) -> np.ndarray:
    """The GT instance mask of one view, resized (nearest) to ``height x width``.

    Args:
        folder: the GT mask folder. stem: the view's image stem. height, width: pixels.

    Returns:
        [height, width] int64 instance ids (0 = not annotated).

    Raises:
        InputError: no ``<stem>.png`` / ``<stem>.npy``, an unreadable or non-integer or
            non-2D mask, or an aspect ratio that differs from the view's; the file is named.
    """
    from PIL import Image, UnidentifiedImageError

    from instgs.masks.io import resize_labels

    png, npy = folder / f"{stem}.png", folder / f"{stem}.npy"
    fix = "give one integer instance mask per held-out view, named after its image"
    try:
        if npy.is_file():
            m = np.load(npy, allow_pickle=False)
            path = npy
        elif png.is_file():
            with Image.open(png) as im:
                m = np.asarray(im)
            path = png
        else:
            raise InputError(f"no GT mask for view {stem} ({stem}.png or {stem}.npy)",
                             folder, fix)
    except (OSError, ValueError, UnidentifiedImageError) as e:
        raise InputError(f"cannot read the GT mask ({e})", png if png.is_file() else npy,
                         fix) from e
    if m.ndim != 2 or not np.issubdtype(m.dtype, np.integer):
        raise InputError(f"a GT mask must be a 2D integer map, got {m.dtype} {m.shape}",
                         path, fix)
    if abs(m.shape[0] / m.shape[1] - height / width) > 0.02:
        raise InputError(f"GT mask is {m.shape[1]}x{m.shape[0]} but the view renders at "
                         f"{width}x{height} (aspect ratios differ)", path, fix)
    return resize_labels(m, height, width, path)


def evaluate_masks(run_dir: str | Path, gt_masks: str | Path | None = None,
                   views: str = "test", backend: str = "auto") -> dict:
    """Render each view's instance map from a segmented run and score it (module docstring).

    Args:
        run_dir: a run with ``instances.npz`` (``instgs segment``).
        gt_masks: GT mask folder (default: the scene's ``gt/instance``).
        views: ``test`` (held-out; the training views when there are none), ``train``, ``all``.
        backend: rasterizer backend.

    Returns:
        {"views": {stem: scores}, "mean": {key: mean over views}, "num_views", "gt_masks",
        "pixels": "top contributor", "source": the run's provenance record}; percentages.

    Raises:
        InputError: no instances, no GT folder, a missing or bad mask (named).
    """
    from instgs.run import load_instances, load_run
    from instgs.segment.views import child_labels, render_instance_ids

    run = load_run(run_dir)
    inst = load_instances(run_dir)
    scene = run.scene
    folder = Path(gt_masks) if gt_masks is not None else Path(scene.root) / "gt" / "instance"
    if not folder.is_dir():
        raise InputError("GT mask folder not found", folder,
                         "pass --gt-masks DIR with one instance mask per held-out view")
    ids = _views(scene, views)
    labels = child_labels(run, inst)
    per_view = {}
    for i in ids:
        stem = Path(scene.image_paths[i]).stem
        pred = render_instance_ids(run, labels, i, backend=backend).numpy()
        gt = read_gt_mask(folder, stem, *pred.shape)
        per_view[stem] = score_instance_map(pred, gt)
    mean = {k: float(np.mean([v[k] for v in per_view.values()])) for k in _KEYS}
    return {"run": str(run_dir), "gt_masks": str(folder), "units": "percent",
            "pixels": "instance of the top contributor (largest blending weight)",
            "views_used": views, "num_views": len(per_view), "mean": mean,
            "views": per_view, "source": inst.meta.get("source")}


def _views(scene, which: str) -> list[int]:
    if which not in ("test", "train", "all"):
        raise InputError(f"views must be test, train or all, got {which!r}")
    if which == "all":
        return list(range(len(scene.image_paths)))
    ids = list(scene.test_ids if which == "test" else scene.train_ids)
    if not ids:
        log.warning("the scene has no held-out view; scoring the training views")
        ids = list(scene.train_ids)
    return ids


def format_masks_table(res: dict) -> str:
    """The printed summary of :func:`evaluate_masks`."""
    cols = (("mIoU", "miou"), ("m50", "m50"), ("PQ", "pq"), ("SQ", "sq"), ("RQ", "rq"),
            ("F1@50", "f1_50"))

    def row(name: str, v: dict) -> str:
        return f"{name:<12}" + "".join(f"{v[k]:8.2f}" for _, k in cols)

    lines = [f"2D instance masks: {res['num_views']} view(s), GT {res['gt_masks']}",
             f"{'':<12}" + "".join(f"{h:>8}" for h, _ in cols)]
    lines += [row(stem, v) for stem, v in res["views"].items()]
    lines.append(row("mean", res["mean"]))
    return "\n".join(lines)


def run_masks(run_dir: str | Path, gt_masks: str | Path | None = None, views: str = "test",
              out: str | Path | None = None, backend: str = "auto") -> Path:
    """``instgs eval masks``: :func:`evaluate_masks`, print the table, write the JSON
    (``RUN/eval_masks.json`` or ``out``) atomically.

    Raises:
        InputError: as :func:`evaluate_masks`; the run folder in use by another command.
    """
    from instgs.run import FolderLock, save_eval

    res = evaluate_masks(run_dir, gt_masks, views, backend)
    log.info("%s", format_masks_table(res))
    if out is not None:
        path = save_eval(None, "masks", res, out=out)
    else:
        with FolderLock(run_dir, "instgs eval"):
            path = save_eval(run_dir, "masks", res)
    log.info("wrote %s", path)
    return path
