"""Optimisation of a Scaffold model against posed images and SAM masks."""

from __future__ import annotations

from .config import PRESETS, TrainConfig

__all__ = ["TrainConfig", "PRESETS", "train"]


def train(cfg: TrainConfig):
    """Train with ``cfg`` and return the run directory (see :class:`~instgs.train.trainer.Trainer`)."""
    from .trainer import train as _train

    return _train(cfg)
