"""Trainable scene models (parameters and decoders only; no rendering, no losses)."""

from __future__ import annotations

from .scaffold import NeuralGaussians, ScaffoldConfig, ScaffoldModel

__all__ = ["ScaffoldConfig", "ScaffoldModel", "NeuralGaussians"]
