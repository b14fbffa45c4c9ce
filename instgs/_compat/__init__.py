"""Compatibility shims for third-party packages (imported lazily by the modules that need them)."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["import_optional"]


def import_optional(module: str, pip_name: str) -> Any:
    """Import an optional dependency that needs torchvision (segment_anything, open_clip).

    Registers the CPU ``torchvision::nms`` kernel first when torchvision's own ops are
    missing (:func:`instgs._compat.torchvision_nms.ensure_torchvision`).

    Raises:
        ImportError: the package is not installed; the message names the pip package.
    """
    from .torchvision_nms import ensure_torchvision

    ensure_torchvision()
    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(f"{module} is not installed: pip install {pip_name} "
                          "(or install instgs with its default dependencies)") from e
