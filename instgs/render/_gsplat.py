"""Adapter from :func:`instgs.render.render` to ``gsplat.rasterization`` (gsplat v1.5.3, CUDA).

gsplat is imported lazily; a missing package or CUDA device raises
:class:`BackendUnavailableError`. rgb, features and depth are rendered in one call: the
features are extra colour channels (``sh_degree=None`` accepts any D) and ``render_mode=
"RGB+ED"`` appends the expected depth. ``top_ids`` come from
``gsplat.rasterize_to_indices_in_range`` (the pixel/Gaussian pairs that contribute, front to
back per pixel) re-weighted with T * alpha.

Differences to the ``cpu``/``torch`` backends (docs/rasterizer.md): gsplat 1.5.3 clamps
alpha at 0.999 instead of 0.99 (only Gaussians with opacity > 0.99 differ).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from instgs.core.cameras import Cameras
from instgs.core.gaussians import Gaussians

from ._types import BackendUnavailableError, RenderOutput

__all__ = ["render_gsplat", "gsplat_available"]

_GSPLAT_ALPHA_MAX = 0.999  # gsplat 1.5.3 RasterizeToPixels3DGSFwd.cu


def _import_gsplat():
    try:
        import gsplat  # noqa: F401
        from gsplat import rasterization, rasterize_to_indices_in_range
    except Exception as e:  # ImportError, or gsplat's own CUDA build errors
        raise BackendUnavailableError(
            f"backend='gsplat' needs the gsplat package with its CUDA extension ({e}). "
            "Fix: pip install gsplat on a machine with CUDA, or use backend='cpu'.") from e
    return rasterization, rasterize_to_indices_in_range


def gsplat_available() -> bool:
    """True if gsplat imports and a CUDA device is present (does not build gsplat's ops)."""
    if not torch.cuda.is_available():
        return False
    try:
        _import_gsplat()
    except BackendUnavailableError:
        return False
    return True


def _radii_from_conics(conics: Tensor, valid: Tensor) -> Tensor:
    """3DGS radius ceil(3 sqrt(lambda_max(Σ2D))) from conics [C, N, 3]; 0 where not valid."""
    a, b, c = conics.detach().unbind(-1)
    det_c = (a * c - b * b).clamp_min(1e-20)
    xx, xy, yy = c / det_c, -b / det_c, a / det_c
    mid = 0.5 * (xx + yy)
    det = xx * yy - xy * xy
    lam = mid + torch.sqrt(torch.clamp_min(mid * mid - det, 0.0))
    r = torch.ceil(3.0 * torch.sqrt(lam))
    return torch.where(valid, r, torch.zeros_like(r)).to(torch.int32)


def _top_ids(meta: dict, width: int, height: int, rasterize_to_indices_in_range) -> Tensor:
    """Index of the Gaussian with the largest T * alpha per pixel, from gsplat's meta."""
    means2d, conics, opac = meta["means2d"], meta["conics"], meta["opacities"]
    C = means2d.shape[0]
    offsets, flat = meta["isect_offsets"], meta["flatten_ids"]
    tile_size = meta["tile_size"]
    n_isects = flat.numel()
    bounds = torch.cat([offsets.flatten(), torch.tensor([n_isects], device=offsets.device,
                                                        dtype=offsets.dtype)])
    max_range = int((bounds[1:] - bounds[:-1]).max().item()) if bounds.numel() > 1 else 0
    n_batches = max(1, math.ceil(max_range / (tile_size * tile_size)))
    T0 = torch.ones(C, height, width, device=means2d.device)
    with torch.no_grad():
        gs, pix, img = rasterize_to_indices_in_range(
            0, n_batches, T0, means2d.detach(), conics.detach(), opac.detach(), width, height,
            tile_size, offsets, flat)
        n_rays = C * height * width
        top = torch.full((n_rays,), -1, dtype=torch.long, device=means2d.device)
        if gs.numel() == 0:
            return top.reshape(C, height, width)
        gs, pix, img = gs.long(), pix.long(), img.long()
        px = (pix % width).float() + 0.5
        py = torch.div(pix, width, rounding_mode="floor").float() + 0.5
        m = means2d.detach()[img, gs]
        cn = conics.detach()[img, gs]
        dx, dy = m[:, 0] - px, m[:, 1] - py
        sigma = 0.5 * (cn[:, 0] * dx * dx + cn[:, 2] * dy * dy) + cn[:, 1] * dx * dy
        alpha = torch.clamp_max(opac.detach()[img, gs] * torch.exp(-sigma), _GSPLAT_ALPHA_MAX)
        ray = img * height * width + pix
        # Pairs are grouped per ray, front to back: exclusive cumulative log-transmittance.
        la = torch.log1p(-alpha)
        excl = torch.cumsum(la, 0) - la
        idx = torch.arange(ray.numel(), device=ray.device)
        is_start = torch.ones_like(ray, dtype=torch.bool)
        is_start[1:] = ray[1:] != ray[:-1]
        start = torch.cummax(torch.where(is_start, idx, torch.zeros_like(idx)), 0).values
        w = alpha * torch.exp(excl - excl[start])
        wmax = torch.zeros(n_rays, device=w.device).scatter_reduce(0, ray, w, "amax")
        is_max = w >= wmax[ray]
        first = torch.full((n_rays,), ray.numel(), dtype=torch.long, device=w.device)
        first = first.scatter_reduce(0, ray[is_max], idx[is_max], "amin")
        has = first < ray.numel()
        top[has] = gs[first[has]]
    return top.reshape(C, height, width)


def render_gsplat(gaussians: Gaussians, cameras: Cameras, *, features: Tensor | None,
                  backgrounds: Tensor | None, return_top_ids: bool, near_plane: float,
                  eps2d: float) -> RenderOutput:
    """``render`` on CUDA through ``gsplat.rasterization`` (arguments as in ``render``).

    Raises:
        BackendUnavailableError: gsplat missing/broken or tensors not on a CUDA device.
    """
    rasterization, rasterize_to_indices_in_range = _import_gsplat()
    if not (torch.cuda.is_available() and gaussians.means.is_cuda):
        raise BackendUnavailableError(
            "backend='gsplat' needs CUDA tensors on a CUDA device. Fix: move the Gaussians "
            "and cameras to CUDA (gaussians tensors .cuda(), cameras.to('cuda')), or use "
            "backend='cpu'.")
    dev = gaussians.means.device
    C, W, H = len(cameras), cameras.width, cameras.height
    D = 0 if features is None else features.shape[1]
    colors = gaussians.colors if features is None else torch.cat([gaussians.colors, features], -1)
    bg = backgrounds
    if bg is not None and D:
        bg = torch.cat([bg, torch.zeros(C, D, device=dev, dtype=bg.dtype)], -1)
    render_colors, render_alphas, meta = rasterization(
        means=gaussians.means, quats=gaussians.quats, scales=gaussians.scales,
        opacities=gaussians.opacities, colors=colors,
        viewmats=cameras.viewmats.to(dev).float(), Ks=cameras.Ks.to(dev).float(),
        width=W, height=H, near_plane=near_plane, eps2d=eps2d, sh_degree=None,
        packed=False, backgrounds=bg, render_mode="RGB+ED", rasterize_mode="classic")
    alpha = render_alphas
    depth = torch.where(alpha > 0, render_colors[..., -1:], torch.zeros_like(alpha))
    radii_g = meta["radii"]
    valid = (radii_g > 0).all(-1) if radii_g.dim() == 3 else radii_g > 0
    top = _top_ids(meta, W, H, rasterize_to_indices_in_range) if return_top_ids else None
    return RenderOutput(
        rgb=render_colors[..., :3],
        alpha=alpha,
        depth=depth,
        features=render_colors[..., 3:3 + D] if D else None,
        top_ids=top,
        radii=_radii_from_conics(meta["conics"], valid),
        means2d=meta["means2d"],
    )
