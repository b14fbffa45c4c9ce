"""EWA projection of 3D Gaussians to 2D (3DGS / gsplat "classic"), vectorised PyTorch.

Shared by the ``torch`` and ``cpu`` backends; differentiable by autograd. Follows
Zwicker et al., "EWA Splatting" (2002) and Kerbl et al., "3D Gaussian Splatting" (2023),
with gsplat v1.5.3's ``persp_proj`` clamping of the Jacobian and its opacity-aware box
(Radl et al., "StopThePop", 2024, App. B.2). See docs/rasterizer.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Projection", "project", "quat_to_rotmat", "ALPHA_MIN", "ALPHA_MAX", "T_MIN"]

ALPHA_MIN = 1.0 / 255.0
"""Alphas below this are skipped (3DGS)."""
ALPHA_MAX = 0.99
"""Per-Gaussian alpha clamp (3DGS; gsplat 1.5.3 uses 0.999)."""
T_MIN = 1e-4
"""A pixel stops at the first Gaussian that would bring its transmittance to <= T_MIN."""


@dataclass(frozen=True)
class Projection:
    """Per-camera 2D Gaussians. Culled entries have ``valid == False`` and zero outputs.

    Attributes:
        means2d: [C, N, 2] pixel coordinates of the projected centres (pixel (u, v) has its
            centre at (u + 0.5, v + 0.5)).
        conics: [C, N, 3] (a, b, c) of the inverse 2D covariance [[a, b], [b, c]], px^-2.
        depths: [C, N] camera-space z of the centres, metres.
        cov2d: [C, N, 3] (xx, xy, yy) of the 2D covariance incl. the eps2d low-pass, px^2
            (None from the native projection, which does not return it).
        radii: [C, N] int32, ceil(3 sqrt(largest eigenvalue of cov2d)) (3DGS), 0 = culled.
        extents: [C, N, 2] float32 half-widths (px) of the axis-aligned box that contains
            every pixel centre with alpha >= 1/255: sqrt(2 ln(255 o)) sqrt(cov_xx), ... ;
            0 = culled. Not differentiable.
        valid: [C, N] bool, False where culled (z < near_plane, degenerate covariance,
            opacity < 1/255, or the box misses the image).
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    cov2d: Tensor | None
    radii: Tensor
    extents: Tensor
    valid: Tensor


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices from wxyz quaternions (normalised here). [..., 4] -> [..., 3, 3]."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    R = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1)
    return R.reshape(q.shape[:-1] + (3, 3))


def project(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
            viewmats: Tensor, Ks: Tensor, width: int, height: int, *,
            near_plane: float = 0.01, eps2d: float = 0.3) -> Projection:
    """Project N 3D Gaussians into C pinhole cameras (EWA, 3DGS classic mode).

    Σ3D = R S Sᵀ Rᵀ; Σcam = W Σ3D Wᵀ; Σ2D = J Σcam Jᵀ + eps2d·I, where J is the Jacobian
    of the perspective map at the centre with x/z, y/z clamped to 1.3x the field of view
    (gsplat ``persp_proj``). means2d = (fx x/z + cx, fy y/z + cy).

    Args:
        means: [N, 3] world positions, metres.
        quats: [N, 4] wxyz, any norm.
        scales: [N, 3] standard deviations, metres.
        opacities: [N] in [0, 1] (only used for culling and the box extents).
        viewmats: [C, 4, 4] world-to-camera, OpenCV axes.
        Ks: [C, 3, 3] intrinsics in pixels.
        width, height: image size in pixels.
        near_plane: Gaussians with camera z < near_plane are culled (metres).
        eps2d: low-pass variance added to Σ2D (px²).

    Returns:
        :class:`Projection`; differentiable in means2d, conics, depths, cov2d.
    """
    dtype = means.dtype
    R_cw = viewmats[:, :3, :3].to(dtype)  # [C, 3, 3]
    t_cw = viewmats[:, :3, 3].to(dtype)  # [C, 3]
    Ks = Ks.to(dtype)
    p_cam = torch.matmul(means[None], R_cw.transpose(1, 2)) + t_cw[:, None, :]  # [C, N, 3]
    x, y, z = p_cam.unbind(-1)
    in_front = z >= near_plane
    z_safe = torch.where(in_front, z, torch.ones_like(z))

    # Σ3D = M Mᵀ with M = R diag(s); Σ2D = (J W M)(J W M)ᵀ. Written elementwise: batched
    # 3x3 matmuls (bmm) are an order of magnitude slower on CPU for N ~ 1e5.
    M = quat_to_rotmat(quats) * scales[:, None, :]  # [N, 3, 3]
    Mc = (R_cw[:, None, :, :, None] * M[None, :, None, :, :]).sum(3)  # W M, [C, N, 3, 3]
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
    rz = 1.0 / z_safe
    tx = torch.minimum(lim_x_pos, torch.maximum(-lim_x_neg, x * rz))  # clamped x/z
    ty = torch.minimum(lim_y_pos, torch.maximum(-lim_y_neg, y * rz))
    # J = [[fx/z, 0, -fx tx/z], [0, fy/z, -fy ty/z]] (tx, ty are the clamped x/z, y/z)
    P0 = (fx * rz)[..., None] * (Mc[..., 0, :] - tx[..., None] * Mc[..., 2, :])  # [C, N, 3]
    P1 = (fy * rz)[..., None] * (Mc[..., 1, :] - ty[..., None] * Mc[..., 2, :])
    a = (P0 * P0).sum(-1) + eps2d
    b = (P0 * P1).sum(-1)
    c = (P1 * P1).sum(-1) + eps2d
    det = a * c - b * b
    ok = in_front & (det > 0)
    det_safe = torch.where(ok, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)

    with torch.no_grad():
        o = opacities.detach().to(dtype)[None, :].expand_as(z)
        ok = ok & (o >= ALPHA_MIN)
        extend = torch.sqrt(2.0 * torch.log(torch.clamp_min(o, ALPHA_MIN) / ALPHA_MIN))
        ex = extend * torch.sqrt(torch.where(ok, a, torch.ones_like(a)).detach())
        ey = extend * torch.sqrt(torch.where(ok, c, torch.ones_like(c)).detach())
        mx, my = means2d.detach().unbind(-1)
        on_image = (mx + ex > 0) & (mx - ex < width) & (my + ey > 0) & (my - ey < height)
        valid = ok & on_image
        mid = 0.5 * (a + c).detach()
        lam = mid + torch.sqrt(torch.clamp_min(mid * mid - det.detach(), 0.0))
        radii = torch.where(valid, torch.ceil(3.0 * torch.sqrt(lam)), torch.zeros_like(lam))
        radii = radii.to(torch.int32)
        extents = torch.where(valid[..., None], torch.stack([ex, ey], -1),
                              torch.zeros_like(means2d)).float()

    vmask = valid[..., None].to(dtype)
    return Projection(
        means2d=means2d * vmask,
        conics=conics * vmask,
        depths=z * valid.to(dtype),
        cov2d=torch.stack([a, b, c], dim=-1) * vmask,
        radii=radii,
        extents=extents,
        valid=valid,
    )

