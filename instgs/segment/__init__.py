"""Trained scene -> instance labels: FPS seeding, assignment, voxel-adjacency graph merge,
HDBSCAN baseline, and the ``instances.npz`` artifact (InstanceGaussian §3.3)."""

from __future__ import annotations

from .hdbscan import hdbscan_baseline
from .labels import InstanceLabels, expand_to_gaussians, load_instances, save_instances
from .merge import merge_clusters, reassign_small_clusters, relabel_by_size, voxel_adjacency
from .pipeline import SegmentConfig, SegmentResult, cluster_means, segment_anchors
from .seeds import assign_to_seeds, fps, positional_encoding, seed_points

__all__ = ["SegmentConfig", "SegmentResult", "segment_anchors", "cluster_means", "fps",
           "positional_encoding", "seed_points", "assign_to_seeds", "voxel_adjacency",
           "merge_clusters", "reassign_small_clusters", "relabel_by_size", "hdbscan_baseline",
           "InstanceLabels", "save_instances", "load_instances", "expand_to_gaussians"]
