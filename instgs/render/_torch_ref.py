"""Dense pure-PyTorch reference rasterizer: the spec the ``cpu`` kernel is tested against.

Every pixel is composited against every (non-culled) Gaussian of its camera, in depth
order, with autograd for the gradients (like gsplat's ``cuda/_torch_impl.py``). It is exact
and readable, not fast: memory is O(pixels x Gaussians) per chunk. Use it for small inputs.

Compositing rule (3DGS / gsplat "classic", docs/rasterizer.md), per pixel, Gaussians sorted
by (camera z, index):

    sigma_i = 0.5 dᵀ Σ2D⁻¹ d,  d = mean2d_i - pixel centre
    alpha_i = min(0.99, o_i exp(-sigma_i)),   skipped if alpha_i < 1/255 (or sigma_i < 0)
    T_i     = prod_{j < i, not skipped} (1 - alpha_j)
    stop (exclusively) at the first i with T_i (1 - alpha_i) <= 1e-4
    out     = sum_i alpha_i T_i c_i + T_final bg,   alpha_out = 1 - T_final
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .projection import ALPHA_MAX, ALPHA_MIN, T_MIN

__all__ = ["rasterize_dense"]


def _composite(pix: Tensor, means2d: Tensor, conics: Tensor, opacities: Tensor,
               colors: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Composite P pixels against M depth-sorted Gaussians.

    Args:
        pix: [P, 2] pixel centres. means2d [M, 2], conics [M, 3], opacities [M],
        colors [M, K], all sorted front to back.

    Returns:
        (render [P, K] without background, T_final [P], weights [P, M]).
    """
    d = means2d[None, :, :] - pix[:, None, :]  # [P, M, 2]
    dx, dy = d[..., 0], d[..., 1]
    a, b, c = conics[:, 0], conics[:, 1], conics[:, 2]
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = torch.clamp(opacities[None, :] * torch.exp(-sigma), max=ALPHA_MAX)
    ok = (sigma >= 0) & (alpha >= ALPHA_MIN)
    with torch.no_grad():
        # Transmittance after each Gaussian if every non-skipped one contributed; the pixel
        # keeps Gaussian i only while that stays above T_MIN (exclusive stop).
        t_incl = torch.cumprod(torch.where(ok, 1 - alpha, torch.ones_like(alpha)), dim=1)
        contrib = ok & (t_incl > T_MIN)
    alpha = torch.where(contrib, alpha, torch.zeros_like(alpha))
    t_incl = torch.cumprod(1 - alpha, dim=1)
    t_excl = torch.cat([torch.ones_like(t_incl[:, :1]), t_incl[:, :-1]], dim=1)
    weights = alpha * t_excl  # [P, M]
    T_final = t_incl[:, -1] if t_incl.shape[1] else torch.ones_like(pix[:, 0])
    return weights @ colors, T_final, weights


def rasterize_dense(means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor,
                    depths: Tensor, valid: Tensor, width: int, height: int, *,
                    backgrounds: Tensor | None = None, return_top_ids: bool = False,
                    max_pairs: int = 4_000_000) -> tuple[Tensor, Tensor, Tensor | None]:
    """Composite projected Gaussians into C images, densely (reference twin of the kernel).

    Args:
        means2d: [C, N, 2] pixel coordinates. conics: [C, N, 3]. colors: [C, N, K] channels
            (rgb, features, depth ... any K). opacities: [C, N] in [0, 1].
        depths: [C, N] camera z (sort key, not differentiated). valid: [C, N] bool.
        width, height: image size in pixels.
        backgrounds: [C, K] added as T_final * bg, or None.
        return_top_ids: also return the index of the Gaussian with the largest weight.
        max_pairs: pixels are processed in chunks of about max_pairs / M pixels (checkpointed
            when gradients are needed) to bound memory.

    Returns:
        (render [C, H, W, K], alpha [C, H, W, 1], top_ids [C, H, W] int64 (-1 = none) or None).
    """
    C, N, K = colors.shape
    dev, dt = means2d.device, means2d.dtype
    ys, xs = torch.meshgrid(torch.arange(height, device=dev, dtype=dt),
                            torch.arange(width, device=dev, dtype=dt), indexing="ij")
    pix = torch.stack([xs, ys], -1).reshape(-1, 2) + 0.5  # [P, 2], pixel centres
    renders, alphas, tops = [], [], []
    for ci in range(C):
        ids = torch.nonzero(valid[ci]).squeeze(1)
        # Stable sort by depth: ties keep index order, like the kernel's (depth, index) key.
        ids = ids[torch.sort(depths[ci, ids].detach(), stable=True).indices]
        args = (means2d[ci, ids], conics[ci, ids], opacities[ci, ids], colors[ci, ids])
        chunk = max(1, max_pairs // max(1, len(ids)))
        need_grad = torch.is_grad_enabled() and any(t.requires_grad for t in args)
        out_c, T_c, top_c = [], [], []
        for p0 in range(0, pix.shape[0], chunk):
            p = pix[p0:p0 + chunk]
            if need_grad and not return_top_ids and p.shape[0] < pix.shape[0]:
                r, T, _ = checkpoint(_composite, p, *args, use_reentrant=False)
            else:
                r, T, w = _composite(p, *args)
                if return_top_ids:
                    if w.shape[1]:
                        wmax, arg = w.detach().max(dim=1)
                        top_c.append(torch.where(wmax > 0, ids[arg], torch.full_like(arg, -1)))
                    else:
                        top_c.append(torch.full((p.shape[0],), -1, dtype=torch.long,
                                                device=dev))
            out_c.append(r)
            T_c.append(T)
        render = torch.cat(out_c)
        T_final = torch.cat(T_c)
        if backgrounds is not None:
            render = render + T_final[:, None] * backgrounds[ci][None, :]
        renders.append(render.reshape(height, width, K))
        alphas.append((1 - T_final).reshape(height, width, 1))
        if return_top_ids:
            tops.append(torch.cat(top_c).reshape(height, width).long())
    top_ids = torch.stack(tops) if return_top_ids else None
    return torch.stack(renders), torch.stack(alphas), top_ids
