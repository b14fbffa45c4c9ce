"""Optimiser set-up of the trainer: Adam groups, learning-rate schedules, random init points."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from instgs.core.cameras import Cameras
from instgs.model.scaffold import ScaffoldModel

from .config import TrainConfig

__all__ = ["expon_lr", "build_optimizer", "random_points"]


def expon_lr(lr_init: float, lr_final: float, max_steps: int) -> Callable[[int], float]:
    """Log-linear decay from ``lr_init`` to ``lr_final`` over ``max_steps`` (3DGS
    ``get_expon_lr_func`` without delay)."""

    def fn(step: int) -> float:
        if lr_init == lr_final:
            return lr_init
        if lr_init <= 0 or lr_final <= 0:
            return 0.0
        t = min(max(step / max(max_steps, 1), 0.0), 1.0)
        return math.exp(math.log(lr_init) * (1 - t) + math.log(lr_final) * t)

    return fn


def build_optimizer(model: ScaffoldModel, cfg: TrainConfig, extent: float
                    ) -> tuple[torch.optim.Adam, dict[str, Callable[[int], float]]]:
    """Adam with one named group per parameter set, and the per-group LR schedules
    (Scaffold-GS / InstanceGaussian learning rates, ``cfg.optim``).

    Args:
        model: the Scaffold model. cfg: the training config.
        extent: scene extent (scales the offset learning rate, Scaffold-GS
            ``spatial_lr_scale``), scene units.

    Returns:
        (optimizer, {group name: step -> lr}).
    """
    o = cfg.optim
    n = cfg.steps
    sched = {
        "offsets": expon_lr(o.offset_lr * extent, o.offset_lr_final * extent, n),
        "anchor_feat": expon_lr(o.feature_lr, o.feature_lr, n),
        "log_scaling": expon_lr(o.scaling_lr, o.scaling_lr, n),
        "mlp_opacity": expon_lr(o.mlp_opacity_lr, o.mlp_opacity_lr_final, n),
        "mlp_cov": expon_lr(o.mlp_cov_lr, o.mlp_cov_lr_final, n),
        "mlp_color": expon_lr(o.mlp_color_lr, o.mlp_color_lr_final, n),
    }
    groups = [
        {"params": [model.offsets], "name": "offsets"},
        {"params": [model.anchor_feat], "name": "anchor_feat"},
        {"params": [model.log_scaling], "name": "log_scaling"},
        {"params": list(model.mlp_opacity.parameters()), "name": "mlp_opacity"},
        {"params": list(model.mlp_cov.parameters()), "name": "mlp_cov"},
        {"params": list(model.mlp_color.parameters()), "name": "mlp_color"},
    ]
    if model.ins_feat is not None:
        joint = cfg.scale(cfg.schedule.joint_start)
        sched["ins_feat"] = lambda s: o.ins_feat_lr if s < joint else o.ins_feat_lr_joint
        groups.append({"params": [model.ins_feat], "name": "ins_feat"})
    if model.appearance is not None:
        sched["appearance"] = expon_lr(o.appearance_lr, o.appearance_lr_final, n)
        groups.append({"params": list(model.appearance.parameters()), "name": "appearance"})
    for g in groups:
        g["lr"] = sched[g["name"]](0)
    return torch.optim.Adam(groups, lr=0.0, eps=1e-15), sched


def random_points(cameras: Cameras, n: int, seed: int) -> Tensor:
    """Points uniform in a ball around the cameras' common focus (no point cloud given).

    The focus is the least-squares point closest to all optical axes; the radius is 0.6 x
    the median camera distance to it.

    Returns:
        [n, 3] float32, scene units.
    """
    c2w = cameras.c2w
    origins = c2w[:, :3, 3].double()
    dirs = torch.nn.functional.normalize(c2w[:, :3, 2].double(), dim=-1)
    eye = torch.eye(3, dtype=torch.float64)
    proj = eye[None] - dirs[:, :, None] * dirs[:, None, :]
    focus = torch.linalg.lstsq(proj.sum(0), (proj @ origins[:, :, None]).sum(0)).solution[:, 0]
    radius = 0.6 * float((origins - focus).norm(dim=-1).median())
    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    r = radius * torch.rand(n, 1, generator=g, dtype=torch.float64) ** (1 / 3)
    return (focus + d * r).float()
