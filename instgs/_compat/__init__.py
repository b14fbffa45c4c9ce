"""Compatibility shims for third-party packages (imported lazily by the modules that need them)."""

from __future__ import annotations
