"""Autograd wrappers around the native C++ kernels: the fused EWA projection
(``cuda/projection/projection_cpu.cpp``) and the tile rasterizer
(``cuda/rasterize/rasterize_cpu.cpp``).

The kernel composites any number of channels K in one pass and has a hand-written backward
(reverse traversal per pixel, like the 3DGS CUDA backward). Gradients flow to means2d,
conics, colors (all channels, so also features and the depth channel) and opacities, and to
the backgrounds. See docs/rasterizer.md.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .projection import Projection

__all__ = ["rasterize_cpu", "project_cpu"]


class _ProjectCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, quats, scales, opacities, viewmats, Ks, width, height, near_plane,
                eps2d):
        from instgs._native import cpu_ops

        means2d, conics, depths, extents, radii = cpu_ops().project_forward(
            means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, eps2d)
        ctx.save_for_backward(means, quats, scales, viewmats, Ks, radii)
        ctx.cfg = (width, height, eps2d)
        ctx.mark_non_differentiable(extents, radii)
        return means2d, conics, depths, extents, radii

    @staticmethod
    def backward(ctx, v_means2d, v_conics, v_depths, _v_ext, _v_radii):
        from instgs._native import cpu_ops

        means, quats, scales, viewmats, Ks, radii = ctx.saved_tensors
        width, height, eps2d = ctx.cfg

        def g(v, like):
            return torch.zeros_like(like) if v is None else v.float().contiguous()

        C, N = radii.shape
        v_means, v_quats, v_scales = cpu_ops().project_backward(
            means, quats, scales, viewmats, Ks, radii, width, height, eps2d,
            g(v_means2d, torch.empty(C, N, 2)), g(v_conics, torch.empty(C, N, 3)),
            g(v_depths, torch.empty(C, N)))
        return v_means, v_quats, v_scales, None, None, None, None, None, None, None


def project_cpu(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
                viewmats: Tensor, Ks: Tensor, width: int, height: int, *,
                near_plane: float = 0.01, eps2d: float = 0.3) -> Projection:
    """Native fused twin of :func:`instgs.render.projection.project` (float32, CPU).

    Same arguments and math; differentiable w.r.t. means, quats and scales (opacities only
    enter culling). ``cov2d`` is not returned (None).

    Raises:
        instgs._native.NativeOpsUnavailableError: if the kernels cannot be compiled.
    """
    dt = means.dtype

    def f32(t: Tensor) -> Tensor:
        return t.float().contiguous()

    means2d, conics, depths, extents, radii = _ProjectCPU.apply(
        f32(means), f32(quats), f32(scales), f32(opacities.detach()), f32(viewmats.detach()),
        f32(Ks.detach()), int(width), int(height), float(near_plane), float(eps2d))
    return Projection(means2d=means2d.to(dt), conics=conics.to(dt), depths=depths.to(dt),
                      cov2d=None, radii=radii, extents=extents, valid=radii > 0)


class _RasterizeCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor,
                backgrounds: Tensor, depths: Tensor, extents: Tensor, width: int, height: int,
                return_top_ids: bool):
        from instgs._native import cpu_ops

        ops = cpu_ops()
        render, T_final, last, top, offsets, flat = ops.rasterize_forward(
            means2d, conics, colors, opacities, depths, extents, backgrounds, width, height,
            return_top_ids)
        ctx.save_for_backward(means2d, conics, colors, opacities, extents, backgrounds,
                              T_final, last, offsets, flat)
        ctx.size = (width, height)
        ctx.mark_non_differentiable(top)
        alpha = (1.0 - T_final).unsqueeze(-1)
        return render, alpha, top

    @staticmethod
    def backward(ctx, v_render: Tensor, v_alpha: Tensor, _v_top):
        from instgs._native import cpu_ops

        (means2d, conics, colors, opacities, extents, backgrounds, T_final, last, offsets,
         flat) = ctx.saved_tensors
        width, height = ctx.size
        if v_render is None:
            v_render = torch.zeros(T_final.shape + (colors.shape[-1],), dtype=colors.dtype)
        if v_alpha is None:
            v_alpha = torch.zeros_like(T_final)
        else:
            v_alpha = v_alpha.squeeze(-1)
        v_render = v_render.contiguous().float()
        v_alpha = v_alpha.contiguous().float()
        v_means2d, v_conics, v_colors, v_opac = cpu_ops().rasterize_backward(
            means2d, conics, colors, opacities, extents, backgrounds, T_final, last, offsets,
            flat, v_render, v_alpha, width, height)
        v_bg = None
        if ctx.needs_input_grad[4] and backgrounds.numel():
            v_bg = (v_render * T_final[..., None]).sum(dim=(1, 2))
        return v_means2d, v_conics, v_colors, v_opac, v_bg, None, None, None, None, None


def rasterize_cpu(means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor,
                  depths: Tensor, extents: Tensor, width: int, height: int, *,
                  backgrounds: Tensor | None = None,
                  return_top_ids: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
    """Composite projected Gaussians with the native CPU kernel (differentiable).

    Args:
        means2d: [C, N, 2] pixel coordinates. conics: [C, N, 3] (a, b, c).
        colors: [C, N, K] channels. opacities: [C, N] in [0, 1].
        depths: [C, N] camera z (sort key only). extents: [C, N, 2] alpha >= 1/255 box
            half-widths from :func:`instgs.render.projection.project` (0 = culled).
        width, height: image size in pixels.
        backgrounds: [C, K] or None.
        return_top_ids: also return the per-pixel index of the largest-weight Gaussian.

    Returns:
        (render [C, H, W, K], alpha [C, H, W, 1], top_ids [C, H, W] int64 or None), float32.

    Raises:
        instgs._native.NativeOpsUnavailableError: if the kernels cannot be compiled.
    """
    dt = means2d.dtype

    def f32(t: Tensor) -> Tensor:
        return t.float().contiguous()

    C, N, K = colors.shape
    bg = (f32(backgrounds) if backgrounds is not None
          else torch.empty(0, dtype=torch.float32))
    render, alpha, top = _RasterizeCPU.apply(
        f32(means2d), f32(conics), f32(colors), f32(opacities), bg,
        f32(depths.detach()), f32(extents), int(width), int(height), bool(return_top_ids))
    return render.to(dt), alpha.to(dt), (top if return_top_ids else None)
