"""The Gaussians value object: activated per-Gaussian parameters, as renderers take them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import check_shape

__all__ = ["Gaussians"]


@dataclass(frozen=True)
class Gaussians:
    """N 3D Gaussians (activated values, not logits/logs).

    Attributes:
        means: centres in world coordinates, metres. [N, 3] float.
        quats: rotations as quaternions, wxyz, need not be unit. [N, 4] float.
        scales: standard deviations along the local axes, metres, > 0. [N, 3] float.
        opacities: in [0, 1]. [N] float.
        colors: RGB in [0, 1] (already view-dependent-decoded). [N, 3] float.
    """

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    colors: Tensor

    def __post_init__(self) -> None:
        dims = check_shape("means", self.means, "N 3")
        check_shape("quats", self.quats, "N 4", **dims)
        check_shape("scales", self.scales, "N 3", **dims)
        check_shape("opacities", self.opacities, "N", **dims)
        check_shape("colors", self.colors, "N D", **dims)

    def __len__(self) -> int:
        return self.means.shape[0]

    @classmethod
    def from_params(cls, means: Tensor, quats: Tensor, log_scales: Tensor,
                    opacity_logits: Tensor, colors: Tensor) -> Gaussians:
        """Build from pre-activation parameters: scales = exp(log_scales), opacities = sigmoid."""
        return cls(means, quats, torch.exp(log_scales), torch.sigmoid(opacity_logits), colors)

    def detached(self) -> Gaussians:
        """A copy with every tensor detached (for feature passes that must not move geometry)."""
        return Gaussians(*(t.detach() for t in (self.means, self.quats, self.scales,
                                                  self.opacities, self.colors)))
