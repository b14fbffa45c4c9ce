"""Packed batches of scenes for the sparse-convolution networks (HAIS, SSEN, 3D-QueryIS).

The points of B scenes are concatenated; ``offsets [B+1]`` int64 is the CSR row pointer
(leading 0) and instance ids are made globally unique. Voxelisation uses one grid per scene
(scenes never share voxels). :func:`sparse_forward` runs a :class:`SparseBackbone` on a
voxel grid and returns point features plus the decoder levels (3D-QueryIS reads one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from instgs.core.checks import InputError

__all__ = ["PointBatch", "collate_scenes", "coarse_sites", "sparse_forward", "scene_features"]


@dataclass
class PointBatch:
    """A packed batch of scenes.

    Attributes:
        coord: [N, 3] float32 metres.
        feats: [N, 6] float32 point input features (rgb in [-1,1] + xyz centred per scene
            when ``use_coords``; else [N, 3]).
        semantic: [N] int64 (0..C-1 / -100). instance: [N] int64 globally unique / -100.
        offsets: [B+1] int64 CSR row pointer of the scenes.
        grid: :class:`instgs.pointcloud.voxelize.VoxelGrid` of the batch.
        names: scene names.
    """

    coord: torch.Tensor
    feats: torch.Tensor
    semantic: torch.Tensor
    instance: torch.Tensor
    offsets: torch.Tensor
    grid: object
    names: list[str]

    @property
    def batch_ids(self) -> torch.Tensor:
        """[N] int64 scene index of each point."""
        counts = self.offsets[1:] - self.offsets[:-1]
        return torch.repeat_interleave(torch.arange(len(counts)), counts)

    @property
    def num_scenes(self) -> int:
        """B."""
        return len(self.offsets) - 1


def scene_features(coord: torch.Tensor, color: torch.Tensor, use_coords: bool) -> torch.Tensor:
    """Input features of one scene: rgb in [-1, 1] (+ xyz minus the scene's mean, metres,
    when ``use_coords``: translation invariant, HAIS / PointGroup). Returns [N, 3 or 6]."""
    f = [color]
    if use_coords:
        f.append(coord - coord.mean(0, keepdim=True))
    return torch.cat(f, 1)


def collate_scenes(scenes: Sequence, cfg: Any) -> PointBatch:
    """Pack :class:`instgs.pointcloud.data.PointScene` objects into a :class:`PointBatch`.

    Voxelises at ``cfg.voxel_size`` with the origin on the lattice of the UNet's coarsest
    cells (``align = 2**(cfg.levels - 1)``), so a scene's voxels and coarse cells do not
    depend on the other scenes of the batch; features per :func:`scene_features` with
    ``cfg.use_coords``. Labels may be absent (``semantic`` / ``instance`` None -> all -100),
    as for inference on unlabelled scans.

    Raises:
        InputError: no scenes, or a scene with no points.
    """
    from instgs.pointcloud.voxelize import voxelize

    if len(scenes) == 0:
        raise InputError("no scenes to collate", None, "pass at least one PointScene")
    coords, feats, sems, insts, counts = [], [], [], [], [0]
    inst_base = 0
    for s in scenes:
        c = torch.as_tensor(np.asarray(s.coord, dtype=np.float32))
        if c.shape[0] == 0:
            raise InputError(f"scene {s.name} has no points", None, "check the input files")
        col = torch.as_tensor(np.asarray(s.color, dtype=np.float32))
        n = c.shape[0]
        sem = (torch.full((n,), -100, dtype=torch.int64) if s.semantic is None
               else torch.as_tensor(np.asarray(s.semantic, dtype=np.int64)))
        ins = (torch.full((n,), -100, dtype=torch.int64) if s.instance is None
               else torch.as_tensor(np.asarray(s.instance, dtype=np.int64)).clone())
        valid = ins >= 0
        if valid.any():
            _, ins[valid] = torch.unique(ins[valid], return_inverse=True)
            ins[valid] += inst_base
            inst_base = int(ins.max()) + 1
        ins[~valid] = -100
        coords.append(c)
        feats.append(scene_features(c, col, cfg.use_coords))
        sems.append(sem)
        insts.append(ins)
        counts.append(n)
    offsets = torch.cumsum(torch.tensor(counts, dtype=torch.int64), 0)
    coord = torch.cat(coords)
    counts_t = offsets[1:] - offsets[:-1]
    batch = torch.repeat_interleave(torch.arange(len(scenes)), counts_t)
    grid = voxelize(coord, cfg.voxel_size, batch=batch, align=2 ** (cfg.levels - 1))
    return PointBatch(coord=coord, feats=torch.cat(feats), semantic=torch.cat(sems),
                      instance=torch.cat(insts), offsets=offsets, grid=grid,
                      names=[s.name for s in scenes])


def coarse_sites(indices: torch.Tensor, levels: int) -> torch.Tensor:
    """Active sites per batch item at the coarsest level of a ``levels``-level sparse UNet.

    spconv's ``SparseConv3d(k=2, s=2)`` maps voxel ``x`` to ``x // 2``, so level ``l`` has
    the sites ``unique(batch, x >> l)``; the count never grows with ``l``.

    Args:
        indices: [V, 4] int ``(batch, x, y, z)`` (``VoxelGrid.spconv_indices()``).
        levels: UNet levels (1 = no down-sampling).

    Returns:
        [B] int64 site count per batch item (B = ``indices[:, 0].max() + 1``).
    """
    if indices.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64)
    idx = indices.long()
    coarse = torch.cat([idx[:, :1], idx[:, 1:] >> (levels - 1)], 1)
    uniq = torch.unique(coarse, dim=0)
    return torch.bincount(uniq[:, 0], minlength=int(idx[:, 0].max()) + 1)


def check_trainable_grid(grid: Any, levels: int, voxel_size: float, names: list[str]) -> None:
    """Raise InputError when a training batch fits in one cell of the coarsest level of a
    ``levels``-level UNet (training-mode BatchNorm there would see one value per channel)."""
    sites = int(coarse_sites(grid.spconv_indices(), levels).sum())
    if sites < 2:
        cell = voxel_size * 2 ** (levels - 1)
        raise InputError(
            f"training batch {names} is too small for the backbone: its {grid.num_voxels} "
            f"voxels fall in one {cell:g} m cell of the coarsest of {levels} levels", None,
            "train on larger scenes or crops (--max-points), or use fewer levels or a "
            "smaller voxel size")


def sparse_forward(backbone: Any, feats: torch.Tensor, grid: Any, batch_size: int
                   ) -> tuple[torch.Tensor, Any]:
    """Mean-pool point features into ``grid``'s voxels, run ``backbone`` (a
    :class:`instgs.pointcloud.backbone.SparseBackbone`) and gather its output to points.

    Args:
        backbone: the sparse backbone (``divisor`` attribute, ``forward`` ->
            ``BackboneOutput``).
        feats: [N, C_in] float point features. grid: VoxelGrid of the N points.
        batch_size: B.

    Returns:
        ``(point_feats [N, m], out)`` with ``out`` the :class:`BackboneOutput` (voxel
        features [V, m] and the decoder levels, coarsest first).
    """
    from instgs.pointcloud.backbone import make_sparse_tensor
    from instgs.pointcloud.voxelize import pool_to_voxels, scatter_to_points

    vf = pool_to_voxels(feats, grid, "mean")
    x = make_sparse_tensor(vf, grid.spconv_indices(), grid.spatial_shape, batch_size,
                           divisor=backbone.divisor)
    out = backbone(x)
    return scatter_to_points(out.features, grid), out
