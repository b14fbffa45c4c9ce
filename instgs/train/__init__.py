"""Optimisation of a Scaffold model against posed images and SAM masks."""

from __future__ import annotations

from .config import PRESETS, TrainConfig

__all__ = ["TrainConfig", "PRESETS", "train"]


def train(cfg: TrainConfig):
    """Train with ``cfg``; returns the run directory (:class:`~instgs.train.trainer.Trainer`)."""
    from .trainer import train as _train

    return _train(cfg)
