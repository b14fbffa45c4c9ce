"""PointNet++ (Qi et al., NeurIPS 2017) single-scale-grouping encoder and feature-propagation
decoder in plain PyTorch (no CUDA ops), for MPNet (seed 002 §3.1: "vanilla PointNet++ ...
without introducing any multi-scale grouping"; two parallel decoders on one encoder).

Tensors are batched blocks of equal size: ``xyz [B, N, 3]`` (metres), features
``[B, C, N]``. The three neighbourhood ops are written directly (and so are their own
reference): :func:`farthest_point_sample` (iterative, starts at point 0), :func:`ball_query`
(the first ``nsample`` points by index within the radius, padded with the first one, as the
CUDA op) and :func:`three_nn_interpolate` (inverse squared-distance weights of the 3 nearest).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from instgs.core.checks import InputError, check_shape

__all__ = ["farthest_point_sample", "ball_query", "three_nn_interpolate", "SetAbstraction",
           "FeaturePropagation", "PointNet2Encoder", "PointNet2Decoder", "gather_points"]


def gather_points(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x [B, N, C]`` rows ``idx [B, ...]`` -> ``[B, ..., C]``."""
    B = x.shape[0]
    flat = idx.reshape(B, -1)
    out = torch.gather(x, 1, flat[..., None].expand(-1, -1, x.shape[-1]))
    return out.reshape(*idx.shape, x.shape[-1])


@torch.no_grad()
def farthest_point_sample(xyz: torch.Tensor, npoint: int) -> torch.Tensor:
    """Iterative farthest point sampling starting at point 0.

    Args:
        xyz: [B, N, 3] float. npoint: S <= N samples.

    Returns:
        [B, S] int64 indices; sample i+1 is the point farthest from samples 0..i.

    Raises:
        InputError: ``npoint`` outside 1..N.
    """
    check_shape("xyz", xyz, "B N 3")
    B, N, _ = xyz.shape
    if not 1 <= npoint <= N:
        raise InputError(f"npoint must lie in 1..{N}, got {npoint}")
    idx = torch.zeros(B, npoint, dtype=torch.int64)
    dist = torch.full((B, N), float("inf"), dtype=xyz.dtype)
    far = torch.zeros(B, dtype=torch.int64)
    ar = torch.arange(B)
    for i in range(npoint):
        idx[:, i] = far
        d = ((xyz - xyz[ar, far][:, None, :]) ** 2).sum(-1)
        dist = torch.minimum(dist, d)
        far = dist.argmax(1)
    return idx


@torch.no_grad()
def ball_query(radius: float, nsample: int, xyz: torch.Tensor, new_xyz: torch.Tensor
               ) -> torch.Tensor:
    """Neighbours within ``radius``: the ``nsample`` lowest indices, padded with the first.

    Args:
        radius: metres. nsample: K. xyz: [B, N, 3]. new_xyz: [B, S, 3] (query centres).

    Returns:
        [B, S, K] int64 indices into ``xyz`` (a centre that is itself a point of ``xyz``
        always has at least itself).
    """
    B, N, _ = xyz.shape
    d2 = torch.cdist(new_xyz, xyz) ** 2
    cand = torch.arange(N).expand(B, new_xyz.shape[1], N).clone()
    cand[d2 > radius * radius] = N
    k = min(nsample, N)
    idx = torch.topk(cand, k, dim=-1, largest=False, sorted=True).values
    first = idx[..., :1].expand_as(idx)
    idx = torch.where(idx == N, first, idx)
    idx = torch.where(idx == N, torch.zeros_like(idx), idx)  # empty ball (not a point of xyz)
    if k < nsample:
        idx = torch.cat([idx, idx[..., :1].expand(-1, -1, nsample - k)], -1)
    return idx


def three_nn_interpolate(unknown: torch.Tensor, known: torch.Tensor,
                         known_feats: torch.Tensor) -> torch.Tensor:
    """Features at ``unknown [B, n, 3]`` from the 3 nearest ``known [B, m, 3]`` points,
    weights ``1 / d^2`` normalised (PointNet++ ``three_interpolate``).

    Args:
        known_feats: [B, C, m].

    Returns:
        [B, C, n].
    """
    k = min(3, known.shape[1])
    d2, idx = torch.topk(torch.cdist(unknown, known) ** 2, k, dim=-1, largest=False)
    w = 1.0 / (d2 + 1e-8)
    w = w / w.sum(-1, keepdim=True)
    f = gather_points(known_feats.transpose(1, 2), idx)  # [B, n, k, C]
    return (f * w[..., None]).sum(2).transpose(1, 2)


