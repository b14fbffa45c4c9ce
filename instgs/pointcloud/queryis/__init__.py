"""3D-QueryIS (query-based 3D instance segmentation, seed 001): RPG, learnable queries, a
transformer decoder, class and mask-embedding heads, Hungarian loss, score s_k, no NMS."""

from __future__ import annotations

from instgs.pointcloud.queryis.config import QueryISConfig
from instgs.pointcloud.queryis.inference import STAGES, predict, query_scores
from instgs.pointcloud.queryis.model import QueryIS, QueryOutput, gt_instances

__all__ = ["QueryIS", "QueryISConfig", "QueryOutput", "STAGES", "gt_instances", "predict",
           "query_scores"]
