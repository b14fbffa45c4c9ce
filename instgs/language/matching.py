"""Matching instance silhouettes to SAM masks, and pooling the matched masks' CLIP rows.

OpenGaussian's score (Wu et al., NeurIPS 2024, Eq. 5), as InstanceGaussian's
``attach_lang_feature_*.py`` uses it: ``IoU(silhouette, mask) x (1 - L1(f, g))`` with the
mean absolute difference over channels divided by the channel range (docs/language.md).
Every vectorised function has a loop twin (``*_reference``) that the tests compare against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["ViewMatches", "mask_mean_features", "match_masks", "feature_agreement",
           "match_containment", "match_masks_reference", "match_containment_reference",
           "pool_matches"]


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


def pool_matches(matches: list[ViewMatches], num_instances: int, cfg,
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
