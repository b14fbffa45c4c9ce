"""Instance silhouettes of one view for the 2D-3D association (:mod:`instgs.language.associate`).

* ``"alone"`` (released InstanceGaussian ``render4attach``): each instance rendered without the
  rest of the scene, alpha > threshold. The fast path (:func:`alone_log_transmittance`)
  splats all instances of a view at once by accumulating ``log(1 - alpha_i)`` per (instance,
  pixel) over each Gaussian's footprint -- the alpha of a set of Gaussians rendered alone,
  ``1 - prod(1 - alpha_i)``, does not depend on their depth order.
  :func:`alone_alpha_reference` is its slow reference twin (one render per instance).
* ``"visible"``: the pixels where the instance owns the front-most contributor (``top_ids``)
  and the full render's alpha > threshold.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["alone_log_transmittance", "alone_alpha_reference", "silhouettes"]


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


def silhouettes(cfg, g, camera, grp: Tensor, n: int, out, alpha: Tensor,
                 proj, backend: str) -> Tensor:
    """[n, H*W] bool silhouettes of the Gaussian groups ``grp`` (in [0, n) or -1) of a view.

    Args:
        cfg: the :class:`~instgs.language.associate.LanguageConfig` (``silhouette``,
            ``alone_method``, ``silhouette_threshold``, ``max_pairs``).
        g: the view's Gaussians. camera: one-camera Cameras. grp: [M] int64 group per
            Gaussian. n: number of groups. out: the full render (with ``top_ids`` for
            ``visible``). alpha: [H*W] its alpha. proj: projection of ``g`` (``alone`` splat
            path) or None. backend: render backend of the reference path.
    """
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
