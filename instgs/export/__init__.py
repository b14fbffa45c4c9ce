"""Standard 3DGS files and pictures of a run: bake, export, read back, render.

``instgs.export.run(run_dir, cfg) -> list[Path]`` is the stage (``instgs export RUN``);
:func:`bake` turns the view-dependent Scaffold model into static Gaussians with SH colour;
:func:`read_ply` / :func:`write_splats` read and write 3DGS files; :func:`render_pictures`
is ``instgs render``. See docs/export.md.
"""

from __future__ import annotations

from .bake import BakeConfig, bake
from .formats import FORMATS, write_splats
from .pictures import PicturesConfig, render_pictures
from .ply import read_ply, write_ply
from .splats import Splats
from .stage import ExportConfig, load_or_bake, run

__all__ = ["run", "ExportConfig", "BakeConfig", "bake", "load_or_bake", "Splats", "read_ply",
           "write_ply", "write_splats", "FORMATS", "PicturesConfig", "render_pictures"]
