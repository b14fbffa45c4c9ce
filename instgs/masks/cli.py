"""``instgs masks`` / ``python -m instgs.masks``: parse, call :func:`instgs.masks.run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from .stage import MasksConfig, run

__all__ = ["MasksCommand", "main"]


@dataclass
class MasksCommand:
    """Write ``<data>/language_features/<stem>_s.npy`` ([4, H, W] mask ids; levels default,
    small, medium, large; ids cumulative across levels; -1 = none) and ``<stem>_f.npy``
    ([M, 512] L2-normalised CLIP features) for every image, one image at a time. A rerun skips
    finished images. See docs/masks.md."""

    data: Path
    """Scene folder (images in images/, color/ or images_<d>/ unless --images-dir)."""
    config: Annotated[MasksConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=MasksConfig)
    """Mask and feature settings."""

    def run(self) -> Path:
        """Process every image of the scene; returns the output folder (see :func:`run`)."""
        return run(self.data, self.config)


def main(args: list[str] | None = None) -> int:
    """``python -m instgs.masks [ARGS]`` (same behaviour and exit codes as ``instgs masks``)."""
    import sys

    from instgs._cli import run_main, tyro_parse

    argv = sys.argv[1:] if args is None else args
    return run_main("instgs masks", argv,
                    lambda a: tyro_parse(MasksCommand, a, "instgs masks",
                                         description=MasksCommand.__doc__))
