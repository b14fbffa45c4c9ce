"""SSEN ("SSEN: Spatial Semantic Embedding Network", seed 003): semantic net, background
filter, embedding net with the p-weighted hinge discriminative loss, HDBSCAN."""

from __future__ import annotations

from instgs.pointcloud.ssen.config import SSENConfig
from instgs.pointcloud.ssen.inference import STAGES, predict, semantic_probabilities
from instgs.pointcloud.ssen.model import SSEN, Embedding

__all__ = ["SSEN", "SSENConfig", "Embedding", "STAGES", "predict", "semantic_probabilities"]
