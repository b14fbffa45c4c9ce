"""instgs: 3D scene understanding with Gaussian Splatting (InstanceGaussian and a 3D-input track).

The public surface is re-exported here lazily (importing ``instgs`` stays cheap; each name
imports its module on first use)::

    from instgs import read_scene, render, Gaussians, Cameras, ScaffoldModel, TrainConfig
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Cameras": "instgs.core.cameras",
    "Gaussians": "instgs.core.gaussians",
    "InputError": "instgs.core.checks",
    "ShapeError": "instgs.core.checks",
    "SceneData": "instgs.data",
    "read_scene": "instgs.data",
    "make_synthetic_scene": "instgs.data.synthetic",
    "render": "instgs.render",
    "RenderOutput": "instgs.render",
    "ScaffoldConfig": "instgs.model.scaffold",
    "ScaffoldModel": "instgs.model.scaffold",
    "TrainConfig": "instgs.train.config",
    "train": "instgs.train",
    "load_run": "instgs.run",
    "LoadedRun": "instgs.run",
    "RunPaths": "instgs.run",
    "SegmentConfig": "instgs.segment.pipeline",
    "segment_anchors": "instgs.segment.pipeline",
    "query_instances": "instgs.language.query",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'instgs' has no attribute {name!r}")
