"""Which 3D points a rendered view actually sees: projection plus a depth test against the
view's own rendered depth.

This is how instgs ties SAM masks to anchors without rendering feature maps (the
``projected`` instance-feature target, docs/instance-features.md): a point is *visible* in a view
when it projects inside the image, in front of the camera, onto a pixel the render covers
(alpha above ``min_alpha``), and its camera depth agrees with the rendered expected depth to
within ``max(tol_abs, tol_rel * depth)``. It is the depth test of MaskClustering-style 2D-mask
lifting (and of ``render_scannet_views.py``'s "seen" vertices), with the depth coming from
the trained Gaussians instead of a sensor.

The depth test alone lets a point through when a different surface lies in front of it by
less than the tolerance (a wall vertex behind a door's edge, a floor vertex under a chair
leg). :func:`occluded_near_border` adds an occlusion test among the points themselves: each
point is splatted as a disk of its neighbour spacing with a 45-degree depth cone
(:func:`point_zbuffer`), and a visible point whose own pixel is won by another point more
than ``min_dz`` in front, close to a mask border, is flagged (docs/instance-features.md).

Conventions: OpenCV camera axes, ``viewmat`` world-to-camera, ``K`` in pixels, and pixel
``(u, v)`` covering ``[u, u+1) x [v, v+1)`` (its centre at ``u + 0.5``), as in
:mod:`instgs.render.projection`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from instgs.core.checks import check_shape

__all__ = ["visible_points", "visible_points_ref", "point_footprint_radii", "point_zbuffer",
           "point_zbuffer_ref", "mask_border_distance", "hidden_by_points",
           "occluded_near_border", "FootprintCache", "mask_samples"]


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
    u, v, z = _project(points, viewmat, K, near)
    u, v = torch.floor(u), torch.floor(v)
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


def point_footprint_radii(points, k: int = 4) -> Tensor:
    """World-space footprint radius of every point: mean distance to its ``k`` nearest
    neighbours (scipy cKDTree).

    Args:
        points: [N, 3] float tensor or array (scene units).
        k: neighbours averaged.

    Returns:
        [N] float32 tensor (scene units); 0 for a lone point.
    """
    import numpy as np
    from scipy.spatial import cKDTree

    p = points.detach().cpu().numpy() if isinstance(points, Tensor) else np.asarray(points)
    n = len(p)
    if n < 2:
        return torch.zeros(n)
    kk = min(k, n - 1)
    d, _ = cKDTree(p).query(p, k=kk + 1)
    return torch.as_tensor(np.asarray(d).reshape(n, -1)[:, 1:].mean(1), dtype=torch.float32)


def _project(points: Tensor, viewmat: Tensor, K: Tensor, near: float):
    pc = points.to(viewmat.dtype) @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = pc[:, 2]
    zs = z.clamp(min=near)
    return pc[:, 0] / zs * K[0, 0] + K[0, 2], pc[:, 1] / zs * K[1, 1] + K[1, 2], z


@torch.no_grad()
def point_zbuffer(points: Tensor, radii: Tensor, viewmat: Tensor, K: Tensor, height: int,
                  width: int, max_radius_px: int = 6, near: float = 0.01) -> Tensor:
    """Z-buffer of points drawn as disks with a 45-degree depth cone.

    Point ``n`` at camera depth ``z`` covers the pixels within
    ``r = clamp(radii[n] * fx / z, 1, max_radius_px)`` pixels of its own pixel
    ``(floor(u), floor(v))``; at a pixel ``d`` pixels away its depth is ``z + d * z / fx``
    (so where disks of one surface overlap, the pixel goes to the nearest centre, while a
    real occluder in front still wins). This is the point-splat z-buffer of
    ``render_scannet_views.py`` and of point-based visibility in mask lifting.

    Args:
        points: [N, 3] float world positions.
        radii: [N] float footprint radius in scene units (:func:`point_footprint_radii`).
        viewmat: [4, 4] world-to-camera (OpenCV axes). K: [3, 3] intrinsics in pixels.
        height, width: image size in pixels.
        max_radius_px: largest disk radius in pixels.
        near: points closer than this are not drawn.

    Returns:
        [H * W] float tensor (viewmat dtype): the smallest cone depth per pixel, +inf where
        no disk lands.

    Raises:
        ShapeError: wrong shapes.
    """
    check_shape("points", points, "N 3")
    check_shape("radii", radii, "N")
    u, v, z = _project(points, viewmat, K, near)
    fx = K[0, 0]
    rpx = (radii.to(z.dtype) * fx / z.clamp(min=near)).clamp(1.0, float(max_radius_px))
    m = max_radius_px
    keep = (z > near) & (u >= -m) & (u < width + m) & (v >= -m) & (v < height + m)
    u0, v0 = torch.floor(u[keep]).long(), torch.floor(v[keep]).long()
    zk, rk = z[keep], rpx[keep]
    # One scatter per disk offset, masked by value rather than by boolean indexing (each
    # boolean index waits for the GPU; there were five per offset): pixels off the disk or
    # the image go to a spare last slot. Offsets farther than m are skipped (r <= m). amin
    # is order-free, so the result is the same to the bit.
    n_pix = height * width
    zbuf = torch.full((n_pix + 1,), float("inf"), dtype=z.dtype, device=z.device)
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            d = (dx * dx + dy * dy) ** 0.5
            if d > m:
                continue
            pu, pv = u0 + dx, v0 + dy
            ok = (rk >= d) & (pu >= 0) & (pu < width) & (pv >= 0) & (pv < height)
            zbuf.scatter_reduce_(0, torch.where(ok, pv * width + pu, n_pix),
                                 zk * (1 + d / fx), reduce="amin")
    return zbuf[:n_pix]


def point_zbuffer_ref(points, radii, viewmat, K, height: int, width: int,
                      max_radius_px: int = 6, near: float = 0.01) -> list[float]:
    """Pixel-by-pixel loop twin of :func:`point_zbuffer` (tests only; same arguments)."""
    import math

    R = viewmat[:3, :3].tolist()
    t = viewmat[:3, 3].tolist()
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    zbuf = [math.inf] * (height * width)
    for (x, y, zw), rad in zip(points.tolist(), radii.tolist()):
        cam = [R[r][0] * x + R[r][1] * y + R[r][2] * zw + t[r] for r in range(3)]
        z = cam[2]
        if not z > near:
            continue
        u0 = math.floor(cam[0] / z * fx + cx)
        v0 = math.floor(cam[1] / z * fy + cy)
        r = min(max(rad * fx / z, 1.0), float(max_radius_px))
        for pv in range(height):
            for pu in range(width):
                d = math.hypot(pu - u0, pv - v0)
                if d <= r:
                    zbuf[pv * width + pu] = min(zbuf[pv * width + pu], z * (1 + d / fx))
    return zbuf


def mask_border_distance(mask_ids: Tensor) -> Tensor:
    """Distance in pixels from every pixel to the nearest mask border.

    A border pixel is one whose 4-neighbour carries a different id (``-1`` = no mask counts
    as an id); border pixels get distance 0 (scipy ``distance_transform_edt``).

    Args:
        mask_ids: [H, W] integer mask ids (-1 = none).

    Returns:
        [H, W] float32 tensor; all +inf when the image holds a single id.
    """
    import numpy as np
    from scipy import ndimage

    m = mask_ids.cpu().numpy() if isinstance(mask_ids, Tensor) else np.asarray(mask_ids)
    edge = np.zeros(m.shape, bool)
    dv, du = m[:-1] != m[1:], m[:, :-1] != m[:, 1:]
    edge[:-1] |= dv
    edge[1:] |= dv
    edge[:, :-1] |= du
    edge[:, 1:] |= du
    if not edge.any():
        return torch.full(m.shape, float("inf"))
    return torch.as_tensor(ndimage.distance_transform_edt(~edge), dtype=torch.float32)


@torch.no_grad()
def hidden_by_points(points: Tensor, radii: Tensor, idx: Tensor, pix: Tensor, viewmat: Tensor,
                     K: Tensor, height: int, width: int, min_dz: float = 0.005,
                     max_radius_px: int = 6, zbuf: Tensor | None = None) -> Tensor:
    """Which visible points another point hides at their own pixel.

    Point ``idx[j]`` on pixel ``pix[j]`` is hidden when the :func:`point_zbuffer` depth there
    is more than ``min_dz`` in front of it. Points whose footprint is under one pixel
    (``radii * fx / z < 1``) are never hidden: where points are denser than pixels the
    z-buffer cannot tell an occluder from the point's own surface.

    Args:
        points: [N, 3] world positions; radii: [N] footprints (:func:`point_footprint_radii`).
        idx, pix: [P] int64 from :func:`visible_points` on this view.
        viewmat: [4, 4] world-to-camera. K: [3, 3] intrinsics. height, width: image size.
        min_dz: depth margin (scene units).
        max_radius_px: largest disk of :func:`point_zbuffer`.
        zbuf: this view's :func:`point_zbuffer` if already computed (else it is).

    Returns:
        [P] bool, True = hidden.
    """
    if zbuf is None:
        zbuf = point_zbuffer(points, radii, viewmat, K, height, width, max_radius_px)
    z = points[idx].to(zbuf.dtype) @ viewmat[2, :3] + viewmat[2, 3]
    resolved = radii[idx].to(z.dtype) * K[0, 0] >= z
    return (z > zbuf[pix] + min_dz) & resolved


@torch.no_grad()
def occluded_near_border(points: Tensor, radii: Tensor, idx: Tensor, pix: Tensor,
                         viewmat: Tensor, K: Tensor, mask_ids: Tensor, min_dz: float = 0.005,
                         border_px: float = 3.0, max_radius_px: int = 6,
                         zbuf: Tensor | None = None) -> Tensor:
    """Flag visible points that another point hides at their own pixel near a mask border.

    A point that passed :func:`visible_points` is flagged when (a) it is
    :func:`hidden_by_points` with margin ``min_dz`` and (b) its pixel lies within
    ``border_px`` pixels of a mask border: the pixel then most likely shows the occluder,
    whose mask the point would wrongly take. Points hidden only by their own surface's
    neighbours far from a border keep their sample (instgs addition; measured in
    docs/instance-features.md).

    Args:
        points: [N, 3] world positions; radii: [N] footprints (:func:`point_footprint_radii`).
        idx, pix: [P] int64 from :func:`visible_points` on this view.
        viewmat: [4, 4] world-to-camera. K: [3, 3] intrinsics.
        mask_ids: [H, W] the view's mask ids (-1 = none).
        min_dz: depth margin of the occlusion test (scene units).
        border_px: border distance (pixels) within which occluded samples are dropped.
        max_radius_px: largest disk of :func:`point_zbuffer`.
        zbuf: this view's :func:`point_zbuffer` if already computed (else it is).

    Returns:
        [P] bool, True = drop the sample.
    """
    h, w = mask_ids.shape[-2:]
    hidden = hidden_by_points(points, radii, idx, pix, viewmat, K, h, w, min_dz, max_radius_px,
                              zbuf)
    dist = mask_border_distance(mask_ids.reshape(h, w)).reshape(-1).to(pix.device)
    return hidden & (dist[pix] <= border_px)


class FootprintCache:
    """:func:`point_footprint_radii` of a point set, recomputed only when the set changes.

    Anchor growing and pruning replace the anchor tensor, so the cache is keyed on the
    tensor's storage and length, not only its length.
    """

    def __init__(self) -> None:
        self._key: tuple[int, int] | None = None
        self._radii: Tensor | None = None

    def __call__(self, points: Tensor) -> Tensor:
        """[N] footprint radii of ``points`` [N, 3] (on the points' device)."""
        points = points.detach()
        key = (points.data_ptr(), points.shape[0])
        if key != self._key or self._radii is None:
            self._radii = point_footprint_radii(points).to(points.device)
            self._key = key
        return self._radii


@torch.no_grad()
def mask_samples(points: Tensor, viewmat: Tensor, K: Tensor, depth: Tensor, alpha: Tensor,
                 masks: Tensor, *, tol_abs: float, tol_rel: float,
                 radii: Tensor | None = None, border_px: float = 0.0,
                 min_dz: float = 0.005) -> tuple[Tensor, Tensor]:
    """The (point, mask) samples of one view: points that pass :func:`visible_points` on a
    masked pixel, minus those :func:`occluded_near_border` drops when ``border_px > 0``.

    This is the sample set of the ``projected`` instance-feature target
    (:func:`instgs.losses.projected_instance_losses`; docs/instance-features.md).

    Args:
        points: [N, 3] world positions. viewmat: [4, 4] world-to-camera. K: [3, 3] pixels.
        depth: [H, W, 1] rendered expected depth. alpha: [H, W, 1] rendered alpha.
        masks: [H, W] int64 mask ids of the view (-1 = none).
        tol_abs, tol_rel: depth tolerances of :func:`visible_points`.
        radii: [N] footprints (:func:`point_footprint_radii`); needed when ``border_px > 0``.
        border_px: occlusion-test border distance in pixels; 0 = no occlusion test.
        min_dz: depth margin of the occlusion test (scene units).

    Returns:
        (idx [R] int64 point indices, ids [R] int64 their mask ids).

    Raises:
        ValueError: ``border_px > 0`` without ``radii``.
    """
    idx, pix = visible_points(points, viewmat, K, depth, alpha, tol_abs=tol_abs,
                              tol_rel=tol_rel)
    ids = masks.reshape(-1)[pix]
    on = ids >= 0
    idx, ids, pix = idx[on], ids[on], pix[on]
    if border_px > 0 and len(idx):
        if radii is None:
            raise ValueError("mask_samples: border_px > 0 needs the points' radii")
        drop = occluded_near_border(points, radii, idx, pix, viewmat, K, masks,
                                    min_dz=min_dz, border_px=border_px)
        idx, ids = idx[~drop], ids[~drop]
    return idx, ids
