"""Instance maps of a segmented run seen from its cameras (what the 2D score and
``instgs render --mode instances`` draw).

Every pixel takes the instance of its *top contributor*: the neural Gaussian with the largest
alpha-blending weight at that pixel (:attr:`instgs.render.RenderOutput.top_ids`). A top
contributor keeps borders between touching objects sharp, where an argmax over blended
one-hot labels would let a translucent front object lose pixels to the one behind it; the
two agree on pixels dominated by one Gaussian, which is most of an opaque surface.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from instgs.run import InstanceLabels, LoadedRun

__all__ = ["NO_CONTRIBUTOR", "child_labels", "render_instance_ids"]

NO_CONTRIBUTOR = -2
"""Pixel value of :func:`render_instance_ids` where no Gaussian contributes (background)."""


def child_labels(run: LoadedRun, instances: InstanceLabels) -> Tensor:
    """Instance id per neural Gaussian (child) of the run's model.

    Args:
        run: the loaded run (its model fixes anchors x ``n_offsets``).
        instances: the run's :class:`~instgs.run.InstanceLabels`.

    Returns:
        [num_anchors * n_offsets] int64, anchor-major; -1 = unassigned. The per-Gaussian labels
        of ``instances.npz`` when their length fits the model, else each anchor's label
        repeated for its children.
    """
    k = run.model.cfg.n_offsets
    g = instances.gaussian_labels
    if g is not None and len(g) == run.model.num_anchors * k:
        return torch.as_tensor(np.asarray(g, np.int64))
    return torch.as_tensor(np.repeat(np.asarray(instances.anchor_labels, np.int64), k))


@torch.no_grad()
def render_instance_ids(run: LoadedRun, labels: Tensor, i: int,
                        backend: str = "auto") -> Tensor:
    """The instance map of view ``i``: the instance of each pixel's top contributor.

    Args:
        run: the loaded run; view ``i`` is decoded with its appearance row
            (:meth:`LoadedRun.decode`).
        labels: [num_anchors * n_offsets] int64 from :func:`child_labels`.
        i: view index into ``run.scene``.
        backend: rasterizer backend (``auto`` | ``cpu`` | ``gsplat`` | ``torch``).

    Returns:
        [H, W] int64 at the scene's (downscaled) camera resolution: the instance id; -1 where
        the top contributor belongs to no instance; :data:`NO_CONTRIBUTOR` (-2) where no
        Gaussian covers the pixel.

    Raises:
        IndexError: ``i`` outside the scene's views.
    """
    from instgs.render import render

    ng = run.decode(i)
    cam = run.scene.cameras[i].to(run.model.anchors.device)
    out = render(ng.gaussians, cam, return_top_ids=True, backend=backend)
    top = out.top_ids[0].cpu()
    per_g = labels[ng.child_ids.cpu()]
    return torch.where(top >= 0, per_g[top.clamp(min=0)], torch.full_like(top, NO_CONTRIBUTOR))
