"""Pure loss and metric functions: photometric (3DGS) and instance-feature (OpenGaussian /
InstanceGaussian) losses.

Photometric: ``(1 - lambda) * L1 + lambda * (1 - SSIM)`` with lambda = 0.2 (3DGS, Scaffold-GS).

Instance features (OpenGaussian, Wu et al. NeurIPS 2024, Eq. 1-2; InstanceGaussian seed 004
Eq. 3): with SAM masks ``m_i`` of one view and the rendered feature map ``F``,

* mask means ``mu_i`` = mean of ``F`` over pixels of ``m_i`` whose rendered alpha > 0.7;
* cohesion = mean_i mean_{p in m_i} ||F(p) - mu_i||_2;
* separation = mean_{i != j} w_ij / (||mu_i - mu_j||^2 + 1), with rank weights
  ``w_ij`` in [0.1, 1] (larger for closer pairs, OpenGaussian's scheme);
* InstanceGaussian truncation: ``w_ij = 0`` where the two masks are already far apart.
  Released code (default): squared L2 distance of the [0, 1]-mapped normalised features
  ``> 0.4``, only in the joint phase. Paper: plain L2 distance of the raw normalised features
  ``> 0.4``. See ``LossConfig.truncation``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from instgs.core.checks import check_shape

__all__ = ["LossConfig", "l1_loss", "ssim", "psnr", "photometric_loss", "mask_means",
           "cohesion_loss", "separation_loss", "instance_feature_losses",
           "projected_instance_losses"]


@dataclass(frozen=True)
class LossConfig:
    """Loss weights and instance-loss variants."""

    lambda_dssim: float = 0.2
    """Weight of (1 - SSIM) in the photometric loss (3DGS)."""
    lambda_scale_reg: float = 0.0
    """Scaffold-GS volume regulariser ``mean(prod(scales))`` weight (Scaffold-GS uses 0.01;
    InstanceGaussian drops it: default 0)."""
    lambda_separation: float = 1.0
    """Weight of the inter-mask separation loss (InstanceGaussian ScanNet: 1)."""
    lambda_cohesion: float = 0.1
    """Weight of the intra-mask cohesion loss (ScanNet 0.1; LeRF 0.01)."""
    alpha_threshold: float = 0.7
    """Mask means use only pixels with rendered alpha above this (OpenGaussian)."""
    min_mask_pixels: int = 10
    """Masks with fewer pixels (at training resolution) are dropped (InstanceGaussian filter_th)."""
    truncation: Literal["released", "paper", "none"] = "released"
    """Separation truncation. ``released``: zero the weight where the squared L2 distance of
    [0,1]-mapped normalised mask means exceeds ``truncation_threshold``, joint phase only
    (InstanceGaussian code). ``paper``: plain L2 distance of raw normalised means > threshold,
    in both semantic phases (seed 004 Eq. 3). ``none``: OpenGaussian's untruncated loss."""
    truncation_threshold: float = 0.4
    """Distance threshold of the truncation (0.4 in both paper and code)."""
    instance_target: Literal["rendered", "projected", "both"] = "rendered"
    """What the mask losses act on. ``rendered`` (OpenGaussian / InstanceGaussian, paper and
    code): the alpha-blended feature map, one extra render pass per step. ``projected``
    (instgs): the features of the anchors that project into each mask and pass a depth
    test against the step's rendered depth (:func:`projected_instance_losses`); no feature
    render, geometry untouched by the feature loss. ``both``: the sum."""
    visibility_tol_abs: float = 0.05
    """``projected``: absolute depth tolerance of the visibility test (scene units)."""
    visibility_tol_rel: float = 0.02
    """``projected``: relative depth tolerance (fraction of the rendered depth)."""
    occlusion_border_px: float = 0.0
    """``projected``: drop a sample whose anchor another anchor hides at its own pixel
    (anchor z-buffer, :func:`instgs.render.visibility.occluded_near_border`) when the pixel
    lies within this many pixels of a mask border; 0 = off (default; the ``scannet``
    preset uses 3)."""
    occlusion_min_dz: float = 0.005
    """``projected``: depth margin (scene units) of that occlusion test."""


def l1_loss(pred: Tensor, gt: Tensor) -> Tensor:
    """Mean absolute error over all elements."""
    return (pred - gt).abs().mean()


