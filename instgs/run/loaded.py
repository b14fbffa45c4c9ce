"""Load a run back: its config, scene, model and checkpoint, as one typed object.

Later stages (segment, language, eval, export, the viewer) get a run through
:func:`load_run`, never through the trainer. The trainer writes through the same layer
(:func:`write_run_config`, :func:`save_run_checkpoint`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instgs.core.artifacts import config_to_dict, read_json, write_json
from instgs.core.checks import InputError
from instgs.core.configs import from_dict

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .layout import RunPaths
from .provenance import RUNTIME_FIELDS, config_sha256, write_checkpoint_info

if TYPE_CHECKING:
    from instgs.data.types import SceneData
    from instgs.model.scaffold import NeuralGaussians, ScaffoldModel
    from instgs.train.config import TrainConfig

__all__ = ["LoadedRun", "load_run", "read_run_config", "write_run_config", "appearance_index",
           "load_run_checkpoint", "save_run_checkpoint", "check_resumable", "scaffold_from",
           "source_of"]

CHECKPOINT_KIND = "scaffold"


def _fix_train(run_dir: Path, cfg: Any = None) -> str:
    data = f" --data {cfg.data}" if cfg is not None else ""
    return f"train the run: instgs train{data} --run-dir {run_dir}"


def read_run_config(run_dir: str | Path) -> TrainConfig:
    """``RUN/config.json`` as a :class:`~instgs.train.config.TrainConfig`.

    Raises:
        InputError: missing or invalid file, unknown keys (a run of another instgs version).
    """
    from instgs.train.config import TrainConfig

    path = RunPaths(Path(run_dir)).config
    if not path.is_file():
        raise InputError("not a run folder (no config.json)", path,
                         "pass a folder written by `instgs train`")
    return from_dict(TrainConfig, read_json(path), path)


def write_run_config(run_dir: str | Path, cfg: TrainConfig) -> Path:
    """Write ``RUN/config.json`` (plain data, paths as strings) atomically."""
    return write_json(RunPaths(Path(run_dir)).config, config_to_dict(cfg))


def appearance_index(scene: SceneData) -> dict[int, int]:
    """View index -> appearance-embedding row: training views use their own row (in
    ``train_ids`` order); held-out views borrow the nearest training camera's row."""
    app = {i: k for k, i in enumerate(scene.train_ids)}
    centers = scene.cameras.centers
    for i in scene.test_ids:
        app[i] = int((centers[scene.train_ids] - centers[i]).norm(dim=-1).argmin())
    return app


def save_run_checkpoint(run_dir: str | Path, data: dict, cfg: TrainConfig) -> Path:
    """Write ``RUN/ckpt/latest.pt`` and its ``latest.json`` (step, SHA-256, config hash).

    Args:
        run_dir: the run. data: the trainer's checkpoint content (with ``step``).
        cfg: the run's config (hashed into the record).

    Returns:
        The checkpoint path.
    """
    paths = RunPaths(Path(run_dir))
    sha = save_checkpoint(data, paths.checkpoint, kind=CHECKPOINT_KIND)
    write_checkpoint_info(run_dir, int(data.get("step", 0)), sha,
                          config_sha256(config_to_dict(cfg)))
    return paths.checkpoint


def load_run_checkpoint(run_dir: str | Path, cfg: TrainConfig | None = None,
                        required: tuple[str, ...] = ("model", "step")) -> Checkpoint:
    """Read ``RUN/ckpt/latest.pt`` safely (see :func:`instgs.run.checkpoint.load_checkpoint`).

    Args:
        run_dir: the run. cfg: its config, when known (for the fix in messages).
        required: keys the checkpoint must hold.

    Raises:
        InputError: missing, unsafe (refused), truncated, or not a Scaffold checkpoint.
    """
    run_dir = Path(run_dir)
    return load_checkpoint(RunPaths(run_dir).checkpoint, kind=CHECKPOINT_KIND,
                           fix=_fix_train(run_dir, cfg), required=required)


def scaffold_from(ckpt: Checkpoint) -> ScaffoldModel:
    """The :class:`~instgs.model.scaffold.ScaffoldModel` stored in a checkpoint.

    Raises:
        InputError: the stored model is malformed (names the file).
    """
    from instgs.model.scaffold import ScaffoldModel

    try:
        return ScaffoldModel.from_checkpoint(ckpt.data["model"], path=ckpt.path)
    except (KeyError, TypeError, RuntimeError) as e:
        raise InputError(f"the stored model is malformed ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160]})", ckpt.path,
                         "retrain the run with this instgs version") from e


