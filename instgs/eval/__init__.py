"""Metrics with the published protocols (quirks reproduced and documented, docs/evaluation.md).

``instgs.eval.run_scannet(run_dir, gt, ...) -> Path`` is the stage (what ``instgs eval
scannet`` does); ``instgs.eval.run_masks(run_dir, ...)`` scores rendered 2D instance maps
(``instgs eval masks``).
"""

from __future__ import annotations

from .io import (
                 ScanNetGT,
                 load_cluster_lang,
                 load_pred_labels,
                 load_run_language,
                 load_scannet_gt,
                 load_text_features,
)
from .scannet import (
                 CLASS_SETS,
                 NYU40_NAMES,
                 InstanceMetrics,
                 MatchingMetrics,
                 TextQueryMetrics,
                 instance_matching,
                 instance_miou,
                 text_query_scores,
)
from .masks2d import evaluate_masks, run_masks
from .stage import evaluate_scannet, format_table, run_scannet

__all__ = ["CLASS_SETS", "NYU40_NAMES", "InstanceMetrics", "MatchingMetrics", "TextQueryMetrics",
           "instance_miou", "instance_matching", "text_query_scores", "ScanNetGT",
           "load_scannet_gt", "load_pred_labels", "load_cluster_lang", "load_run_language",
           "load_text_features", "evaluate_scannet", "format_table", "run_scannet",
           "evaluate_masks", "run_masks"]
