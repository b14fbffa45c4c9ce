"""Optimisation of a Scaffold model against posed images and SAM masks."""

from __future__ import annotations

from .config import TrainConfig, train_preset, train_presets

__all__ = ["TrainConfig", "train_preset", "train_presets", "train", "run"]


def train(cfg: TrainConfig):
    """Train with ``cfg``; returns the run directory (:class:`~instgs.train.trainer.Trainer`)."""
    from .trainer import train as _train

    return _train(cfg)


run = train
"""The stage function (hloc style): ``instgs.train.run(cfg) -> run folder``."""
