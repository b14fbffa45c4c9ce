"""Which 3D points a rendered view actually sees: projection plus a depth test against the
view's own rendered depth.

This is how instgs ties SAM masks to anchors without rendering feature maps (the
``projected`` instance-feature target, docs/instance-features.md): a point is *visible* in a view
when it projects inside the image, in front of the camera, onto a pixel the render covers
(alpha above ``min_alpha``), and its camera depth agrees with the rendered expected depth to
within ``max(tol_abs, tol_rel * depth)``. It is the depth test of MaskClustering-style 2D-mask
lifting (and of ``render_scannet_views.py``'s "seen" vertices), with the depth coming from
the trained Gaussians instead of a sensor.

Conventions: OpenCV camera axes, ``viewmat`` world-to-camera, ``K`` in pixels, and pixel
``(u, v)`` covering ``[u, u+1) x [v, v+1)`` (its centre at ``u + 0.5``), as in
:mod:`instgs.render.projection`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from instgs.core.checks import check_shape

__all__ = ["visible_points", "visible_points_ref"]


@torch.no_grad()
def visible_points(points: Tensor, viewmat: Tensor, K: Tensor, depth: Tensor, alpha: Tensor,
                   tol_abs: float = 0.05, tol_rel: float = 0.02, min_alpha: float = 0.5,
                   near: float = 0.01) -> tuple[Tensor, Tensor]:
    """Points seen by one rendered view, and the pixel each lands on.

    Args:
        points: [N, 3] float world positions (scene units, metres for ScanNet).
        viewmat: [4, 4] world-to-camera (OpenCV axes).
        K: [3, 3] intrinsics in pixels.
        depth: [H, W] or [H, W, 1] rendered expected camera z (``RenderOutput.depth``).
        alpha: [H, W] or [H, W, 1] rendered alpha.
        tol_abs: absolute depth tolerance (scene units).
        tol_rel: relative depth tolerance (fraction of the rendered depth).
        min_alpha: pixels with less rendered alpha are treated as empty.
        near: points closer than this (camera z) are not visible.

    Returns:
        ``(idx, pix)``: [P] int64 indices into ``points`` of the visible points (ascending)
        and [P] int64 flat pixel indices ``v * W + u``.

    Raises:
        ShapeError: wrong shapes.
    """
    check_shape("points", points, "N 3")
    check_shape("viewmat", viewmat, "4 4")
    check_shape("K", K, "3 3")
    depth = depth.reshape(depth.shape[0], depth.shape[1])
    alpha = alpha.reshape(depth.shape)
    h, w = depth.shape
    p = points.to(viewmat.dtype)
    pc = p @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = pc[:, 2]
    zs = z.clamp(min=near)
    u = torch.floor(pc[:, 0] / zs * K[0, 0] + K[0, 2])
    v = torch.floor(pc[:, 1] / zs * K[1, 1] + K[1, 2])
    inside = (z > near) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    idx = torch.nonzero(inside).squeeze(1)
    pix = v[idx].long() * w + u[idx].long()
    d = depth.reshape(-1)[pix]
    a = alpha.reshape(-1)[pix]
    tol = torch.clamp(tol_rel * d, min=tol_abs)
    ok = (a > min_alpha) & ((z[idx] - d).abs() < tol)
    return idx[ok], pix[ok]


def visible_points_ref(points, viewmat, K, depth, alpha, tol_abs: float = 0.05,
                       tol_rel: float = 0.02, min_alpha: float = 0.5, near: float = 0.01
                       ) -> tuple[list[int], list[int]]:
    """Point-by-point loop twin of :func:`visible_points` (tests only; same arguments)."""
    import math

    depth = depth.reshape(depth.shape[0], depth.shape[1])
    alpha = alpha.reshape(depth.shape)
    h, w = depth.shape
    R = viewmat[:3, :3].tolist()
    t = viewmat[:3, 3].tolist()
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    idx, pix = [], []
    for n, (x, y, zw) in enumerate(points.tolist()):
        cam = [R[r][0] * x + R[r][1] * y + R[r][2] * zw + t[r] for r in range(3)]
        if not cam[2] > near:
            continue
        u = math.floor(cam[0] / cam[2] * fx + cx)
        v = math.floor(cam[1] / cam[2] * fy + cy)
        if not (0 <= u < w and 0 <= v < h):
            continue
        d = float(depth[v, u])
        if float(alpha[v, u]) > min_alpha and abs(cam[2] - d) < max(tol_abs, tol_rel * d):
            idx.append(n)
            pix.append(v * w + u)
    return idx, pix
