"""From photos to a segmented, queryable, exported scene: ``instgs prepare`` (structure from
motion with pycolmap) and ``instgs run`` (every stage, resumable; many scenes on Ray)."""

from __future__ import annotations

from .prepare import PrepareConfig, prepare
from .run import STAGES, PipelineConfig, run_pipeline, stage_status

__all__ = ["PrepareConfig", "prepare", "PipelineConfig", "run_pipeline", "stage_status",
           "STAGES", "run_many"]


def __getattr__(name: str):
    if name == "run_many":
        from .many import run_many

        return run_many
    raise AttributeError(name)
