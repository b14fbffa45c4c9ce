"""``instgs view RUN``: serve the viewer until interrupted."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

__all__ = ["ViewCommand", "view"]

log = logging.getLogger(__name__)


def view(run_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8080,
         text_features: Path | None = None, max_splats: int = 1_000_000,
         min_opacity: float = 0.02):
    """Load a run and start the viewer; returns the running :class:`~instgs.viewer.app.ViewerApp`.

    Args:
        run_dir: a trained run (segmented and with language features for the full viewer;
            without them it opens with RGB only and says why).
        host: interface to bind; ``127.0.0.1`` (default) keeps the page on this machine,
            ``0.0.0.0`` makes it reachable from the network (a warning is printed).
        port: TCP port.
        text_features: JSON {name: [512 floats]} for offline queries.
        max_splats: level of detail (most visible splats kept).
        min_opacity: splats below are not sent.

    Raises:
        InputError: missing run or checkpoint, port in use.
    """
    from .app import ViewerApp
    from .scene import ViewerScene

    t0 = time.perf_counter()
    scene = ViewerScene.load(run_dir, text_features=text_features, max_splats=max_splats,
                             min_opacity=min_opacity)
    app = ViewerApp(scene, host=host, port=port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("warning: the viewer listens on %s: anyone who can reach this machine "
                    "on port %d can open the page (use --host 127.0.0.1 to keep it local)",
                    host, port)
    for note in scene.notes:
        log.info("  %s", note)
    log.info("instgs view: %d splats, %d instances ready in %.1f s; open %s", len(scene.means),
             len([i for i in scene.instances if i >= 0]), time.perf_counter() - t0, app.url)
    return app


@dataclass
class ViewCommand:
    """Open a run in the browser: the baked Gaussians, instances, text queries, click to
    select, isolate / hide / export objects (viser; no GPU needed)."""

    run_dir: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN")]
    """Run folder written by `instgs train` (segmented + `instgs language` for everything)."""
    port: int = 8080
    """TCP port."""
    host: str = "127.0.0.1"
    """Interface: 127.0.0.1 = this machine only; 0.0.0.0 = reachable from the network."""
    text_features: Path | None = None
    """JSON {name: [512 floats]} for offline queries (default: the scene's, else CLIP)."""
    max_splats: int = 1_000_000
    """Level of detail: at most this many splats (the most visible ones)."""
    min_opacity: float = 0.02
    """Splats fainter than this are not sent to the browser."""

    def run(self) -> None:
        """Serve until Ctrl-C."""
        app = view(self.run_dir, host=self.host, port=self.port,
                   text_features=self.text_features, max_splats=self.max_splats,
                   min_opacity=self.min_opacity)
        try:
            while True:
                time.sleep(3600)
        finally:
            app.stop()