def check_resumable(run_dir: str | Path, cfg: TrainConfig, scene: SceneData) -> None:
    """Refuse a ``--resume`` whose config or scene differ from the run's.

    Only :data:`~instgs.run.provenance.RUNTIME_FIELDS` (steps, time budget, threads, ...)
    may change; the scene must list the same images as ``scene.json``.

    Raises:
        InputError: no run to resume, a changed setting (named, old and new value), or
            another scene.
    """
    paths = RunPaths(Path(run_dir))
    old = read_run_config(run_dir)
    new_d, old_d = config_to_dict(cfg), config_to_dict(old)
    old_d["data"] = str(Path(old_d["data"]).resolve()) if old_d.get("data") else None
    new_d["data"] = str(Path(new_d["data"]).resolve()) if new_d.get("data") else None
    diffs = _diff(old_d, new_d)
    if diffs:
        shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diffs[:6])
        raise InputError(f"--resume with other settings than the run's ({shown})",
                         paths.config, "resume with the run's settings (omit those flags; "
                         "only steps, time budget, threads, backend and the like may change), "
                         "or train into a new --run-dir")
    if paths.scene.is_file():
        stored = read_json(paths.scene)
        names = scene.image_names()
        if stored.get("image_names") != names:
            raise InputError(f"the scene at {cfg.data} is not the one this run was trained "
                             f"on ({len(names)} images now, {len(stored.get('image_names', []))}"
                             " in scene.json)", paths.scene,
                             "resume with the run's own scene, or train into a new --run-dir")


def _diff(a: dict, b: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    out = []
    for k in sorted(set(a) | set(b)):
        if not prefix and k in RUNTIME_FIELDS:
            continue
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append((prefix + k, va, vb))
    return out


def source_of(ckpt: Checkpoint, cfg: TrainConfig | None = None) -> dict[str, Any]:
    """The provenance record of an artifact made from ``ckpt`` (see
    :mod:`instgs.run.provenance`); ``config_sha256`` is None without ``cfg``."""
    return {"checkpoint_step": ckpt.step, "checkpoint_sha256": ckpt.sha256,
            "config_sha256": None if cfg is None else config_sha256(config_to_dict(cfg))}


@dataclass
class LoadedRun:
    """A trained (or checkpointed) run, loaded.

    Attributes:
        run_dir: the run folder. paths: its :class:`~instgs.run.layout.RunPaths`.
        cfg: its :class:`~instgs.train.config.TrainConfig`.
        scene: the :class:`~instgs.data.types.SceneData` it was trained on.
        model: the Scaffold model (eval mode, on the requested device).
        checkpoint: the loaded :class:`~instgs.run.checkpoint.Checkpoint`.
        app_index: view index -> appearance-embedding row (test views: nearest train view).
    """

    run_dir: Path
    paths: RunPaths
    cfg: TrainConfig
    scene: SceneData
    model: ScaffoldModel
    checkpoint: Checkpoint
    app_index: dict[int, int]

    @property
    def source(self) -> dict[str, Any]:
        """The provenance record of this checkpoint (see :mod:`instgs.run.provenance`)."""
        return source_of(self.checkpoint, self.cfg)

    @property
    def render_backend(self) -> str:
        """The run's rasterizer backend where it renders tensors on the model's device, else
        ``auto`` (a run trained with ``--backend gsplat`` and loaded on the CPU renders with
        the CPU kernel; :func:`instgs.render.backend_for_device`)."""
        from instgs.render import backend_for_device

        return backend_for_device(self.cfg.backend, self.model.anchors.device)

    def decode(self, i: int) -> NeuralGaussians:
        """Neural Gaussians of view ``i`` (see :meth:`ScaffoldModel.decode`)."""
        cam = self.scene.cameras[i].to(self.model.anchors.device)
        return self.model.decode(cam.viewmats[0], cam.Ks[0], cam.width, cam.height,
                                 image_id=self.app_index[i])


def load_run(run_dir: str | Path, device: str = "cpu", data: str | Path | None = None,
             checkpoint: Checkpoint | None = None) -> LoadedRun:
    """Load ``RUN/config.json`` + ``ckpt/latest.pt`` and re-read the scene.

    Args:
        run_dir: a run written by ``instgs train``.
        device: where to put the model.
        data: the scene folder, when it moved since training (checked against
            ``scene.json``).
        checkpoint: the run's checkpoint when the caller already read it.

    Raises:
        InputError: not a run folder, missing / unsafe / corrupt checkpoint, or a scene
            that is not the run's (each names the file and the fix).
    """
    from instgs.data import read_scene

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError("run folder not found", run_dir, "pass a folder written by "
                         "`instgs train`")
    cfg = read_run_config(run_dir)
    if data is not None:
        cfg = dataclasses.replace(cfg, data=Path(data))
    ckpt = checkpoint if checkpoint is not None else load_run_checkpoint(run_dir, cfg)
    model = scaffold_from(ckpt).to(device).eval()
    scene = read_scene(cfg.data, format=cfg.format, downscale=cfg.downscale,
                       images_dir=cfg.images_dir, test_every=cfg.test_every,
                       max_images=cfg.max_images)
    paths = RunPaths(run_dir)
    if data is not None and paths.scene.is_file():
        if read_json(paths.scene).get("image_names") != scene.image_names():
            raise InputError("this scene is not the one the run was trained on (its image "
                             "names differ from scene.json)", Path(data),
                             "pass the run's own scene folder")
    return LoadedRun(run_dir, paths, cfg, scene, model, ckpt, appearance_index(scene))
