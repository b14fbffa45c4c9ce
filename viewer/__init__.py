"""The instgs viewer (``instgs view RUN``): a viser page to look at a run, query it by text,
select objects by clicking and export them. Shipped in the wheel as ``instgs.viewer``.

:class:`ViewerScene` is the data (no viser needed); :class:`ViewerApp` the running app.
"""

from __future__ import annotations

from .scene import InstanceInfo, ViewerScene

__all__ = ["ViewerScene", "InstanceInfo", "ViewerApp", "view"]


def __getattr__(name: str):
    if name == "ViewerApp":
        from .app import ViewerApp

        return ViewerApp
    if name == "view":
        from .cli import view

        return view
    raise AttributeError(f"module 'instgs.viewer' has no attribute {name!r}")