def _mlp2d(widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Conv2d(a, b, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _mlp1d(widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Conv1d(a, b, 1, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SetAbstraction(nn.Module):
    """PointNet++ SSG set abstraction: FPS -> ball query -> shared MLP on (relative xyz,
    features) -> max pool.

    Args:
        npoint: centroids S. radius: ball radius (m). nsample: neighbours K.
        in_channels: feature channels C (0 = xyz only). mlp: output widths.

    ``forward(xyz [B, N, 3], feats [B, C, N] | None) -> (new_xyz [B, S, 3],
    new_feats [B, mlp[-1], S])``.
    """

    def __init__(self, npoint: int, radius: float, nsample: int, in_channels: int,
                 mlp: Sequence[int]):
        super().__init__()
        self.npoint, self.radius, self.nsample = npoint, radius, nsample
        self.mlp = _mlp2d([in_channels + 3, *mlp])
        self.out_channels = mlp[-1]

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        S = min(self.npoint, xyz.shape[1])
        centre = gather_points(xyz, farthest_point_sample(xyz, S))
        idx = ball_query(self.radius, self.nsample, xyz, centre)  # [B, S, K]
        g = gather_points(xyz, idx) - centre[:, :, None, :]  # [B, S, K, 3]
        if feats is not None:
            g = torch.cat([g, gather_points(feats.transpose(1, 2), idx)], -1)
        h = self.mlp(g.permute(0, 3, 1, 2))  # [B, C', S, K]
        return centre, h.max(-1).values


class FeaturePropagation(nn.Module):
    """PointNet++ feature propagation: 3-NN interpolation of the coarse features onto the
    fine points, concatenated with the fine features, then a shared MLP.

    ``forward(xyz1 [B, n, 3], xyz2 [B, m, 3], feats1 [B, C1, n] | None, feats2 [B, C2, m])
    -> [B, mlp[-1], n]``.
    """

    def __init__(self, in_channels: int, mlp: Sequence[int]):
        super().__init__()
        self.mlp = _mlp1d([in_channels, *mlp])
        self.out_channels = mlp[-1]

    def forward(self, xyz1: torch.Tensor, xyz2: torch.Tensor, feats1: torch.Tensor | None,
                feats2: torch.Tensor) -> torch.Tensor:
        up = three_nn_interpolate(xyz1, xyz2, feats2)
        if feats1 is not None:
            up = torch.cat([feats1, up], 1)
        return self.mlp(up)


class PointNet2Encoder(nn.Module):
    """Stack of :class:`SetAbstraction` levels.

    Args:
        in_channels: input feature channels (e.g. 3 for rgb).
        npoints, radii: per level. nsample: per ball query. widths: MLP widths per level.

    ``forward(xyz, feats) -> list of (xyz_l, feats_l)`` from level 0 (the input) to L.
    """

    def __init__(self, in_channels: int, npoints: Sequence[int], radii: Sequence[float],
                 nsample: int, widths: Sequence[Sequence[int]]):
        super().__init__()
        self.levels = nn.ModuleList()
        self.channels = [in_channels]
        c = in_channels
        for n, r, w in zip(npoints, radii, widths):
            self.levels.append(SetAbstraction(n, r, nsample, c, w))
            c = w[-1]
            self.channels.append(c)

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = [(xyz, feats)]
        for sa in self.levels:
            xyz, feats = sa(xyz, feats)
            out.append((xyz, feats))
        return out


class PointNet2Decoder(nn.Module):
    """Stack of :class:`FeaturePropagation` levels from the coarsest encoder level back to
    the input points.

    Args:
        enc_channels: the encoder's ``channels`` (input first). widths: FP MLP widths,
            coarsest first (one per encoder level).

    ``forward(levels) -> [B, widths[-1][-1], N]`` per-point features.
    """

    def __init__(self, enc_channels: Sequence[int], widths: Sequence[Sequence[int]]):
        super().__init__()
        L = len(enc_channels) - 1
        if len(widths) != L:
            raise InputError(f"need {L} FP widths, got {len(widths)}")
        self.levels = nn.ModuleList()
        c = enc_channels[-1]
        for i, w in enumerate(widths):
            skip = enc_channels[L - 1 - i]
            self.levels.append(FeaturePropagation(skip + c, w))
            c = w[-1]
        self.out_channels = c

    def forward(self, levels: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        L = len(levels) - 1
        feats = levels[-1][1]
        for i, fp in enumerate(self.levels):
            xyz1, f1 = levels[L - 1 - i]
            feats = fp(xyz1, levels[L - i][0], f1, feats)
        return feats
