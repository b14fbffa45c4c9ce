"""Neighbourhood and clustering ops (fast paths); slow twins live in ``_reference``."""

from __future__ import annotations

from instgs.pointcloud.ops.cluster import (
    SET_AGGREGATION_VARIANTS,
    ball_query_graph,
    cluster_centers,
    connected_components,
    point_aggregation,
    set_aggregation,
)

__all__ = [
    "SET_AGGREGATION_VARIANTS",
    "ball_query_graph",
    "cluster_centers",
    "connected_components",
    "point_aggregation",
    "set_aggregation",
]
