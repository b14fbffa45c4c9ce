"""Where the external readers of the export tests live."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def splat_transform() -> list[str] | None:
    """The splat-transform command (installed by .ci/run into .ci/node), or None."""
    local = REPO / ".ci" / "node" / "node_modules" / ".bin" / "splat-transform"
    if local.is_file() and shutil.which("node"):
        return [str(local)]
    found = shutil.which("splat-transform")
    return [found] if found else None
