"""2D-3D association: one CLIP feature per 3D instance from the per-view SAM masks.

For every training view and every instance visible in it, the instance's silhouette is matched
to the view's SAM masks (one level of the LangSplat layout) with OpenGaussian's score (Wu et al.,
NeurIPS 2024, Eq. 5), as InstanceGaussian's ``attach_lang_feature_*.py`` does:

    score(k, m) = IoU(silhouette_k, mask_m) x (1 - L1(f_k, g_m))

where ``f_k`` is the instance's mean instance feature and ``g_m`` the mean of the rendered
instance-feature image over mask ``m`` (both in the rendered space: ``(f + 1) / 2`` when the run
renders mapped features). ``L1`` is the *mean* absolute difference over the F channels divided
by the channel range (1 for mapped features, 2 for raw unit-vector components), so
``1 - L1`` lies in [0, 1] and the score in [0, 1] (a summed L1 over 6 channels would go
negative; see docs/language.md). The best mask of a view is kept when its score exceeds
``min_score``; the instance's CLIP feature pools the kept masks' CLIP rows:

* ``pooling="median_topk"`` (InstanceGaussian, ScanNet): element-wise median over the
  ``top_k_views`` matches with the largest matched masks (pixel count), ``min_score`` 0.1;
* ``pooling="mean"`` (OpenGaussian, InstanceGaussian LeRF): mean over every matched view,
  ``min_score`` 0.2 in OpenGaussian.

Silhouettes (``silhouette``):

* ``"alone"`` (released behaviour; see :data:`PRESETS`): the instance rendered without the
  rest of the scene, alpha > ``silhouette_threshold``. The fast path splats all instances of
  a view at once by accumulating ``log(1 - alpha_i)`` per (instance, pixel) over each
  Gaussian's footprint -- the alpha of a set of Gaussians rendered alone,
  ``1 - prod(1 - alpha_i)``, does not depend on their depth order.
  ``alone_method="render"`` is its slow reference twin (one :func:`instgs.render.render` per
  instance and view).
* ``"visible"`` (default): the pixels where the instance owns the front-most contributor
  (``top_ids``) and the full render's alpha > threshold -- occlusion-aware, one render per
  view. On the ScanNet render it gave the better text-query mIoU (docs/language.md).

Instances with fewer than ``min_visible_anchors`` anchors projecting into the view, or whose
silhouette covers more than ``max_coverage`` of the image, are skipped in that view
(InstanceGaussian: 3 anchors, 95 %).

Containment fallback (instgs, ``fallback_min_views``; off in :data:`PRESETS`): instances kept
in fewer views than that (fragments, whose IoU with a whole-object mask stays small) are
matched again with ``|silhouette & mask| / |silhouette| x (1 - L1)`` > ``min_containment``
and pooled from those matches.

Silhouettes are in :mod:`instgs.language.silhouettes`, matching and pooling in
:mod:`instgs.language.matching`. Output: :class:`instgs.run.LanguageFeatures` (written as
``language.npz`` by the stage, :func:`instgs.language.run`), and optionally an
OpenGaussian / InstanceGaussian ``cluster_lang.npz`` (:func:`export_cluster_lang`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from instgs.core.artifacts import atomic_save_npz, config_to_dict
from instgs.core.checks import InputError
from instgs.render import backend_for_device
from instgs.run import LanguageFeatures, LoadedRun, labels_digest

from .matching import (ViewMatches, mask_mean_features, match_containment, match_masks,
                       pool_matches)
from .silhouettes import silhouettes

__all__ = ["PRESETS", "LanguageConfig", "associate", "export_cluster_lang"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LanguageConfig:
    """Settings of the 2D-3D association (``instgs language``). Defaults: InstanceGaussian
    ScanNet (``attach_lang_feature_scannet.py``) except ``silhouette="visible"`` (measured
    better; the released ``"alone"`` is in :data:`PRESETS`)."""

    pooling: Literal["median_topk", "mean"] = "median_topk"
    """median_topk: element-wise median over the top views (InstanceGaussian ScanNet);
    mean: mean over all matched views (OpenGaussian, InstanceGaussian LeRF)."""
    top_k_views: int = 5
    """Views kept by ``median_topk``, ranked by matched-mask pixel count."""
    min_score: float = 0.1
    """A view's best mask is kept when IoU x (1 - L1) > min_score (IG ScanNet 0.1,
    OpenGaussian 0.2, IG LeRF per scene 0.2-0.5)."""
    silhouette: Literal["alone", "visible"] = "visible"
    """visible: the instance's front-most pixels in the full render (occlusion-aware; the
    default: better text-query mIoU and 4x faster on the ScanNet render, docs/language.md);
    alone: the instance rendered without the others (released code)."""
    alone_method: Literal["splat", "render"] = "splat"
    """How ``alone`` silhouettes are computed: splat = all instances of a view in one
    vectorised pass (fast); render = one instgs.render call per instance (reference twin)."""
    silhouette_threshold: float = 0.7
    """Alpha above which a pixel belongs to the silhouette (IG 0.7, OpenGaussian 0.8)."""
    min_visible_anchors: int = 3
    """Skip an instance in a view when fewer of its anchors project into it."""
    max_coverage: float = 0.95
    """Skip an instance in a view when its silhouette covers more than this image fraction."""
    min_mask_pixels: int = 10
    """SAM masks smaller than this (at the run's resolution) are ignored (IG ``filter_th``)."""
    fallback_min_views: int = 2
    """Instances matched in fewer views than this (small fragments, whose IoU with any
    whole-object mask stays below ``min_score``) are matched again by containment: in every
    view, the mask holding the largest share of the silhouette, kept when that share x
    (1 - L1) > ``min_containment``; their feature is pooled from those matches instead.
    0 = off (the released behaviour). instgs addition (docs/language.md)."""
    min_containment: float = 0.5
    """Threshold of the containment fallback."""
    sam_level: Literal["default", "small", "medium", "large"] | None = None
    """Mask level to match; None = the level the run was trained on."""
    views: Literal["train", "all"] = "train"
    """Which views to use (the released code uses the training views)."""
    max_views: int | None = None
    """Use at most this many views, evenly spaced (None = all)."""
    max_pairs: int = 4_000_000
    """Memory bound of the splat path: (Gaussian, pixel) pairs per chunk."""
    progress: bool = True
    """Show a tqdm progress bar over views."""


PRESETS: dict[str, LanguageConfig] = {
    "instancegaussian-scannet": LanguageConfig(silhouette="alone", fallback_min_views=0),
    "instancegaussian-lerf": LanguageConfig(silhouette="alone", pooling="mean", min_score=0.2,
                                            fallback_min_views=0),
    "opengaussian": LanguageConfig(silhouette="alone", pooling="mean", min_score=0.2,
                                   silhouette_threshold=0.8, fallback_min_views=0),
}
"""Named settings: InstanceGaussian ScanNet (default) / LeRF (``min_score`` is per scene
there: 0.5 figurines, 0.2 ramen, 0.5 teatime, 0.2 waldo_kitchen), OpenGaussian Stage 3."""


# --------------------------------------------------------------------------- per view
def _load_view_masks(feat_dir: Path, stem: str, level: str, h: int, w: int
                     ) -> tuple[Tensor, np.ndarray]:
    from instgs.masks.io import read_level_at

    labels, rows = read_level_at(feat_dir, stem, level, h, w)
    return torch.from_numpy(labels).reshape(-1), rows


def _drop_small_masks(labels: Tensor, min_pixels: int) -> tuple[Tensor, int, Tensor]:
    """Masks smaller than ``min_pixels`` become -1 (InstanceGaussian ``filter_th``).

    Returns:
        (labels [P] int64, number of mask ids Mk, area [Mk] int64 pixels per kept mask).
    """
    mk = int(labels.max()) + 1 if labels.numel() else 0
    if not mk:
        return labels, 0, torch.zeros(0, dtype=torch.long)
    area = torch.bincount(labels[labels >= 0], minlength=mk)
    labels = torch.where((labels >= 0) & (area[labels.clamp(min=0)] >= min_pixels),
                         labels, torch.full_like(labels, -1))
    return labels, mk, torch.bincount(labels[labels >= 0], minlength=mk)


@torch.no_grad()
def _view_matches(ng, camera, labels: Tensor, clip_rows: np.ndarray, anchor_labels: Tensor,
                  inst_feats: Tensor, mapped: bool, cfg: LanguageConfig, backend: str,
                  view: int) -> tuple[ViewMatches, ViewMatches]:
    """Match the instances of one decoded view to its masks (see the module docstring).

    Returns:
        (IoU matches, containment matches; the latter empty unless
        ``cfg.fallback_min_views > 0``).
    """
    from instgs.render import render
    from instgs.render.projection import project

    g = ng.gaussians
    g_inst = anchor_labels[ng.anchor_ids]  # [M]
    feat = ng.ins_feat.float()
    feat = (feat + 1) / 2 if mapped else feat
    hw = camera.height * camera.width
    want_top = cfg.silhouette == "visible"
    out = render(g, camera, features=feat, return_top_ids=want_top, backend=backend)
    alpha = out.alpha[0, ..., 0].reshape(-1).float()
    pix_feat = out.features[0].reshape(hw, -1).float() / alpha.clamp(min=1e-6)[:, None]

    labels, mk, area = _drop_small_masks(labels, cfg.min_mask_pixels)

    # candidates: instances with >= min_visible_anchors anchors that project into the view
    on_img = (out.radii[0] > 0) & (g_inst >= 0)
    vis_anchor = torch.unique(ng.anchor_ids[on_img])
    vis_inst = anchor_labels[vis_anchor]
    n_inst = inst_feats.shape[0]
    per = torch.bincount(vis_inst[vis_inst >= 0], minlength=n_inst)
    cand = torch.nonzero(per >= cfg.min_visible_anchors).squeeze(1)
    empty = ViewMatches(view, np.zeros(0, np.int64), np.zeros(0, np.int64),
                        np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                        np.zeros((0, clip_rows.shape[1]), np.float32))
    if cand.numel() == 0 or mk == 0 or int(area.sum()) == 0:
        return empty, empty
    local = torch.full((n_inst,), -1, dtype=torch.long)
    local[cand] = torch.arange(cand.numel())
    mask_feats = mask_mean_features(labels, pix_feat, alpha, mk, cfg.silhouette_threshold)
    feat_range = 1.0 if mapped else 2.0
    chunk = max(1, min(cand.numel(), (256 << 20) // (4 * hw)))  # <= 256 MB of silhouettes
    kept: dict[str, list[list[Tensor]]] = {"iou": [[], [], [], []], "contain": [[], [], [], []]}
    proj = None
    if cfg.silhouette == "alone" and cfg.alone_method == "splat":
        proj = project(g.means, g.quats, g.scales, g.opacities, camera.viewmats, camera.Ks,
                       camera.width, camera.height)
    for c0 in range(0, cand.numel(), chunk):
        ids = cand[c0:c0 + chunk]
        grp = local[g_inst.clamp(min=0)] - c0
        grp = torch.where((g_inst >= 0) & (grp >= 0) & (grp < ids.numel()), grp,
                          torch.full_like(grp, -1))
        sil = silhouettes(cfg, g, camera, grp, ids.numel(), out, alpha, proj, backend)
        size = sil.sum(1)
        ok = (size > 0) & (size <= cfg.max_coverage * hw)
        if not bool(ok.any()):
            continue
        ids, sil = ids[ok], sil[ok]
        rules = [("iou", match_masks, cfg.min_score)]
        if cfg.fallback_min_views > 0:
            rules.append(("contain", match_containment, cfg.min_containment))
        for name, fn, thr in rules:
            scores, ratio = fn(sil, labels, inst_feats[ids], mask_feats, feat_range)
            best_s, best_m = scores.max(1)
            good = best_s > thr
            for lst, t in zip(kept[name], (ids[good], best_m[good], best_s[good],
                                           ratio[good, best_m[good]])):
                lst.append(t)

    def gather(lists) -> ViewMatches:
        if not lists[0]:
            return empty
        ki, km, ks, kr = (torch.cat(x).numpy() for x in lists)
        clip = (clip_rows[km] if clip_rows.shape[0] else
                np.zeros((len(km), clip_rows.shape[1]), np.float32))
        return ViewMatches(view, ki.astype(np.int64), km.astype(np.int64),
                           ks.astype(np.float32), kr.astype(np.float32),
                           area[km].numpy().astype(np.int64), clip.astype(np.float32))

    return gather(kept["iou"]), gather(kept["contain"])


def _instance_features(model, anchor_labels: Tensor, num_instances: int, mapped: bool) -> Tensor:
    """Mean normalised instance feature per instance [K, F], mapped to [0, 1] if ``mapped``."""
    f = model.normalized_ins_feat().detach().float().cpu()
    ok = anchor_labels >= 0
    sums = torch.zeros(num_instances, f.shape[1]).index_add_(0, anchor_labels[ok], f[ok])
    cnt = torch.bincount(anchor_labels[ok], minlength=num_instances).clamp(min=1)
    mean = sums / cnt[:, None]
    return (mean + 1) / 2 if mapped else mean


def _select_views(ids: list[int], max_views: int | None) -> list[int]:
    if max_views is None or max_views >= len(ids):
        return list(ids)
    if max_views < 1:
        raise InputError(f"max_views must be >= 1, got {max_views}")
    pick = np.unique(np.round(np.linspace(0, len(ids) - 1, max_views)).astype(int))
    return [ids[i] for i in pick]


def associate(run: LoadedRun, anchor_labels: np.ndarray, cfg: LanguageConfig | None = None,
              num_instances: int | None = None) -> LanguageFeatures:
    """Attach a CLIP feature to every instance of a loaded run.

    Args:
        run: :class:`instgs.run.LoadedRun` with an instance-feature model.
        anchor_labels: [N] int instance id per anchor (-1 = unassigned), e.g. from
            :func:`instgs.run.load_instances`.
        cfg: association settings (default: InstanceGaussian ScanNet).
        num_instances: K (default: ``max(anchor_labels) + 1``).

    Returns:
        :class:`LanguageFeatures` with K rows (row k = instance k).

    Raises:
        InputError: appearance-only run, labels of the wrong length, no language_features
            folder, unreadable or mis-sized mask files.

    References:
        InstanceGaussian ``attach_lang_feature_scannet.py`` / ``_lerf.py``; OpenGaussian
        ``train.py::construct_pseudo_ins_feat(mode="lang")`` (Eq. 5).
    """
    from tqdm import tqdm

    cfg = cfg or LanguageConfig()
    t0 = time.time()
    model, scene, tcfg = run.model, run.scene, run.cfg
    if model.ins_feat is None:
        raise InputError("the run has no instance features (appearance-only model)",
                         getattr(run, "run_dir", None),
                         "train with instance features (`instgs train --semantics on`)")
    labels_np = np.asarray(anchor_labels).astype(np.int64).reshape(-1)
    if labels_np.shape[0] != model.num_anchors:
        raise InputError(f"{labels_np.shape[0]} anchor labels for {model.num_anchors} anchors",
                         getattr(run, "run_dir", None),
                         "rerun `instgs segment RUN` on this run")
    k = int(num_instances if num_instances is not None else labels_np.max(initial=-1) + 1)
    if labels_np.size and (labels_np.min() < -1 or labels_np.max() >= k):
        raise InputError(f"anchor labels must lie in [-1, {k}), got [{labels_np.min()}, "
                         f"{labels_np.max()}]", getattr(run, "run_dir", None),
                         "rerun `instgs segment RUN`")
    level = cfg.sam_level or tcfg.sam_level
    mapped = bool(tcfg.render_mapped_features)
    # matching runs on CPU tensors (decoded Gaussians are moved there)
    backend = backend_for_device(tcfg.backend, "cpu")
    feat_dir = Path(scene.root) / getattr(tcfg, "masks_dir", "language_features")
    if not feat_dir.is_dir():
        raise InputError("no SAM masks for this scene", feat_dir,
                         f"run `instgs masks --data {scene.root}` first")
    device = model.anchors.device
    lab_t = torch.as_tensor(labels_np)
    inst_feats = _instance_features(model, lab_t, k, mapped)
    views = list(scene.train_ids) if cfg.views == "train" else list(range(len(scene.image_paths)))
    views = _select_views(views, cfg.max_views)
    h, w = scene.cameras.height, scene.cameras.width
    matches: list[ViewMatches] = []
    contained: list[ViewMatches] = []
    clip_dim = None
    clip_missing = False
    n_cand = 0
    for i in tqdm(views, desc="language: views", disable=not cfg.progress, leave=False):
        stem = Path(scene.image_paths[i]).stem
        labels, rows = _load_view_masks(feat_dir, stem, level, h, w)
        clip_dim = rows.shape[1] if clip_dim is None else clip_dim
        # Felzenszwalb masks: ids but no feature rows ([0, D])
        clip_missing |= rows.shape[0] == 0 and bool((labels >= 0).any())
        with torch.no_grad():
            ng = run.decode(i)
        if ng.ins_feat is None or len(ng.gaussians) == 0:
            continue
        ng_cpu = _to_cpu(ng) if device.type != "cpu" else ng
        vm, vc = _view_matches(ng_cpu, scene.cameras[i], labels, rows, lab_t, inst_feats,
                               mapped, cfg, backend, i)
        n_cand += len(vm.instance_ids)
        if len(vm.instance_ids):
            matches.append(vm)
        if len(vc.instance_ids):
            contained.append(vc)
    dim = int(clip_dim or 512)
    feats, counts, scores = pool_matches(matches, k, cfg, dim=dim)
    use = np.zeros(k, bool)
    if cfg.fallback_min_views > 0 and contained:
        f2, c2, s2 = pool_matches(contained, k, cfg, dim=dim)
        use = (counts < cfg.fallback_min_views) & (c2 > counts)
        feats[use], counts[use], scores[use] = f2[use], c2[use], s2[use]
    n_fallback = int(use.sum())
    if clip_missing:
        feats = np.zeros((k, dim), np.float32)
    meta = {"clip_features_available": not clip_missing, "sam_level": level,
            "mapped_features": mapped, "views": views, "num_matches": int(n_cand),
            "matched_instances": int((counts > 0).sum()), "num_instances": k,
            "containment_fallback_instances": n_fallback,
            "n_offsets": int(model.cfg.n_offsets), "num_anchors": int(model.num_anchors),
            "anchor_labels_sha1": labels_digest(labels_np), "seconds": time.time() - t0,
            "source": run.source}
    return LanguageFeatures(feats, counts, scores, np.arange(k, dtype=np.int64),
                            config_to_dict(cfg), meta, containment_only=use)


def _to_cpu(ng):
    from instgs.core.gaussians import Gaussians

    g = ng.gaussians
    return replace(ng, gaussians=Gaussians(*(t.detach().cpu() for t in (
        g.means, g.quats, g.scales, g.opacities, g.colors))), anchor_ids=ng.anchor_ids.cpu(),
        child_ids=ng.child_ids.cpu(), ins_feat=ng.ins_feat.detach().cpu())


def export_cluster_lang(lang: LanguageFeatures, anchor_labels: np.ndarray,
                        path: str | Path) -> Path:
    """Write an OpenGaussian / InstanceGaussian ``cluster_lang.npz``.

    Keys: ``leaf_feat`` [K', 512] float32, ``leaf_score`` [K'] float32, ``occu_count`` [K']
    int64, ``leaf_ind`` [N] int64 (row of each anchor / ScanNet vertex). Unassigned anchors
    (label -1) point at one extra all-zero row K (``occu_count`` 0), so K' = K + 1 when there
    are unassigned anchors, else K. Their eval scripts zero ``leaf_feat`` where
    ``occu_count < 2`` themselves.

    Args:
        lang: the run's language features.
        anchor_labels: [N] int instance id per anchor (-1 = unassigned).
        path: output file.

    Returns:
        The written path.
    """
    lab = np.asarray(anchor_labels).astype(np.int64)
    ids = np.asarray(lang.instance_ids, np.int64)
    k = len(ids)
    row_of = np.full(int(max(ids.max(initial=-1), lab.max(initial=-1))) + 1, k, np.int64)
    row_of[ids] = np.arange(k)
    feat, score, occ = lang.instance_features, lang.match_scores, lang.view_counts
    leaf_ind = np.where(lab >= 0, row_of[lab.clip(min=0)], k)
    if (leaf_ind == k).any():
        feat = np.concatenate([feat, np.zeros((1, feat.shape[1]), np.float32)])
        score = np.concatenate([score, np.zeros(1, np.float32)])
        occ = np.concatenate([occ, np.zeros(1, np.int64)])
    return atomic_save_npz(path, leaf_feat=feat.astype(np.float32),
                           leaf_score=score.astype(np.float32),
                           occu_count=occ.astype(np.int64), leaf_ind=leaf_ind)


