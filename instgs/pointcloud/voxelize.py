"""Voxelisation with point<->voxel maps, mean pooling and scatter-back.

HAIS / PointGroup (``scale: 50``, ``mode: 4``) and SSEN quantise points to
``floor(xyz / voxel_size)``, deduplicate, average the features of each voxel's points and
gather voxel features back to points (pointcloud-methods.md §C.2.2). Here a voxel key is a
linear int64 index, deduplicated with ``torch.unique`` (sorted, so voxel order is
lexicographic in (batch, x, y, z)). The slow twin is
:func:`instgs.pointcloud.ops._reference.voxelize_reference`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from instgs.core.checks import InputError, ShapeError, check_shape

__all__ = ["VoxelGrid", "voxelize", "pool_to_voxels", "scatter_to_points"]


@dataclass
class VoxelGrid:
    """Sparse voxel grid of one point cloud (or a batch of them).

    Attributes:
        coords: [V, 3] int32, non-negative voxel indices ``floor((xyz - origin) / voxel_size)``.
        p2v: [N] int64, voxel of each point.
        v2p_offsets: [V+1] int64, CSR row pointer: points of voxel v are
            ``v2p_index[v2p_offsets[v]:v2p_offsets[v+1]]``.
        v2p_index: [N] int64, point indices grouped by voxel (ascending within a voxel).
        voxel_size: edge length in metres.
        origin: [3] float64, world position of voxel (0,0,0)'s corner, a multiple of
            ``voxel_size`` (grids of overlapping crops align).
        batch: [V] int64 batch id of each voxel (zeros for a single cloud).
    """

    coords: torch.Tensor
    p2v: torch.Tensor
    v2p_offsets: torch.Tensor
    v2p_index: torch.Tensor
    voxel_size: float
    origin: np.ndarray
    batch: torch.Tensor

    @property
    def num_voxels(self) -> int:
        return int(self.coords.shape[0])

    @property
    def num_points(self) -> int:
        return int(self.p2v.shape[0])

    @property
    def counts(self) -> torch.Tensor:
        """[V] int64 number of points per voxel."""
        return self.v2p_offsets[1:] - self.v2p_offsets[:-1]

    @property
    def spatial_shape(self) -> list[int]:
        """[3] grid extent (max coord + 1) per axis, as spconv's ``spatial_shape``."""
        if self.num_voxels == 0:
            return [1, 1, 1]
        return (self.coords.max(0).values + 1).tolist()

    @property
    def batch_size(self) -> int:
        return int(self.batch.max()) + 1 if self.num_voxels else 0

    def spconv_indices(self) -> torch.Tensor:
        """[V, 4] int32 ``(batch, x, y, z)`` indices for ``spconv.SparseConvTensor``."""
        return torch.cat([self.batch.to(torch.int32)[:, None], self.coords], 1).contiguous()

    def centers(self) -> torch.Tensor:
        """[V, 3] float32 world coordinates of voxel centres (metres)."""
        o = torch.as_tensor(self.origin, dtype=torch.float32, device=self.coords.device)
        return (self.coords.float() + 0.5) * self.voxel_size + o


