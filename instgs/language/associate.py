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

Output: ``RUN/language.npz`` (see :func:`save_language`), and optionally an OpenGaussian /
InstanceGaussian ``cluster_lang.npz`` (:func:`export_cluster_lang`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from instgs.core.artifacts import atomic_save_npz, config_to_dict
from instgs.core.checks import InputError

__all__ = [
    "LANGUAGE_FILE",
    "PRESETS",
    "LanguageConfig",
    "LanguageFeatures",
    "ViewMatches",
    "alone_alpha_reference",
    "alone_log_transmittance",
    "associate",
    "associate_run",
    "export_cluster_lang",
    "labels_digest",
    "mask_mean_features",
    "match_masks",
    "match_masks_reference",
    "pool_matches",
    "read_language_file",
    "save_language",
]

LANGUAGE_FILE = "language.npz"


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


@dataclass
class ViewMatches:
    """The kept matches of one view (one row per matched instance).

    Attributes:
        view: scene view index.
        instance_ids: [R] int64 instance ids.
        mask_ids: [R] int64 level-local mask ids.
        scores: [R] float32 IoU x (1 - L1).
        ious: [R] float32 IoU (the containment share for containment matches).
        mask_pixels: [R] int64 matched-mask pixel count (at the run's resolution).
        clip: [R, 512] float32 CLIP rows of the matched masks ([R, 0] without features).
    """

    view: int
    instance_ids: np.ndarray
    mask_ids: np.ndarray
    scores: np.ndarray
    ious: np.ndarray
    mask_pixels: np.ndarray
    clip: np.ndarray


@dataclass
class LanguageFeatures:
    """Per-instance CLIP features of a run (the content of ``RUN/language.npz``).

    Attributes:
        instance_features: [K, D] float32, L2-normalised rows; zero rows for instances never
            matched (D = 512 for ViT-B CLIP; 0 rows of features when the masks carry none).
        view_counts: [K] int64, number of views with a kept match (``occu_count``).
        match_scores: [K] float32, mean score of the pooled matches (0 if none).
        instance_ids: [K] int64, the instance id of each row (values of ``anchor_labels``).
        config: the :class:`LanguageConfig` as plain data.
        meta: plain data (clip_features_available, sam_level, views, n_offsets, timings,
            anchor-label digest).
        containment_only: [K] bool, the feature came from the containment fallback alone
            (a fragment inside one object's mask); None = all False. Queries leave these
            parts of objects out unless asked (:func:`instgs.language.query.query_instances`).
    """

    instance_features: np.ndarray
    view_counts: np.ndarray
    match_scores: np.ndarray
    instance_ids: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    containment_only: np.ndarray | None = None


def labels_digest(anchor_labels: np.ndarray) -> str:
    """SHA-1 of the int64 anchor labels (detects language features gone stale)."""
    return hashlib.sha1(np.ascontiguousarray(anchor_labels, np.int64).tobytes()).hexdigest()


# --------------------------------------------------------------------------- silhouettes
@torch.no_grad()
def alone_log_transmittance(means2d: Tensor, conics: Tensor, opacities: Tensor,
                            extents: Tensor, groups: Tensor, num_groups: int, width: int,
                            height: int, max_pairs: int = 4_000_000) -> Tensor:
    """Per-group ``sum log(1 - alpha_i)`` over each pixel: the silhouettes of groups of
    Gaussians each rendered alone, in one vectorised pass.

    A set rendered alone has ``alpha = 1 - prod_i (1 - alpha_i)`` whatever its depth order
    (3DGS compositing; the renderer's stop at T <= 1e-4 only changes alphas above 0.9999).
    Per-Gaussian alphas follow :mod:`instgs.render` exactly: pixel centres at +0.5,
    ``alpha = min(0.99, o exp(-sigma))``, skipped below 1/255 or for sigma < 0.

    Args:
        means2d: [M, 2] projected centres, pixels. conics: [M, 3] (a, b, c) inverse 2D
            covariance. opacities: [M] in [0, 1]. extents: [M, 2] half-widths of the
            alpha >= 1/255 box, pixels (0 = culled), from :func:`instgs.render.projection.project`.
        groups: [M] int64 group (instance) index in [0, G) or -1 to ignore.
        num_groups: G.
        width, height: image size, pixels.
        max_pairs: (Gaussian, pixel) pairs per chunk (memory bound).

    Returns:
        [G, H * W] float32 log transmittance (0 = untouched); the silhouette alpha is
        ``1 - exp(.)``.
    """
    dev = means2d.device
    hw = height * width
    out = torch.zeros(num_groups * hw, dtype=torch.float32, device=dev)
    keep = (groups >= 0) & (extents[:, 0] > 0)
    idx = torch.nonzero(keep).squeeze(1)
    if idx.numel() == 0:
        return out.view(num_groups, hw)
    m2, ext, con = means2d[idx].float(), extents[idx].float(), conics[idx].float()
    # pixel-centre box: pixels u with |u + 0.5 - mx| <= ex (the renderer's alpha >= 1/255 box)
    x0 = torch.ceil(m2[:, 0] - ext[:, 0] - 0.5).clamp(0, width - 1)
    x1 = torch.floor(m2[:, 0] + ext[:, 0] - 0.5).clamp(-1, width - 1)
    y0 = torch.ceil(m2[:, 1] - ext[:, 1] - 0.5).clamp(0, height - 1)
    y1 = torch.floor(m2[:, 1] + ext[:, 1] - 0.5).clamp(-1, height - 1)
    bw = (x1 - x0 + 1).clamp(min=0)
    bh = (y1 - y0 + 1).clamp(min=0)
    npix = (bw * bh).long()
    # one record per Gaussian, gathered once per (Gaussian, pixel) pair: offset of the centre
    # from the box corner's pixel centre, 0.5 a, b, 0.5 c, opacity, box width
    rec = torch.stack([m2[:, 0] - x0 - 0.5, m2[:, 1] - y0 - 0.5, 0.5 * con[:, 0], con[:, 1],
                       0.5 * con[:, 2], opacities[idx].float(), bw], 1)  # [n, 7]
    basekey = groups[idx].long() * hw + y0.long() * width + x0.long()  # [n]
    csum = torch.cumsum(npix, 0)
    n, start = len(idx), 0
    while start < n:
        first = int(csum[start - 1]) if start else 0
        end = int(torch.searchsorted(csum, torch.tensor(first + max_pairs, device=dev),
                                     right=True))
        end = max(end, start + 1)
        cnt = npix[start:end]
        total = int(cnt.sum())
        if total:
            local = torch.repeat_interleave(torch.arange(start, end, device=dev), cnt)
            kk = (torch.arange(total, device=dev) + first - (csum[local] - npix[local])).float()
            r = rec[local]  # [P, 7]
            ky = torch.floor(kk / r[:, 6])
            kx = kk - ky * r[:, 6]
            dx = r[:, 0] - kx  # mean2d - pixel centre
            dy = r[:, 1] - ky
            sigma = r[:, 2] * dx * dx + r[:, 4] * dy * dy + r[:, 3] * dx * dy
            alpha = torch.clamp(r[:, 5] * torch.exp(-sigma), max=0.99)
            ok = (sigma >= 0) & (alpha >= 1.0 / 255.0)
            key = basekey[local] + ky.long() * width + kx.long()
            out.index_add_(0, key[ok], torch.log1p(-alpha[ok]))
        start = end
    return out.view(num_groups, hw)


@torch.no_grad()
def alone_alpha_reference(gaussians, camera, groups: Tensor, num_groups: int,
                          backend: str = "auto") -> Tensor:
    """Reference twin of :func:`alone_log_transmittance`: render every group alone.

    Args:
        gaussians: :class:`instgs.core.gaussians.Gaussians` [M].
        camera: one-camera :class:`instgs.core.cameras.Cameras`.
        groups: [M] int64 group index in [0, G) or -1.
        num_groups: G.
        backend: :func:`instgs.render.render` backend.

    Returns:
        [G, H * W] float32 alpha of each group rendered alone (InstanceGaussian
        ``render4attach``).
    """
    from instgs.core.gaussians import Gaussians
    from instgs.render import render

    hw = camera.height * camera.width
    out = torch.zeros(num_groups, hw)
    for gi in range(num_groups):
        sel = groups == gi
        if not bool(sel.any()):
            continue
        sub = Gaussians(gaussians.means[sel], gaussians.quats[sel], gaussians.scales[sel],
                        gaussians.opacities[sel], gaussians.colors[sel])
        out[gi] = render(sub, camera, backend=backend).alpha[0, ..., 0].reshape(-1).float()
    return out


# --------------------------------------------------------------------------- matching
def mask_mean_features(labels: Tensor, pixel_feats: Tensor, alpha: Tensor, num_masks: int,
                       alpha_threshold: float = 0.7) -> Tensor:
    """Mean rendered instance feature inside each mask.

    Pixels with alpha > ``alpha_threshold`` are averaged (InstanceGaussian's mask means use
    the silhouette > 0.7); a mask with no such pixel falls back to all its pixels.

    Args:
        labels: [P] int64 mask id per pixel, -1 = none.
        pixel_feats: [P, F] rendered features divided by alpha (per-pixel mean feature).
        alpha: [P] rendered alpha.
        num_masks: number of masks Mk (ids 0..Mk-1).
        alpha_threshold: see above.

    Returns:
        [Mk, F] float32.
    """
    f = pixel_feats.shape[1]
    valid = labels >= 0
    lab = labels[valid]
    feats, a = pixel_feats[valid].float(), alpha[valid]
    good = a > alpha_threshold
    sums = torch.zeros(num_masks, f).index_add_(0, lab[good], feats[good])
    cnt = torch.bincount(lab[good], minlength=num_masks).float()
    sums_all = torch.zeros(num_masks, f).index_add_(0, lab, feats)
    cnt_all = torch.bincount(lab, minlength=num_masks).float()
    use = cnt > 0
    return torch.where(use[:, None], sums / cnt.clamp(min=1)[:, None],
                       sums_all / cnt_all.clamp(min=1)[:, None])


def match_masks(sil: Tensor, labels: Tensor, inst_feats: Tensor, mask_feats: Tensor,
                feat_range: float = 1.0) -> tuple[Tensor, Tensor]:
    """Score every (silhouette, mask) pair: IoU x (1 - mean|f - g| / feat_range).

    Args:
        sil: [G, P] bool silhouettes. labels: [P] int64 mask ids (-1 none; ids < Mk).
        inst_feats: [G, F] instance features. mask_feats: [Mk, F] mask mean features.
        feat_range: range of one feature channel (1 for [0,1]-mapped features, 2 for raw
            unit-vector components), so that the feature term lies in [0, 1].

    Returns:
        (scores [G, Mk] float32, ious [G, Mk] float32).
    """
    mk = mask_feats.shape[0]
    g = sil.shape[0]
    if mk == 0 or g == 0:
        z = torch.zeros(g, mk)
        return z, z.clone()
    valid = labels >= 0
    onehot = torch.zeros(labels.shape[0], mk)
    onehot[torch.nonzero(valid).squeeze(1), labels[valid]] = 1.0
    silf = sil.float()
    inter = silf @ onehot  # [G, Mk]
    union = silf.sum(1, keepdim=True) + onehot.sum(0)[None] - inter
    iou = inter / union.clamp(min=1)
    return iou * feature_agreement(inst_feats, mask_feats, feat_range), iou


def feature_agreement(inst_feats: Tensor, mask_feats: Tensor, feat_range: float = 1.0
                      ) -> Tensor:
    """``clamp(1 - mean|f - g| / feat_range, 0, 1)`` for every (instance, mask) pair.

    Args:
        inst_feats: [G, F]. mask_feats: [Mk, F]. feat_range: range of one channel.

    Returns:
        [G, Mk] float32.
    """
    l1 = (inst_feats[:, None, :].float() - mask_feats[None].float()).abs().mean(-1) / feat_range
    return (1 - l1).clamp(0, 1)


def match_containment(sil: Tensor, labels: Tensor, inst_feats: Tensor, mask_feats: Tensor,
                      feat_range: float = 1.0) -> tuple[Tensor, Tensor]:
    """Containment score of every (silhouette, mask) pair: |sil & mask| / |sil| x (1 - L1).

    The fallback of :func:`match_masks` for fragments much smaller than any mask (instgs).

    Args:
        as :func:`match_masks`.

    Returns:
        (scores [G, Mk] float32, containment [G, Mk] float32 in [0, 1]).
    """
    mk, g = mask_feats.shape[0], sil.shape[0]
    if mk == 0 or g == 0:
        z = torch.zeros(g, mk)
        return z, z.clone()
    lab = torch.where(labels >= 0, labels, torch.full_like(labels, mk))
    silf = sil.float()
    inter = torch.zeros(g, mk + 1).index_add_(1, lab, silf)[:, :mk]
    cont = inter / silf.sum(1, keepdim=True).clamp(min=1)
    return cont * feature_agreement(inst_feats, mask_feats, feat_range), cont


def match_masks_reference(sil: Tensor, labels: Tensor, inst_feats: Tensor, mask_feats: Tensor,
                          feat_range: float = 1.0) -> tuple[Tensor, Tensor]:
    """Reference twin of :func:`match_masks` (explicit loops over silhouettes and masks)."""
    g, mk = sil.shape[0], mask_feats.shape[0]
    scores, ious = torch.zeros(g, mk), torch.zeros(g, mk)
    for i in range(g):
        for m in range(mk):
            a, b = sil[i], labels == m
            inter = float((a & b).sum())
            union = float((a | b).sum())
            iou = inter / union if union > 0 else 0.0
            l1 = float((inst_feats[i].float() - mask_feats[m].float()).abs().mean()) / feat_range
            ious[i, m] = iou
            scores[i, m] = iou * min(max(1.0 - l1, 0.0), 1.0)
    return scores, ious


def match_containment_reference(sil: Tensor, labels: Tensor, inst_feats: Tensor,
                                mask_feats: Tensor, feat_range: float = 1.0
                                ) -> tuple[Tensor, Tensor]:
    """Reference twin of :func:`match_containment` (explicit loops)."""
    g, mk = sil.shape[0], mask_feats.shape[0]
    scores, cont = torch.zeros(g, mk), torch.zeros(g, mk)
    for i in range(g):
        size = float(sil[i].sum())
        for m in range(mk):
            c = float((sil[i] & (labels == m)).sum()) / size if size > 0 else 0.0
            l1 = float((inst_feats[i].float() - mask_feats[m].float()).abs().mean()) / feat_range
            cont[i, m] = c
            scores[i, m] = c * min(max(1.0 - l1, 0.0), 1.0)
    return scores, cont


# --------------------------------------------------------------------------- pooling
def pool_matches(matches: list[ViewMatches], num_instances: int, cfg: LanguageConfig,
                 dim: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool the kept matches into one CLIP feature per instance.

    Args:
        matches: per-view matches (:class:`ViewMatches`).
        num_instances: K.
        cfg: ``pooling`` and ``top_k_views``.
        dim: CLIP feature size (rows for instances without matches are zero).

    Returns:
        features [K, dim] float32 L2-normalised (zero rows when unmatched or when the masks
        carry no CLIP features), view_counts [K] int64 (all kept matches), match_scores
        [K] float32 (mean score of the pooled matches).

    References:
        InstanceGaussian ``attach_lang_feature_scannet.py`` (median, top-5 by mask pixels),
        ``attach_lang_feature_lerf.py`` and OpenGaussian Stage 3 (mean).
    """
    feats = np.zeros((num_instances, dim), np.float32)
    counts = np.zeros(num_instances, np.int64)
    scores = np.zeros(num_instances, np.float32)
    if not matches:
        return feats, counts, scores
    inst = np.concatenate([m.instance_ids for m in matches])
    sc = np.concatenate([m.scores for m in matches])
    px = np.concatenate([m.mask_pixels for m in matches])
    has_clip = all(m.clip.shape[1] == dim for m in matches) and dim > 0
    clip = np.concatenate([m.clip for m in matches]) if has_clip else None
    order = np.argsort(inst, kind="stable")
    inst, sc, px = inst[order], sc[order], px[order]
    clip = clip[order] if clip is not None else None
    ids, starts, cnts = np.unique(inst, return_index=True, return_counts=True)
    for k, s, c in zip(ids, starts, cnts):
        rows = np.arange(s, s + c)
        counts[k] = c
        if cfg.pooling == "median_topk":
            rows = rows[np.argsort(-px[rows], kind="stable")[: cfg.top_k_views]]
        scores[k] = float(sc[rows].mean())
        if clip is not None:
            f = (np.median(clip[rows], axis=0) if cfg.pooling == "median_topk"
                 else clip[rows].mean(axis=0))
            n = float(np.linalg.norm(f))
            feats[k] = f / n if n > 1e-12 else 0.0
    return feats, counts, scores


# --------------------------------------------------------------------------- per view
def _load_view_masks(feat_dir: Path, stem: str, level: str, h: int, w: int
                     ) -> tuple[Tensor, np.ndarray]:
    from instgs.masks.io import read_level
    from instgs.train.trainer import _resize_labels

    labels, rows = read_level(feat_dir, stem, level)
    lab = torch.as_tensor(labels, dtype=torch.int64)
    if lab.shape != (h, w):
        lab = _resize_labels(lab, h, w, feat_dir / f"{stem}_s.npy")
    return lab.reshape(-1), rows


def _silhouettes(cfg: LanguageConfig, g, camera, grp: Tensor, n: int, out, alpha: Tensor,
                 proj, backend: str) -> Tensor:
    """[n, H*W] bool silhouettes of the Gaussian groups ``grp`` (in [0, n) or -1) of a view."""
    thr = cfg.silhouette_threshold
    if cfg.silhouette == "visible":
        top = out.top_ids[0].reshape(-1)
        owner = torch.where(top >= 0, grp[top.clamp(min=0)], torch.full_like(top, -1))
        owner = torch.where(alpha > thr, owner, torch.full_like(owner, -1))
        sil = torch.zeros(n, alpha.numel(), dtype=torch.bool)
        pix = torch.nonzero(owner >= 0).squeeze(1)
        sil[owner[pix], pix] = True
        return sil
    if cfg.alone_method == "splat":
        logt = alone_log_transmittance(proj.means2d[0], proj.conics[0], g.opacities,
                                       proj.extents[0], grp, n, camera.width, camera.height,
                                       cfg.max_pairs)
        return logt < float(np.log1p(-thr))
    return alone_alpha_reference(g, camera, grp, n, backend) > thr


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

    # small masks are ignored (InstanceGaussian filter_th)
    mk = int(labels.max()) + 1 if labels.numel() else 0
    if mk:
        area = torch.bincount(labels[labels >= 0], minlength=mk)
        labels = torch.where((labels >= 0) & (area[labels.clamp(min=0)] >= cfg.min_mask_pixels),
                             labels, torch.full_like(labels, -1))
        area = torch.bincount(labels[labels >= 0], minlength=mk)
    else:
        area = torch.zeros(0, dtype=torch.long)

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
        sil = _silhouettes(cfg, g, camera, grp, ids.numel(), out, alpha, proj, backend)
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


def associate(run, anchor_labels: np.ndarray, cfg: LanguageConfig | None = None,
              num_instances: int | None = None) -> LanguageFeatures:
    """Attach a CLIP feature to every instance of a loaded run.

    Args:
        run: :class:`instgs.train.trainer.LoadedRun` (``cfg``, ``scene``, ``model``,
            ``decode(i)``) with an instance-feature model.
        anchor_labels: [N] int instance id per anchor (-1 = unassigned), e.g. from
            :func:`instgs.segment.labels.load_instances`.
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
    # matching runs on CPU tensors (decoded Gaussians are moved there): gsplat -> auto
    backend = "auto" if tcfg.backend == "gsplat" else tcfg.backend
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
            "anchor_labels_sha1": labels_digest(labels_np), "seconds": time.time() - t0}
    return LanguageFeatures(feats, counts, scores, np.arange(k, dtype=np.int64),
                            config_to_dict(cfg), meta, containment_only=use)


def _to_cpu(ng):
    from instgs.core.gaussians import Gaussians

    g = ng.gaussians
    return replace(ng, gaussians=Gaussians(*(t.detach().cpu() for t in (
        g.means, g.quats, g.scales, g.opacities, g.colors))), anchor_ids=ng.anchor_ids.cpu(),
        child_ids=ng.child_ids.cpu(), ins_feat=ng.ins_feat.detach().cpu())


# --------------------------------------------------------------------------- files
def save_language(run_dir: str | Path, lang: LanguageFeatures) -> Path:
    """Write ``run_dir/language.npz`` atomically.

    Keys: ``instance_features`` [K, 512] float32 (L2-normalised, zero rows = unmatched),
    ``view_counts`` [K] int64, ``match_scores`` [K] float32, ``instance_ids`` [K] int64,
    ``containment_only`` [K] bool, ``config`` () str JSON (:class:`LanguageConfig`),
    ``meta`` () str JSON.
    """
    k = len(lang.instance_ids)
    part = np.zeros(k, bool) if lang.containment_only is None else lang.containment_only
    return atomic_save_npz(
        Path(run_dir) / LANGUAGE_FILE,
        containment_only=np.asarray(part, bool),
        instance_features=np.asarray(lang.instance_features, np.float32),
        view_counts=np.asarray(lang.view_counts, np.int64),
        match_scores=np.asarray(lang.match_scores, np.float32),
        instance_ids=np.asarray(lang.instance_ids, np.int64),
        config=np.array(json.dumps(lang.config)),
        meta=np.array(json.dumps(config_to_dict(lang.meta))))


def read_language_file(path: str | Path) -> LanguageFeatures:
    """Read ``RUN/language.npz`` (or the file itself).

    Raises:
        InputError: missing file (tells to run ``instgs language RUN``), unreadable, or keys
            missing / inconsistent.
    """
    p = Path(path)
    path = p if p.suffix == ".npz" else p / LANGUAGE_FILE
    if not path.is_file():
        raise InputError("this run has no language features", path,
                         f"run `instgs language {p if p.suffix != '.npz' else p.parent}` first")
    try:
        z = np.load(path, allow_pickle=False)
        data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read ({e})", path, "rerun `instgs language RUN`") from e
    need = ("instance_features", "view_counts", "match_scores", "instance_ids")
    missing = [k for k in need if k not in data]
    if missing:
        raise InputError(f"missing keys {missing}", path, "rerun `instgs language RUN`")
    f = data["instance_features"].astype(np.float32)
    k = f.shape[0]
    if f.ndim != 2 or any(data[n].shape != (k,) for n in need[1:]):
        raise InputError("inconsistent array shapes", path, "rerun `instgs language RUN`")
    part = data.get("containment_only")
    if part is not None and part.shape != (k,):
        raise InputError("inconsistent array shapes", path, "rerun `instgs language RUN`")
    return LanguageFeatures(f, data["view_counts"].astype(np.int64),
                            data["match_scores"].astype(np.float32),
                            data["instance_ids"].astype(np.int64),
                            json.loads(str(data["config"])) if "config" in data else {},
                            json.loads(str(data["meta"])) if "meta" in data else {},
                            containment_only=(np.zeros(k, bool) if part is None
                                              else part.astype(bool)))


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


def associate_run(run_dir: str | Path, cfg: LanguageConfig | None = None,
                  device: str = "cpu", cluster_lang: bool = False) -> Path:
    """Load a run and its instances, associate, write ``RUN/language.npz`` (and
    ``RUN/cluster_lang.npz`` if ``cluster_lang``). Returns the language.npz path.

    Raises:
        InputError: see :func:`associate`, plus a missing checkpoint or instances.npz.
    """
    from instgs.segment.labels import load_instances
    from instgs.train.trainer import load_run

    run_dir = Path(run_dir)
    inst = load_instances(run_dir)
    run = load_run(run_dir, device=device)
    lang = associate(run, inst.anchor_labels, cfg, num_instances=inst.num_instances)
    path = save_language(run_dir, lang)
    if cluster_lang:
        export_cluster_lang(lang, inst.anchor_labels, run_dir / "cluster_lang.npz")
    return path
