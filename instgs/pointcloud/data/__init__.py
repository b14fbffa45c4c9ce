"""Point-cloud datasets (ScanNet v2, S3DIS), label maps and augmentations."""

from __future__ import annotations

from instgs.pointcloud.data.labels import (
    IGNORE_INDEX,
    S3DIS_NAMES,
    SCANNET20_NAMES,
    SCANNET20_NYU40_IDS,
    nyu40_to_scannet20,
)
from instgs.pointcloud.data.scannet import (
    PointScene,
    ScanNetDataset,
    class_statistics,
    load_scannet_scene,
)

__all__ = [
    "IGNORE_INDEX",
    "S3DIS_NAMES",
    "SCANNET20_NAMES",
    "SCANNET20_NYU40_IDS",
    "nyu40_to_scannet20",
    "PointScene",
    "ScanNetDataset",
    "class_statistics",
    "load_scannet_scene",
]
