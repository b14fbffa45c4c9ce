"""``instgs demo``: the whole pipeline on the embedded synthetic scene, with no download.

synthetic scene (:mod:`instgs.data.synthetic`) -> ``instgs train --preset scannet``
-> ``instgs segment`` -> ``instgs eval scannet`` against the scene's ground truth (3D points)
and ``instgs eval masks`` (2D instance maps of the held-out views) -> ``instgs language``
-> ``instgs query`` ("table", "ball") with the scene's oracle text features (the synthetic
stand-in for CLIP, so no weights are needed).
Every stage writes its artifact into the run folder; rerunning the demo reuses the scene and
retrains from scratch (``--overwrite``) or, with ``--resume``, continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["DemoCommand"]


@dataclass
class DemoCommand:
    """Generate the procedural table-top scene, train instance features on it, segment it
    into 3D instances and score them against the ground truth."""

    scene_dir: Path = Path("demo_scene")
    """Where the synthetic scene is written (reused when complete)."""
    run_dir: Path = Path("runs/demo")
    """Training run folder."""
    steps: int = 1200
    """Training steps (the 30k schedule scaled down; semantics start at 1/3)."""
    max_minutes: float | None = 20.0
    """Wall-clock budget for training (then it evaluates and saves)."""
    backend: Literal["auto", "cpu", "gsplat", "torch"] = "auto"
    """Rasterizer backend."""
    resume: bool = False
    """Continue an interrupted demo training run."""
    num_views: int = 24
    width: int = 160
    height: int = 120

    def run(self) -> Path:
        """Run every stage; returns the evaluation JSON path."""
        import logging

        from instgs import eval as evaluate
        from instgs import language, segment
        from instgs.data.synthetic import make_synthetic_scene
        from instgs.language.cli import QueryCommand
        from instgs.train import train, train_preset

        log = logging.getLogger("instgs.demo")
        t0 = time.time()
        log.info("[1/6] synthetic scene -> %s", self.scene_dir)
        scene = make_synthetic_scene(self.scene_dir, num_views=self.num_views,
                                     width=self.width, height=self.height)
        cfg = dataclasses.replace(train_preset("scannet"), data=Path(scene),
                                  run_dir=self.run_dir, steps=self.steps,
                                  max_minutes=self.max_minutes, backend=self.backend,
                                  resume=self.resume, overwrite=not self.resume,
                                  save_every=500)
        log.info("[2/6] train (%d steps) -> %s", self.steps, self.run_dir)
        train(cfg)
        log.info("[3/6] segment")
        segment.run(self.run_dir)
        log.info("[4/6] evaluate against the ground truth points")
        out = evaluate.run_scannet(self.run_dir, Path(scene))
        log.info("[5/6] evaluate the held-out views' instance maps against the GT masks")
        evaluate.run_masks(self.run_dir)
        log.info("[6/6] language features per instance, then text queries")
        language.run(self.run_dir)
        QueryCommand(run_dir=self.run_dir, texts=("table", "ball"),
                     text_features=Path(scene) / "text_features.json").run()
        log.info("demo finished in %.1f min; results in %s", (time.time() - t0) / 60,
                 self.run_dir)
        log.info("look at it in your browser (instances coloured, query, click, export):\n"
                 "  instgs view %s", self.run_dir)
        return out
