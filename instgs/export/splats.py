"""Static 3D Gaussians with spherical-harmonics colour: what an export holds.

:class:`Splats` is the in-memory form of a standard 3DGS file (a baked run, or any 3DGS PLY
read back). Values are stored *activated*: ``scales`` in scene units (a PLY stores their
log), ``opacities`` in [0, 1] (a PLY stores the logit), ``quats`` unit wxyz (a PLY stores
them unnormalised, w first), ``sh`` the SH coefficients ``[N, K, 3]`` with the DC term at
``k = 0`` (3DGS ``f_dc``; ``rgb = 0.5 + C0 * f_dc`` for degree 0).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch import Tensor

from instgs.core.cameras import Cameras
from instgs.core.checks import check_shape
from instgs.core.gaussians import Gaussians
from instgs.render.sh import eval_sh, sh_degree_of

__all__ = ["Splats"]


@dataclass(frozen=True)
class Splats:
    """N static Gaussians.

    Attributes:
        means: [N, 3] float32 centres, scene units.
        quats: [N, 4] float32 unit quaternions, wxyz.
        scales: [N, 3] float32 standard deviations, scene units (> 0).
        opacities: [N] float32 in (0, 1).
        sh: [N, K, 3] float32 SH coefficients, K = (degree+1)^2, DC first.
        instance_ids: [N] int32 instance id per Gaussian (-1 = none).
        child_ids: [N] int64 neural-Gaussian index ``anchor * n_offsets + j`` of a baked run,
            or the row in the file (-1 when unknown).
    """

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    sh: Tensor
    instance_ids: Tensor
    child_ids: Tensor

    def __post_init__(self) -> None:
        dims = check_shape("means", self.means, "N 3")
        check_shape("quats", self.quats, "N 4", **dims)
        check_shape("scales", self.scales, "N 3", **dims)
        check_shape("opacities", self.opacities, "N", **dims)
        check_shape("sh", self.sh, "N K 3", **dims)
        check_shape("instance_ids", self.instance_ids, "N", **dims)
        check_shape("child_ids", self.child_ids, "N", **dims)
        sh_degree_of(self.sh.shape[1])

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        """0..3."""
        return sh_degree_of(self.sh.shape[1])

    def select(self, keep: Tensor | np.ndarray) -> Splats:
        """The Gaussians where ``keep`` [N] bool is True (or at int indices ``keep``)."""
        keep = torch.as_tensor(keep)
        return Splats(*(getattr(self, f.name)[keep] for f in fields(self)))

    def with_degree(self, degree: int) -> Splats:
        """The same Gaussians with SH truncated to ``degree`` (<= the current one)."""
        k = (degree + 1) ** 2
        if k > self.sh.shape[1]:
            raise ValueError(f"cannot raise the SH degree from {self.sh_degree} to {degree}")
        return replace(self, sh=self.sh[:, :k].contiguous())

    def gaussians(self, campos: Tensor) -> Gaussians:
        """The renderable :class:`~instgs.core.gaussians.Gaussians` seen from ``campos`` [3]
        (SH evaluated per Gaussian at ``normalize(means - campos)``)."""
        colors = eval_sh(self.sh, self.means, campos)
        return Gaussians(self.means, self.quats, self.scales, self.opacities, colors)

    def render(self, cameras: Cameras, i: int = 0, **kw):
        """Render view ``i`` of ``cameras`` (:func:`instgs.render.render` keyword arguments).

        Returns:
            :class:`~instgs.render.RenderOutput` of that one view.
        """
        from instgs.render import render

        cam = cameras[i]
        return render(self.gaussians(cam.centers[0]), cam, **kw)
