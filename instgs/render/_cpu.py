"""Autograd wrapper around the native C++ tile rasterizer (``cuda/rasterize/rasterize_cpu.cpp``).

The kernel composites any number of channels K in one pass and has a hand-written backward
(reverse traversal per pixel, like the 3DGS CUDA backward). Gradients flow to means2d,
conics, colors (all channels, so also features and the depth channel) and opacities, and to
the backgrounds. See docs/rasterizer.md.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["rasterize_cpu"]


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
