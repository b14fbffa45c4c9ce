"""Value types of the render package."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["RenderOutput", "BackendUnavailableError"]


class BackendUnavailableError(RuntimeError):
    """The requested rendering backend cannot run here (the message says why and what to do)."""


@dataclass(frozen=True)
class RenderOutput:
    """What :func:`instgs.render.render` returns for C cameras of size H x W and N Gaussians.

    Attributes:
        rgb: [C, H, W, 3] composited colours plus T_final * background.
        alpha: [C, H, W, 1] accumulated opacity 1 - T_final, in [0, 1].
        depth: [C, H, W, 1] expected camera z in metres, sum(w z) / alpha; 0 where alpha == 0.
        features: [C, H, W, D] alpha-composited sum of the features (not divided by alpha,
            no background), or None if no features were given.
        top_ids: [C, H, W] int64 index of the Gaussian with the largest blending weight
            T * alpha at each pixel (-1 = none), or None unless requested.
        radii: [C, N] int32 screen-space radius ceil(3 sqrt(lambda_max(Σ2D))) in pixels,
            0 = culled (behind the near plane, off-image, or opacity < 1/255).
        means2d: [C, N, 2] projected centres in pixels (0 for culled Gaussians). It is part
            of the autograd graph: call ``out.means2d.retain_grad()`` before
            ``loss.backward()`` and read ``out.means2d.grad`` (densification statistics).
    """

    rgb: Tensor
    alpha: Tensor
    depth: Tensor
    features: Tensor | None
    top_ids: Tensor | None
    radii: Tensor
    means2d: Tensor
