"""Gaussian splatting rasterization with three backends (docs/rasterizer.md).

``render(gaussians, cameras, ...) -> RenderOutput``; backends: ``cpu`` (native C++ tile
rasterizer, compiled on first use), ``gsplat`` (CUDA), ``torch`` (dense reference twin).
Importing this package is cheap: nothing is compiled or imported from gsplat here.
"""

from __future__ import annotations

from ._api import backend_for_device, render, resolve_backend
from ._types import BackendUnavailableError, RenderOutput
from .projection import Projection, project

__all__ = ["render", "RenderOutput", "BackendUnavailableError", "project", "Projection",
           "resolve_backend", "backend_for_device"]
