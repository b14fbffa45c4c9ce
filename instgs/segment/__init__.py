"""Trained scene -> instance labels: FPS seeding, assignment, voxel-adjacency graph merge,
HDBSCAN baseline (InstanceGaussian §3.3), and the stage that writes ``instances.npz``.

``instgs.segment.run(run_dir, cfg) -> Path`` is the stage (what ``instgs segment RUN``
does); :func:`segment_anchors` is the algorithm on arrays.
"""

from __future__ import annotations

from .hdbscan import hdbscan_baseline
from .merge import merge_clusters, reassign_small_clusters, relabel_by_size, voxel_adjacency
from .pipeline import SegmentConfig, SegmentResult, cluster_means, segment_anchors
from .seeds import assign_to_seeds, fps, positional_encoding, seed_points
from .stage import run, segment_run

__all__ = ["SegmentConfig", "SegmentResult", "segment_anchors", "cluster_means", "fps",
           "positional_encoding", "seed_points", "assign_to_seeds", "voxel_adjacency",
           "merge_clusters", "reassign_small_clusters", "relabel_by_size", "hdbscan_baseline",
           "run", "segment_run"]
