"""``instgs run``: photos (or a posed scene) -> a segmented, queryable, exported run, in one
command that resumes where it stopped.

Stages, each a function of the run layer (hloc style), in order::

    prepare  (only with --images)  SCENE/prepare_report.json     instgs.pipeline.prepare
    masks                          SCENE/language_features/      instgs.masks.run
    train                          RUN/ckpt/latest.pt + metrics  instgs.train.run
    segment                        RUN/instances.npz             instgs.segment.run
    language                       RUN/language.npz              instgs.language.run
    export                         RUN/exports/scene.ply         instgs.export.run

A stage whose artifact exists, is complete and was made from the current checkpoint is
skipped; an interrupted training resumes from its last checkpoint (saved every
``save_every`` steps). ``RUN/pipeline.json`` records every stage's status and seconds (the
manifest gets them too), so killing the command at any point and running it again resumes at
the stage it was in. One progress bar spans the stages. The end prints ``instgs view RUN``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from instgs.core.artifacts import read_json, update_manifest, write_json
from instgs.core.checks import InputError

from .prepare import REPORT_NAME, PrepareConfig, prepare

__all__ = ["PipelineConfig", "run_pipeline", "STAGES", "stage_status"]

log = logging.getLogger(__name__)

STAGES = ("prepare", "masks", "train", "segment", "language", "export")
STATE_NAME = "pipeline.json"


@dataclass(frozen=True)
class PipelineConfig:
    """``instgs run`` settings for one scene."""

    images: Path | None = None
    """A folder of unposed photos (runs `instgs prepare` first)."""
    data: Path | None = None
    """A posed scene folder instead (COLMAP, transforms.json, LLFF, ScanNet layout)."""
    run_dir: Path | None = None
    """Run folder (default runs/<name of the photo or scene folder>)."""
    scene_dir: Path | None = None
    """Where `prepare` writes the scene (default RUN/scene)."""
    preset: str = "default"
    """Training preset (configs/train/<name>.yaml)."""
    config: Path | None = None
    """Training config file instead of the preset."""
    steps: int | None = None
    """Training steps (default: the preset's)."""
    max_minutes: float | None = None
    """Training time budget."""
    downscale: int = 1
    """Train (and compute masks) at 1/downscale resolution."""
    mask_source: Literal["auto", "sam", "felzenszwalb"] = "auto"
    """auto: SAM when its weights are cached, else the Felzenszwalb fallback (no CLIP
    features, so no text queries)."""
    export_format: Literal["ply", "compressed-ply", "splat", "spz"] = "ply"
    """Format of the exported scene."""
    threads: int | None = None
    """CPU threads (default: torch's)."""
    save_every: int = 500
    """Training checkpoint interval (what an interrupted run resumes from)."""
    progress: bool = True
    matcher: Literal["auto", "exhaustive", "sequential", "spatial"] = "auto"
    """Structure from motion (with --images): feature matching (see `instgs prepare`)."""
    max_image_size: int = 1600
    """Structure from motion: SIFT image size."""


def _names(cfg: PipelineConfig) -> tuple[Path, Path]:
    """(run folder, scene folder)."""
    if (cfg.images is None) == (cfg.data is None):
        raise InputError("pass exactly one of --images DIR (photos) and --data SCENE", None,
                         "see `instgs run --help`")
    src = Path(cfg.images if cfg.images is not None else cfg.data)
    run_dir = Path(cfg.run_dir) if cfg.run_dir else Path("runs") / src.resolve().name
    if cfg.data is not None:
        return run_dir, Path(cfg.data)
    return run_dir, Path(cfg.scene_dir) if cfg.scene_dir else run_dir / "scene"


def _train_config(cfg: PipelineConfig, scene: Path, run_dir: Path):
    from instgs.core.configs import load_config_file
    from instgs.train.config import TrainConfig, train_preset

    base = load_config_file(cfg.config, TrainConfig) if cfg.config else train_preset(cfg.preset)
    kw = {"data": scene.resolve(), "run_dir": run_dir, "downscale": cfg.downscale,
          "save_every": cfg.save_every, "progress": cfg.progress, "threads": cfg.threads}
    if cfg.steps is not None:
        kw["steps"] = cfg.steps
    if cfg.max_minutes is not None:
        kw["max_minutes"] = cfg.max_minutes
    if cfg.downscale > 1 and base.format in ("auto", "colmap"):
        kw["images_dir"] = f"images_{cfg.downscale}" if (scene / f"images_{cfg.downscale}"
                                                         ).is_dir() else None
    return dataclasses.replace(base, **kw)


# --------------------------------------------------------------------------- completeness
def _masks_done(scene: Path, images_dir: str | None) -> bool:
    from instgs.masks.io import FEATURES_DIRNAME, is_complete
    from instgs.masks.pipeline import find_image_dir, list_images

    feat = scene / FEATURES_DIRNAME
    if not feat.is_dir():
        return False
    return all(is_complete(feat, p.stem) for p in list_images(find_image_dir(scene, images_dir)))


def _train_done(run_dir: Path, steps: int) -> bool:
    """Training finished: its metrics describe the checkpoint on disk, for this step budget."""
    from instgs.run import RunPaths, current_source, load_metrics

    paths = RunPaths(run_dir)
    if not (paths.checkpoint.is_file() and paths.metrics.is_file()):
        return False
    m = load_metrics(run_dir)
    return m.get("steps") == steps and m.get("step") == current_source(run_dir)[
        "checkpoint_step"]


def _fresh(run_dir: Path, which: str) -> bool:
    """The stage's artifact exists and was made from the current checkpoint."""
    from instgs.run import RunPaths, current_source, load_instances, load_language

    paths = RunPaths(run_dir)
    try:
        if which == "segment":
            return paths.instances.is_file() and load_instances(run_dir) is not None
        if which == "language":
            return paths.language.is_file() and load_language(run_dir) is not None
        table = paths.exports / "scene.instances.json"
        return table.is_file() and read_json(table).get("source", {}).get(
            "checkpoint_sha256") == current_source(run_dir)["checkpoint_sha256"]
    except InputError:  # stale or unreadable: remake it
        return False


def stage_status(run_dir: str | Path) -> dict:
    """``RUN/pipeline.json``: stage -> {status, seconds, ...} ({} before the first run)."""
    p = Path(run_dir) / STATE_NAME
    return read_json(p).get("stages", {}) if p.is_file() else {}


class _State:
    """``RUN/pipeline.json`` writer (atomic, updated at each stage's start and end)."""

    def __init__(self, run_dir: Path, cfg: PipelineConfig):
        self.path = run_dir / STATE_NAME
        self.data = read_json(self.path) if self.path.is_file() else {"stages": {}}
        self.data["config"] = dataclasses.asdict(cfg)

    def mark(self, stage: str, status: str, **info) -> None:
        self.data["stages"][stage] = {"status": status,
                                      "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **info}
        write_json(self.path, self.data)

    def skip(self, stage: str) -> None:
        """A complete stage found on disk: keep the record of the run that made it."""
        prev = self.data["stages"].get(stage, {})
        if prev.get("status") in ("done", "skipped") and "seconds" in prev:
            self.mark(stage, "skipped", seconds=prev["seconds"], made_at=prev.get(
                "made_at", prev["at"]))
        else:
            self.mark(stage, "skipped")


def _sam_available() -> bool:
    from instgs.masks.sam import SAM_CHECKPOINTS, default_cache_dir

    return (default_cache_dir() / SAM_CHECKPOINTS["vit_h"]).is_file()


def _run_masks(scene: Path, cfg: PipelineConfig, images_dir: str | None) -> None:
    from instgs import masks
    from instgs.masks.sam import default_cache_dir

    source = cfg.mask_source
    if source == "auto":
        source = "sam" if _sam_available() else "felzenszwalb"
        if source == "felzenszwalb":
            log.warning("no SAM weights found: using the Felzenszwalb mask fallback (no CLIP "
                        "features, so text queries will not work); put SAM vit_h into %s "
                        "and rerun with --mask-source sam for real masks", default_cache_dir())
    masks.run(scene, masks.MasksConfig(mask_source=source, images_dir=images_dir,
                                       progress=cfg.progress))


def run_pipeline(cfg: PipelineConfig) -> Path:
    """Run (or resume) every stage for one scene (module docstring).

    Args:
        cfg: :class:`PipelineConfig` (exactly one of ``images`` and ``data``).

    Returns:
        The run folder.

    Raises:
        InputError: from the stage that failed (bad photos, unmatched photos, a scene
            layout instgs cannot read, a run folder in use, ...), naming the file and fix.
    """
    from tqdm import tqdm

    run_dir, scene = _names(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = _State(run_dir, cfg)
    stages = [s for s in STAGES if s != "prepare" or cfg.images is not None]
    bar = tqdm(total=len(stages), desc="instgs run", disable=not cfg.progress, position=0)
    tcfg = None  # the training config, once the scene exists (after prepare)
    try:
        for stage in stages:
            bar.set_description(f"instgs run: {stage}")
            if stage != "prepare" and tcfg is None:
                tcfg = _train_config(cfg, scene, run_dir)
            done = _done(stage, scene, run_dir, tcfg)
            if done:
                log.info("%s: complete, skipped", stage)
                state.skip(stage)
            else:
                state.mark(stage, "running")
                t0 = time.perf_counter()
                _run_stage(stage, cfg, scene, run_dir, tcfg)
                sec = round(time.perf_counter() - t0, 1)
                state.mark(stage, "done", seconds=sec)
                update_manifest(run_dir, f"pipeline.{stage}", seconds=sec)
            bar.update(1)
    finally:
        bar.close()
    log.info("instgs run: finished; look at it in your browser:\n  instgs view %s", run_dir)
    return run_dir


def _done(stage: str, scene: Path, run_dir: Path, tcfg) -> bool:
    if stage == "prepare":
        return (scene / REPORT_NAME).is_file()
    if stage == "masks":
        return _masks_done(scene, tcfg.images_dir)
    if stage == "train":
        return _train_done(run_dir, tcfg.steps)
    return _fresh(run_dir, stage)


def _run_stage(stage: str, cfg: PipelineConfig, scene: Path, run_dir: Path, tcfg) -> None:
    from instgs.run import RunPaths

    if stage == "prepare":
        prepare(cfg.images, scene, PrepareConfig(
            matcher=cfg.matcher, max_image_size=cfg.max_image_size,
            downscales=tuple({cfg.downscale} - {1}), threads=cfg.threads or -1,
            progress=cfg.progress))
    elif stage == "masks":
        _run_masks(scene, cfg, tcfg.images_dir)
    elif stage == "train":
        from instgs.train import train

        ckpt = RunPaths(run_dir).checkpoint.is_file()
        train(dataclasses.replace(tcfg, resume=ckpt, overwrite=False))
    elif stage == "segment":
        from instgs import segment

        segment.run(run_dir, segment.SegmentConfig(progress=cfg.progress))
    elif stage == "language":
        from instgs import language

        from instgs.language.associate import LanguageConfig

        language.run(run_dir, LanguageConfig(progress=cfg.progress), threads=cfg.threads)
    else:
        from instgs import export

        from instgs.export.bake import BakeConfig

        export.run(run_dir, export.ExportConfig(format=cfg.export_format,
                                                bake=BakeConfig(progress=cfg.progress)))
