"""``instgs prepare`` and ``instgs run``: parse, call :mod:`instgs.pipeline`, print."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from .prepare import PrepareConfig
from .run import PipelineConfig

__all__ = ["PrepareCommand", "RunCommand"]


@dataclass
class PrepareCommand:
    """Pose a folder of photos with structure from motion (pycolmap) and write a COLMAP
    scene that `instgs train` reads, with a report of what was registered."""

    images: Path
    """Folder of photos (one size, .jpg/.png)."""
    out: Path
    """Scene folder to write (images/, sparse/, images_<d>/, prepare_report.json)."""
    config: Annotated[PrepareConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=PrepareConfig)
    """Structure-from-motion settings."""

    def run(self):
        """Prepare; return the report (see :func:`instgs.pipeline.prepare`)."""
        from .prepare import prepare

        return prepare(self.images, self.out, self.config)


@dataclass
class RunCommand:
    """The whole pipeline in one command: photos (--images) or a posed scene (--data) ->
    masks -> train -> segment -> language -> export; a rerun resumes where it stopped.
    With --scenes, one pipeline per scene on Ray."""

    config: Annotated[PipelineConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=PipelineConfig)
    """Pipeline settings."""
    scenes: tuple[Path, ...] = ()
    """Many scenes (folders, or text files listing them): one Ray task each."""
    scenes_are_photos: bool = False
    """With --scenes: the folders hold unposed photos (prepare each first)."""
    ray_address: str | None = None
    """Ray cluster to use (default: start a local one)."""
    cpus_per_scene: int = 2
    """CPUs each scene's task asks Ray for."""
    num_cpus: int | None = None
    """CPUs of the local Ray cluster (default: all)."""
    runs_root: Path = Path("runs")
    """With --scenes: parent folder of the run folders."""

    def run(self):
        """Run one scene, or many on Ray; with many, exit code 1 if any failed."""
        from instgs.core.checks import InputError

        if not self.scenes:
            from .run import run_pipeline

            return run_pipeline(self.config)
        from .many import read_scene_list, run_many

        results = run_many(read_scene_list(list(self.scenes)), self.config,
                           images=self.scenes_are_photos, runs_root=self.runs_root,
                           cpus_per_scene=self.cpus_per_scene, ray_address=self.ray_address,
                           num_cpus=self.num_cpus)
        failed = [r for r in results if not r.ok]
        sys.stdout.flush()
        if failed:
            raise InputError(f"{len(failed)} of {len(results)} scenes failed: "
                             f"{', '.join(r.scene for r in failed)} (their errors are above)")
        return results
