"""Small synthetic scenes shared by the render tests."""

from __future__ import annotations

import math

import torch

from instgs.core.cameras import Cameras
from instgs.core.gaussians import Gaussians


def look_cameras(C: int, width: int, height: int, f: float = 60.0, dist: float = 4.0,
                 dtype=torch.float32) -> Cameras:
    """C cameras on a small arc looking at the origin (OpenCV axes, world-to-camera)."""
    vms = []
    for c in range(C):
        ang = 0.35 * c
        R = torch.tensor([[math.cos(ang), 0.0, -math.sin(ang)], [0.0, 1.0, 0.0],
                          [math.sin(ang), 0.0, math.cos(ang)]])
        vm = torch.eye(4)
        vm[:3, :3] = R
        vm[:3, 3] = torch.tensor([0.1 * c, -0.05 * c, dist])
        vms.append(vm)
    K = torch.tensor([[f, 0.0, width / 2 + 0.3], [0.0, f * 1.1, height / 2 - 0.2], [0.0, 0.0, 1.0]])
    return Cameras(torch.stack(vms).to(dtype), K[None].repeat(C, 1, 1).to(dtype), width, height)


def random_gaussians(N: int, seed: int = 0, *, spread=(1.2, 0.9, 0.8), log_scale=(-3.5, -1.3),
                     opacity=(0.05, 0.95), dtype=torch.float32) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(N, 3, generator=g) * torch.tensor(spread)
    quats = torch.randn(N, 4, generator=g)
    scales = torch.exp(torch.empty(N, 3).uniform_(*log_scale, generator=g))
    opac = torch.empty(N).uniform_(*opacity, generator=g)
    colors = torch.rand(N, 3, generator=g)
    return Gaussians(*(t.to(dtype) for t in (means, quats, scales, opac, colors)))


def single_gaussian(z: float, scale: float, opacity: float, color=(0.2, 0.6, 0.9), xy=(0.0, 0.0),
                    dtype=torch.float32) -> Gaussians:
    return Gaussians(
        means=torch.tensor([[xy[0], xy[1], z]], dtype=dtype),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=dtype),
        scales=torch.full((1, 3), scale, dtype=dtype),
        opacities=torch.tensor([opacity], dtype=dtype),
        colors=torch.tensor([color], dtype=dtype),
    )


def identity_camera(width: int, height: int, f: float, dtype=torch.float32) -> Cameras:
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]], dtype=dtype)
    return Cameras(torch.eye(4, dtype=dtype)[None], K[None], width, height)


def concat(*gs: Gaussians) -> Gaussians:
    return Gaussians(*(torch.cat([getattr(g, f) for g in gs]) for f in
                       ("means", "quats", "scales", "opacities", "colors")))


def with_grad(gs: Gaussians) -> tuple[Gaussians, list[torch.Tensor]]:
    params = [t.detach().clone().requires_grad_(True) for t in
              (gs.means, gs.quats, gs.scales, gs.opacities, gs.colors)]
    return Gaussians(*params), params
