"""``instgs segment RUN``: parse, call :func:`instgs.segment.run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from .pipeline import SegmentConfig

__all__ = ["SegmentCommand"]


@dataclass
class SegmentCommand:
    """Group a trained run's anchors into class-agnostic 3D instances (InstanceGaussian §3.3)
    and write RUN/instances.npz (anchor_labels, gaussian_labels, cluster_feats)."""

    run_dir: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN")]
    """Run folder written by `instgs train`."""
    config: Annotated[SegmentConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=SegmentConfig)
    """Segmentation settings."""
    overwrite: bool = True
    """Replace existing instance labels (--no-overwrite refuses)."""

    def run(self) -> Path:
        """Segment the run; return the written file (see :func:`instgs.segment.run`)."""
        from .stage import run

        return run(self.run_dir, self.config, overwrite=self.overwrite)
