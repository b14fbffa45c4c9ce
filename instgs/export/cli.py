"""``instgs export RUN`` and ``instgs render RUN|PLY``: parse, call the functions of
:mod:`instgs.export`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from .pictures import PicturesConfig
from .stage import ExportConfig

__all__ = ["ExportCommand", "RenderCommand"]


@dataclass
class ExportCommand:
    """Bake a run into standard 3DGS files (PLY with instance_id, SuperSplat compressed PLY,
    .splat, SPZ) that other viewers and editors open: the whole scene, some instances, the
    objects a text finds, the rest of the scene without them, or one file per instance."""

    run_dir: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN")]
    """Run folder written by `instgs train` (segmented for instance subsets)."""
    config: Annotated[ExportConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=ExportConfig)
    """Export settings."""

    def run(self) -> list[Path]:
        """Export; return the written files (see :func:`instgs.export.run`)."""
        from .stage import run

        return run(self.run_dir, self.config)


@dataclass
class RenderCommand:
    """Write PNG pictures (and optionally an MP4) of a run or of a 3DGS PLY: RGB, instance
    colours, query relevancy or depth, from the scene's cameras."""

    source: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN|PLY")]
    """A run folder or a 3DGS .ply (ours or another trainer's)."""
    out: Path
    """Output folder (<out>/<mode>/<view>.png, <out>/<mode>.mp4)."""
    cameras: Path | None = None
    """For a PLY: the run or scene folder whose cameras to use (default: the run the PLY
    lies in)."""
    config: Annotated[PicturesConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=PicturesConfig)
    """Picture settings."""

    def run(self) -> list[Path]:
        """Render; return the written files (see :func:`instgs.export.render_pictures`)."""
        from .pictures import render_pictures

        return render_pictures(self.source, self.out, self.config, cameras=self.cameras)
