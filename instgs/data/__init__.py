"""Scene readers: posed images + initial points in instgs conventions (docs/conventions.md).

``read_scene(path, format="auto")`` reads COLMAP, NeRF ``transforms.json``, LLFF and the
OpenGaussian ScanNet layout into a :class:`SceneData` (OpenCV cameras, world-to-camera
``viewmats``, ``Ks`` in pixels, world units as given).
"""

from __future__ import annotations

from .ply import read_ply_points
from .scene import KNOWN_FORMATS, LAYOUTS, SceneData, detect_format, read_scene

__all__ = ["read_scene", "SceneData", "KNOWN_FORMATS", "LAYOUTS", "detect_format",
           "read_ply_points"]
