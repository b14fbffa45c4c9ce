"""HAIS (Chen et al., ICCV 2021): hierarchical aggregation for 3D instance segmentation."""

from __future__ import annotations

from instgs.pointcloud.hais.config import HAISConfig
from instgs.pointcloud.hais.inference import STAGES, HAISPrediction, predict
from instgs.pointcloud.hais.model import HAIS, HAISBatch, Proposals, collate_scenes

__all__ = ["HAIS", "HAISBatch", "HAISConfig", "HAISPrediction", "Proposals", "STAGES",
           "collate_scenes", "predict"]
