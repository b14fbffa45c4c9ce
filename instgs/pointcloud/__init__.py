"""3D-input track: point-cloud data, voxelisation, clustering ops, evaluators, spconv.

Submodules: ``data`` (ScanNet / S3DIS readers, labels, transforms), ``voxelize``,
``ops`` (ball query, connected components, HAIS point / set aggregation), ``evaluate``
(ScanNet AP, S3DIS mCov/mWCov/mPrec/mRec, semantic mIoU), ``spconv_compat``
(``import_spconv()``: the only way to import spconv inside instgs), ``presets``
(``instgs-pc train`` setups = the files ``configs/pointcloud/*.yaml``), ``train`` (trainer
and safe checkpoints), ``cli`` (``instgs-pc``). spconv is optional and imported only by
``import_spconv``. See docs/pointcloud.md and docs/hais.md.
"""

from __future__ import annotations

from instgs.pointcloud.data.scannet import PointScene, load_scannet_scene
from instgs.pointcloud.evaluate import (
    InstancePred,
    s3dis_instance_metrics,
    scannet_instance_ap,
    semantic_metrics,
)
from instgs.pointcloud.voxelize import VoxelGrid, pool_to_voxels, scatter_to_points, voxelize

__all__ = [
    "PointScene",
    "load_scannet_scene",
    "InstancePred",
    "scannet_instance_ap",
    "s3dis_instance_metrics",
    "semantic_metrics",
    "VoxelGrid",
    "voxelize",
    "pool_to_voxels",
    "scatter_to_points",
]
