"""The result type of the networks' ``predict`` functions and a stage timer.

HAIS has its own :class:`instgs.pointcloud.hais.HAISPrediction` (same ``instances``,
``semantic``, ``timings`` fields, plus ``offsets``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Prediction", "StageTimer"]


@dataclass
class Prediction:
    """Output of ``predict(model, scene)`` for one scene.

    Attributes:
        instances: list of ``instgs.pointcloud.evaluate.InstancePred`` (mask [N] bool,
            label = class index of the label space, score float), by descending score.
        semantic: [N] int64 predicted class per point, or None (3D-QueryIS has no
            semantic branch).
        timings: seconds per stage (the network's ``STAGES``; ``total`` last).
        arrays: extra per-point or per-instance outputs written by ``instgs-pc predict``
            (e.g. ``embedding`` [N, d] float32).
    """

    instances: list
    semantic: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class StageTimer:
    """``lap(name)`` records the seconds since the previous lap under ``name``;
    ``finish()`` adds ``total`` and returns the dict (insertion order = stage order)."""

    def __init__(self) -> None:
        self.t0 = self.tic = time.perf_counter()
        self.times: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self.tic
        self.tic = now

    def finish(self) -> dict[str, float]:
        self.times["total"] = time.perf_counter() - self.t0
        return self.times
