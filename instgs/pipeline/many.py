"""``instgs run --scenes ...``: one pipeline per scene, in parallel on Ray.

Each scene runs :func:`instgs.pipeline.run.run_pipeline` in its own Ray task with
``cpus_per_scene`` CPUs (Ray schedules as many at once as the cluster has CPUs); ``ray.init()``
starts a local cluster unless ``ray_address`` names one (``auto`` or ``ray://host:10001``).
A scene that fails is reported with its error and does not stop the others; every scene
resumes where it stopped when the command is run again (the pipeline's own skipping).
``runs/ray_summary.json`` (or ``--summary``) lists every scene's outcome.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from instgs.core.artifacts import write_json
from instgs.core.checks import InputError

from .run import PipelineConfig, run_pipeline

__all__ = ["SceneResult", "run_many", "read_scene_list"]

log = logging.getLogger(__name__)


@dataclass
class SceneResult:
    """The outcome of one scene: ``ok``; the run folder; the error line when it failed."""

    scene: str
    ok: bool
    run_dir: str | None
    error: str | None
    seconds: float


def read_scene_list(items: list[Path]) -> list[Path]:
    """Scene folders from folders and/or text files (one path per line, ``#`` comments).

    Raises:
        InputError: a listed path that does not exist, or nothing listed.
    """
    out: list[Path] = []
    for item in items:
        if item.is_file():
            for line in item.read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    p = Path(line)
                    out.append(p if p.is_absolute() else item.parent / p)
        else:
            out.append(item)
    missing = [str(p) for p in out if not p.exists()]
    if missing:
        raise InputError(f"scene(s) not found: {', '.join(missing)}", None,
                         "list existing scene folders")
    if not out:
        raise InputError("no scene given", None, "pass --scenes DIR ... or a text file")
    return out


def _one(scene: str, cfg: PipelineConfig, images: bool, runs_root: str,
         cpus: int) -> SceneResult:
    """Run one scene, catching its failure (executed inside a Ray task with ``cpus`` CPUs,
    which bound its torch threads unless ``cfg.threads`` says otherwise)."""
    import os

    from instgs._cli import setup_logging

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    setup_logging()
    t0 = time.perf_counter()
    name = Path(scene).resolve().name
    one = dataclasses.replace(cfg, images=Path(scene) if images else None,
                              data=None if images else Path(scene),
                              run_dir=Path(runs_root) / name, progress=False,
                              threads=cfg.threads or cpus)
    try:
        run_dir = run_pipeline(one)
        return SceneResult(scene, True, str(run_dir), None, time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - reported per scene, the others go on
        msg = str(e) if isinstance(e, InputError) else \
            f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
        return SceneResult(scene, False, str(one.run_dir), msg, time.perf_counter() - t0)


def run_many(scenes: list[Path], cfg: PipelineConfig, *, images: bool = False,
             runs_root: Path = Path("runs"), cpus_per_scene: int = 2,
             ray_address: str | None = None, num_cpus: int | None = None,
             summary: Path | None = None) -> list[SceneResult]:
    """Run the pipeline on every scene as Ray tasks (module docstring).

    Args:
        scenes: scene folders (posed scenes, or photo folders with ``images=True``).
        cfg: settings shared by all scenes (``data``/``images``/``run_dir`` are set per
            scene: ``runs_root/<scene folder name>``).
        images: the folders hold photos to prepare.
        runs_root: parent of the run folders.
        cpus_per_scene: CPUs each task asks Ray for.
        ray_address: an existing cluster (None: start a local one).
        num_cpus: CPUs of the local cluster (default: all).
        summary: JSON written at the end (default ``runs_root/ray_summary.json``).

    Returns:
        One :class:`SceneResult` per scene, in input order.

    Raises:
        InputError: Ray missing, or two scenes with one folder name (their runs would mix).
    """
    try:
        import ray
    except ImportError as e:
        raise InputError("running many scenes needs Ray", None,
                         "pip install 'ray>=2.9' (or run the scenes one by one)") from e
    names = [Path(s).resolve().name for s in scenes]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"several scenes are named {dup}: their run folders would collide",
                         None, "rename the scene folders")
    started = not ray.is_initialized()
    if started:
        ray.init(address=ray_address, num_cpus=num_cpus if ray_address is None else None,
                 include_dashboard=False, log_to_driver=True)
    try:
        task = ray.remote(num_cpus=cpus_per_scene, max_retries=0)(_one)
        refs = [task.remote(str(s), cfg, images, str(runs_root.resolve()), cpus_per_scene)
                for s in scenes]
        results = ray.get(refs)
    finally:
        if started:
            ray.shutdown()
    for r in results:
        if r.ok:
            log.info("  ok     %s -> %s (%.0f s)", r.scene, r.run_dir, r.seconds)
        else:
            log.error("  FAILED %s: %s", r.scene, r.error.splitlines()[0])
    write_json(summary or runs_root / "ray_summary.json",
               {"scenes": [dataclasses.asdict(r) for r in results]})
    return results