def voxelize(coord: torch.Tensor | np.ndarray, voxel_size: float,
             batch: torch.Tensor | np.ndarray | None = None, align: int = 1) -> VoxelGrid:
    """Quantise points to a voxel grid and build the point<->voxel maps.

    Args:
        coord: [N, 3] float point coordinates in metres (tensor or array).
        voxel_size: voxel edge in metres (> 0), e.g. 0.02 (HAIS ``scale: 50``).
        batch: optional [N] int batch ids; points of different batch items never share a
            voxel. The origin is common to the whole batch.
        align: the origin is a multiple of ``align * voxel_size`` (>= 1). A UNet with L
            levels passes ``2**(L-1)``: its stride-2 cells then lie on one absolute lattice,
            so a scene gets the same coarse cells alone or in any batch (DDP equivalence).

    Returns:
        VoxelGrid (tensors on ``coord``'s device; CPU for arrays).

    Raises:
        ShapeError: ``coord`` is not [N, 3] or ``batch`` not [N].
        InputError: ``voxel_size <= 0``, non-finite coordinates, an empty cloud, or a grid
            too large for int32 indices.

    References:
        HAIS ``data/scannetv2_inst.py`` + ``voxelization_idx`` (mean pooling, ``mode=4``).
    """
    c = torch.as_tensor(np.asarray(coord) if not isinstance(coord, torch.Tensor) else coord)
    check_shape("coord", c, "N 3")
    if not voxel_size > 0:
        raise InputError(f"voxel_size must be > 0, got {voxel_size}", None,
                         "use e.g. 0.02 (metres)")
    n = c.shape[0]
    if n == 0:
        raise InputError("cannot voxelise an empty point cloud", None, "pass >= 1 point")
    c64 = c.double()
    if not torch.isfinite(c64).all():
        raise InputError("coordinates contain NaN/Inf", None, "drop or repair those points")
    if batch is None:
        b = torch.zeros(n, dtype=torch.int64, device=c.device)
    else:
        b = torch.as_tensor(np.asarray(batch) if not isinstance(batch, torch.Tensor) else batch,
                            device=c.device).long()
        if b.shape != (n,):
            raise ShapeError(f"batch must have shape (N,) with N={n}, got {tuple(b.shape)}")
        if n and int(b.min()) < 0:
            raise InputError("batch ids must be >= 0", None, "number batch items 0..B-1")
    if int(align) < 1:
        raise InputError(f"align must be >= 1, got {align}")
    cell = voxel_size * int(align)
    origin = torch.floor(c64.min(0).values / cell) * cell
    q = torch.floor((c64 - origin) / voxel_size).long()
    ext = q.max(0).values + 1
    if int(ext.max()) >= 2**31 - 1:
        raise InputError(f"grid extent {ext.tolist()} voxels exceeds int32", None,
                         "use a larger voxel_size or crop the scene")
    nb = int(b.max()) + 1
    key_space = nb * int(ext[0]) * int(ext[1]) * int(ext[2])
    if key_space >= 2**62:
        raise InputError(f"grid of {ext.tolist()} voxels x {nb} batches is too large", None,
                         "use a larger voxel_size or crop the scene")
    key = ((b * ext[0] + q[:, 0]) * ext[1] + q[:, 1]) * ext[2] + q[:, 2]
    uniq, p2v, counts = torch.unique(key, sorted=True, return_inverse=True, return_counts=True)
    rem = uniq
    z = rem % ext[2]
    rem = rem // ext[2]
    y = rem % ext[1]
    rem = rem // ext[1]
    x = rem % ext[0]
    vb = rem // ext[0]
    coords = torch.stack([x, y, z], 1).to(torch.int32)
    v2p_index = torch.sort(p2v, stable=True).indices
    offsets = torch.zeros(len(uniq) + 1, dtype=torch.int64, device=c.device)
    offsets[1:] = torch.cumsum(counts, 0)
    return VoxelGrid(coords=coords, p2v=p2v, v2p_offsets=offsets, v2p_index=v2p_index,
                     voxel_size=float(voxel_size), origin=origin.cpu().numpy(), batch=vb)


def pool_to_voxels(feats: torch.Tensor, grid: VoxelGrid, reduce: str = "mean") -> torch.Tensor:
    """Reduce point features per voxel (differentiable).

    Args:
        feats: [N, C] float point features (N = ``grid.num_points``).
        grid: from :func:`voxelize`.
        reduce: ``"mean"`` (HAIS ``mode=4``), ``"sum"``, ``"max"`` or ``"min"``.

    Returns:
        [V, C] voxel features, same dtype/device as ``feats``.

    Raises:
        ShapeError: ``feats`` is not [N, C].
        InputError: unknown ``reduce``.
    """
    f = torch.as_tensor(feats)
    check_shape("feats", f, "N C", N=grid.num_points)
    if reduce not in ("mean", "sum", "max", "min"):
        raise InputError(f"reduce must be mean/sum/max/min, got {reduce!r}")
    out = torch.zeros(grid.num_voxels, f.shape[1], dtype=f.dtype, device=f.device)
    idx = grid.p2v.to(f.device)[:, None].expand_as(f)
    op = {"mean": "mean", "sum": "sum", "max": "amax", "min": "amin"}[reduce]
    return out.scatter_reduce(0, idx, f, reduce=op, include_self=False)


def scatter_to_points(vfeats: torch.Tensor, grid: VoxelGrid) -> torch.Tensor:
    """Gather voxel features back to points: ``[V, C] -> [N, C]`` (``vfeats[p2v]``).

    Raises:
        ShapeError: ``vfeats`` is not [V, C].
    """
    check_shape("vfeats", vfeats, "V C", V=grid.num_voxels)
    return vfeats[grid.p2v.to(vfeats.device)]