def _gaussian_window(size: int, sigma: float, device, dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: Tensor, gt: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity (Wang et al. 2004) with an 11x11 Gaussian window, as in 3DGS.

    Computed with separable convolutions and zero padding (``padding = window // 2``), the
    same borders as 3DGS's ``ssim``.

    Args:
        pred, gt: [H, W, C] or [B, H, W, C] float in [0, 1].

    Returns:
        Scalar mean SSIM.
    """
    if pred.dim() == 3:
        pred, gt = pred[None], gt[None]
    x = pred.permute(0, 3, 1, 2)
    y = gt.permute(0, 3, 1, 2)
    c = x.shape[1]
    g = _gaussian_window(window, sigma, x.device, x.dtype)
    wx = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    wy = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    pad = window // 2

    def blur(t: Tensor) -> Tensor:
        t = F.conv2d(t, wx, padding=(0, pad), groups=c)
        return F.conv2d(t, wy, padding=(pad, 0), groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return (num / den).mean()


def psnr(pred: Tensor, gt: Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    mse = float(((pred.clamp(0, 1) - gt) ** 2).mean())
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def photometric_loss(pred: Tensor, gt: Tensor, lambda_dssim: float = 0.2) -> Tensor:
    """``(1 - lambda) * L1 + lambda * (1 - SSIM)``; pred, gt: [H, W, 3] in [0, 1]."""
    return (1.0 - lambda_dssim) * l1_loss(pred, gt) + lambda_dssim * (1.0 - ssim(pred, gt))


def mask_means(feat: Tensor, masks: Tensor, alpha: Tensor, alpha_threshold: float = 0.7
               ) -> tuple[Tensor, Tensor]:
    """Mean rendered feature per mask over pixels with alpha above the threshold.

    Args:
        feat: [H, W, D] rendered features (or any [..., D] set of samples, e.g. [P, D]
            projected points).
        masks: [H, W] (matching ``feat.shape[:-1]``) int64 local mask ids 0..M-1, -1 = none.
        alpha: [H, W] or [H, W, 1] rendered alpha (ones for projected points).

    Returns:
        means [M, D] and the number of contributing pixels per mask [M] (float).
    """
    check_shape("feat", feat, "* D")
    if masks.shape != feat.shape[:-1]:
        raise ValueError(f"masks {tuple(masks.shape)} do not match feat {tuple(feat.shape)}")
    m = int(masks.max()) + 1 if masks.numel() and masks.max() >= 0 else 0
    d = feat.shape[-1]
    valid = (masks >= 0) & (alpha.reshape(masks.shape) > alpha_threshold)
    ids = masks[valid]
    sums = feat.new_zeros(m, d).index_add(0, ids, feat[valid])
    counts = feat.new_zeros(m).index_add(0, ids, torch.ones_like(ids, dtype=feat.dtype))
    return sums / counts.clamp(min=1)[:, None], counts


def cohesion_loss(feat: Tensor, masks: Tensor, means: Tensor, keep: Tensor) -> Tensor:
    """Intra-mask cohesion (OpenGaussian Eq. 1).

    Args:
        feat: [H, W, D] (or [P, D]); masks: [H, W] (or [P]) local ids (-1 none);
        means: [M, D] mask means;
        keep: [M] bool masks that take part.

    Returns:
        Mean over kept masks of the mean L2 distance of their pixels' features to the mask mean.
    """
    sel = masks >= 0
    ids = masks[sel]
    on = keep[ids]
    ids = ids[on]
    dist = (feat[sel][on] - means[ids]).norm(dim=-1)
    m = means.shape[0]
    per = feat.new_zeros(m).index_add(0, ids, dist)
    cnt = feat.new_zeros(m).index_add(0, ids, torch.ones_like(dist))
    per = per[keep] / cnt[keep].clamp(min=1)
    return per.mean() if per.numel() else feat.sum() * 0


def separation_loss(means: Tensor, truncate_sq_dist: Tensor | None = None,
                    truncation_threshold: float = 0.4) -> Tensor:
    """Inter-mask separation with rank weights (OpenGaussian Eq. 2) and optional truncation.

    Args:
        means: [M, D] mask-mean features (the space the loss acts in).
        truncate_sq_dist: [M, M] distances used for InstanceGaussian's truncation (already in
            the variant's metric: squared mapped or plain raw L2); pairs above
            ``truncation_threshold`` get weight 0. None disables truncation.

    Returns:
        Scalar ``sum_{i != j} w_ij / (||mu_i - mu_j||^2 + 1) / (M (M - 1))``; 0 for M < 2.
    """
    m = means.shape[0]
    if m < 2:
        return means.sum() * 0
    d2 = (means[:, None, :] - means[None, :, :]).pow(2).sum(-1)
    inv = 1.0 / (d2 + 1.0)
    eye = torch.eye(m, dtype=torch.bool, device=means.device)
    inv = inv.masked_fill(eye, 0.0)
    with torch.no_grad():
        rank = inv.argsort(dim=-1).argsort(dim=-1).float()
        w = rank / (m - 1) * 0.9 + 0.1
        if truncate_sq_dist is not None:
            w = torch.where(truncate_sq_dist > truncation_threshold, torch.zeros_like(w), w)
    return (inv * w).sum() / (m * (m - 1))


def instance_feature_losses(feat: Tensor, alpha: Tensor, masks: Tensor, cfg: LossConfig,
                            phase: Literal["separate", "joint"], mapped: bool = True
                            ) -> dict[str, Tensor]:
    """Cohesion + separation for one view on a rendered feature map (``rendered`` target).

    Args:
        feat: [H, W, D] rendered instance features; ``mapped=True`` means they were rendered
            as ``(normalize(f) + 1) / 2`` (released code), else as ``normalize(f)``.
        alpha: [H, W, 1] rendered alpha.
        masks: [H, W] int64 local mask ids (-1 none) at the render resolution.
        cfg: loss configuration. phase: the current semantic phase.

    Returns:
        dict with ``cohesion``, ``separation`` (scalars) and ``num_masks`` (int tensor).
    """
    check_shape("feat", feat, "H W D")
    means, counts = mask_means(feat, masks, alpha, cfg.alpha_threshold)
    return _mask_losses(feat, masks, means, counts, cfg, phase, mapped)


def projected_instance_losses(point_feat: Tensor, point_masks: Tensor, cfg: LossConfig,
                              phase: Literal["separate", "joint"], mapped: bool = True
                              ) -> dict[str, Tensor]:
    """Cohesion + separation for one view on the features of the points it sees
    (``projected`` target, instgs).

    The same OpenGaussian losses as :func:`instance_feature_losses`, with the pixels of a
    mask replaced by the anchors that project into it and pass the depth test
    (:func:`instgs.render.visibility.visible_points`): each anchor's own feature instead of
    an alpha-blend of its neighbours'. A mask needs ``cfg.min_mask_pixels`` such anchors.

    Args:
        point_feat: [P, D] features of the visible anchors, in the same space as the rendered
            ones (``(normalize(f) + 1) / 2`` when ``mapped``).
        point_masks: [P] int64 local mask id under each anchor (-1 none).
        cfg, phase, mapped: as in :func:`instance_feature_losses`.

    Returns:
        dict with ``cohesion``, ``separation`` (scalars) and ``num_masks`` (int tensor).
    """
    check_shape("point_feat", point_feat, "P D")
    check_shape("point_masks", point_masks, "P", P=point_feat.shape[0])
    ones = point_feat.new_ones(point_masks.shape)
    means, counts = mask_means(point_feat, point_masks, ones, 0.0)
    return _mask_losses(point_feat, point_masks, means, counts, cfg, phase, mapped)


def _mask_losses(feat: Tensor, masks: Tensor, means: Tensor, counts: Tensor, cfg: LossConfig,
                 phase: str, mapped: bool) -> dict[str, Tensor]:
    keep = counts >= cfg.min_mask_pixels
    kept = means[keep]
    trunc = None
    active = cfg.truncation == "paper" or (cfg.truncation == "released" and phase == "joint")
    if active and kept.shape[0] >= 2:
        with torch.no_grad():
            if cfg.truncation == "released":
                mp = kept if mapped else (kept + 1) / 2
                trunc = (mp[:, None] - mp[None]).pow(2).sum(-1)
            else:
                raw = kept * 2 - 1 if mapped else kept
                trunc = (raw[:, None] - raw[None]).norm(dim=-1)
    return {
        "cohesion": cohesion_loss(feat, masks, means, keep),
        "separation": separation_loss(kept, trunc, cfg.truncation_threshold),
        "num_masks": keep.sum(),
    }
