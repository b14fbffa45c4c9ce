"""Pictures of a run or of a 3DGS file: ``instgs render RUN|PLY --out DIR``.

Modes (each writes ``<out>/<mode>/<view stem>.png``):

* ``rgb``: for a run, the exact view-dependent Scaffold render; for a PLY, its Gaussians
  with SH evaluated per view.
* ``instances``: every pixel takes the instance of its *top contributor* (the Gaussian with
  the largest blending weight, :attr:`RenderOutput.top_ids`), in the palette shared with the
  viewer (:func:`instgs.render.palette.instance_colors`); no contributor = black. Top
  contributors keep object borders sharp where blended colours would mix them.
* ``relevancy``: every Gaussian coloured by its instance's best score for ``--query``
  (turbo heat map from the lowest to the highest ranked score; unranked instances dark grey),
  alpha-blended.
* ``depth``: expected depth, turbo map over the view's range.

``--video`` adds ``<out>/<mode>.mp4`` along a smooth path through the training cameras
(Catmull-Rom positions, spherical interpolation of rotations) through imageio-ffmpeg.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from instgs.core.cameras import Cameras
from instgs.core.checks import InputError
from instgs.core.gaussians import Gaussians
from instgs.render.palette import heatmap, instance_colors

from .splats import Splats

__all__ = ["PicturesConfig", "render_pictures", "trajectory"]

log = logging.getLogger(__name__)

Mode = Literal["rgb", "instances", "relevancy", "depth"]


@dataclass(frozen=True)
class PicturesConfig:
    """``instgs render`` settings."""

    views: Literal["train", "test", "all"] = "test"
    """Which of the scene's views to render (test falls back to train when there is none)."""
    mode: Mode = "rgb"
    """rgb | instances | relevancy (needs --query) | depth."""
    query: tuple[str, ...] = ()
    """Texts for the relevancy mode."""
    text_features: Path | None = None
    """JSON {name: [512 floats]} for --query offline (default: the scene's, else CLIP)."""
    video: bool = False
    """Also write an MP4 along the training trajectory (imageio-ffmpeg)."""
    video_frames: int = 120
    """Frames of the video."""
    fps: int = 30
    """Video frame rate."""
    backend: Literal["auto", "cpu", "gsplat", "torch"] = "auto"
    """Rasterizer backend."""


class _Source:
    """What is drawn: a loaded run (Scaffold decoding per view) or static splats."""

    def __init__(self, run=None, splats: Splats | None = None, instances=None):
        self.run, self.splats = run, splats
        self.child_labels = None
        if run is not None and instances is not None:
            from instgs.segment.views import child_labels

            self.child_labels = child_labels(run, instances)

    def gaussians(self, cams: Cameras, i: int, image_id: int | None
                  ) -> tuple[Gaussians, Tensor]:
        """(Gaussians of camera i, instance id per Gaussian (-1 none)); ``image_id`` is the
        appearance-embedding row of a run (None for cameras off the scene's views)."""
        if self.splats is not None:
            return self.splats.gaussians(cams.centers[i]), self.splats.instance_ids.long()
        ng = self.run.model.decode(cams.viewmats[i], cams.Ks[i], cams.width, cams.height,
                                   image_id=image_id)
        labels = (self.child_labels[ng.child_ids] if self.child_labels is not None
                  else torch.full((len(ng.gaussians),), -1, dtype=torch.long))
        return ng.gaussians, labels


@torch.no_grad()
def _frame(src: _Source, cams: Cameras, i: int, cfg: PicturesConfig,
           scores: dict[int, float] | None, image_id: int | None = None) -> np.ndarray:
    """[H, W, 3] uint8 picture of camera i."""
    from instgs.render import render

    g, labels = src.gaussians(cams, i, image_id)
    cam = cams[i]
    if cfg.mode == "instances":
        out = render(g, cam, return_top_ids=True, backend=cfg.backend)
        top = out.top_ids[0]
        ids = torch.where(top >= 0, labels[top.clamp(min=0)], torch.full_like(top, -2))
        img = instance_colors(ids.numpy())
        img[ids.numpy() == -2] = 0.0
    elif cfg.mode == "relevancy":
        ids = labels.numpy()
        vals = np.array([scores.get(int(j), np.nan) if j >= 0 else np.nan for j in ids])
        ranked = np.array(list(scores.values())) if scores else np.zeros(1)
        col = heatmap(vals, float(np.nanmin(ranked)), float(np.nanmax(ranked)))
        col[~np.isfinite(vals)] = 0.15
        g = Gaussians(g.means, g.quats, g.scales, g.opacities, torch.from_numpy(col))
        img = render(g, cam, backend=cfg.backend).rgb[0].numpy()
    elif cfg.mode == "depth":
        out = render(g, cam, backend=cfg.backend)
        d = out.depth[0, ..., 0].numpy()
        on = out.alpha[0, ..., 0].numpy() > 0.5
        img = heatmap(np.where(on, d, np.nan), *(np.percentile(d[on], [1, 99]) if on.any()
                                                 else (0.0, 1.0)))
    else:
        img = render(g, cam, backend=cfg.backend).rgb[0].clamp(0, 1).numpy()
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _relevancy_scores(run_dir: Path | None, cfg: PicturesConfig) -> dict[int, float] | None:
    if cfg.mode != "relevancy":
        return None
    if not cfg.query or run_dir is None:
        raise InputError("--mode relevancy needs --query TEXT and a run with language "
                         "features", run_dir, "pass --query, and render a run folder")
    from instgs.language.query import query_instances

    from .stage import run_text_features

    tf = cfg.text_features or run_text_features(run_dir)
    res = query_instances(run_dir, list(cfg.query), text_features=tf, top_k=0)
    best = np.where(np.isfinite(res.scores), res.scores, -np.inf).max(axis=0)
    return {i: float(s) for i, s in enumerate(best) if np.isfinite(s)}


def _view_ids(scene, which: str) -> list[int]:
    if which == "all":
        return list(range(len(scene)))
    ids = list(scene.test_ids if which == "test" else scene.train_ids)
    if not ids and which == "test":
        log.warning("the scene has no held-out view; rendering the training views")
        ids = list(scene.train_ids)
    return ids


def render_pictures(source: str | Path, out: str | Path, cfg: PicturesConfig | None = None,
                    cameras: str | Path | None = None) -> list[Path]:
    """``instgs render``: PNGs (and optionally an MP4) of a run or a 3DGS PLY.

    Args:
        source: a run folder, or a 3DGS ``.ply`` (ours or another trainer's).
        out: output folder (``<out>/<mode>/<stem>.png``, ``<out>/<mode>.mp4``).
        cfg: :class:`PicturesConfig`.
        cameras: for a PLY: the run or scene folder whose cameras to use (default: the run
            the PLY was exported into, ``RUN/exports/...``).

    Returns:
        The written files.

    Raises:
        InputError: missing / bad source (a PLY missing required properties is named),
            no cameras for a PLY, relevancy without a query or language features, instances
            mode without instance labels, an unwritable ``out``.
    """
    from instgs.core.artifacts import atomic_path

    cfg = cfg or PicturesConfig()
    src, scene, run_dir = _open_source(Path(source), cameras, cfg)
    scores = _relevancy_scores(run_dir, cfg)
    cams = scene.cameras
    folder = Path(out) / cfg.mode
    written = []
    for i in _view_ids(scene, cfg.views):
        app = src.run.app_index.get(i) if src.run is not None else None
        img = _frame(src, cams, i, cfg, scores, app)
        path = folder / f"{Path(scene.image_paths[i]).stem}.png"
        written.append(_save_png(path, img, atomic_path))
    if cfg.video:
        written.append(_video(src, cams, scene, cfg, scores, Path(out) / f"{cfg.mode}.mp4"))
    log.info("instgs render: %d file(s) in %s", len(written), out)
    return written


def _save_png(path: Path, img: np.ndarray, atomic_path) -> Path:
    from PIL import Image

    try:
        with atomic_path(path) as tmp:
            Image.fromarray(img).save(tmp, format="PNG")
    except OSError as e:
        raise InputError(f"cannot write ({e.strerror or e})", path,
                         "pass a writable --out folder") from e
    return path


def _open_source(source: Path, cameras: str | Path | None, cfg: PicturesConfig):
    """(_Source, SceneData for the cameras, run folder or None)."""
    from instgs.data import read_scene
    from instgs.run import RunPaths, load_instances, load_run

    if source.suffix.lower() == ".ply":
        from .ply import read_ply

        splats = read_ply(source)
        cam_src = Path(cameras) if cameras is not None else _run_above(source)
        if cam_src is None:
            raise InputError("no cameras for this PLY", source, "pass --cameras RUN_OR_SCENE")
        if cfg.mode == "instances" and bool((splats.instance_ids < 0).all()):
            raise InputError("this PLY has no instance_id property", source,
                             "export it from a segmented run, or use --mode rgb")
        if RunPaths(cam_src).config.is_file():
            return _Source(splats=splats), load_run(cam_src).scene, cam_src
        return _Source(splats=splats), read_scene(cam_src), None
    if not source.is_dir():
        raise InputError("not a run folder or a .ply file", source,
                         "pass a run folder written by `instgs train` or a 3DGS .ply")
    run = load_run(source)
    inst = load_instances(source) if cfg.mode in ("instances", "relevancy") else None
    return _Source(run=run, instances=inst), run.scene, source


def _run_above(ply: Path) -> Path | None:
    from instgs.run import RunPaths

    for parent in ply.resolve().parents:
        if RunPaths(parent).config.is_file():
            return parent
    return None


def trajectory(cams: Cameras, ids: list[int], frames: int) -> Cameras:
    """A smooth camera path through cameras ``ids`` (in order): Catmull-Rom through their
    centres and spherical interpolation of their rotations, ``frames`` cameras with the
    first camera's intrinsics.

    Raises:
        InputError: fewer than 2 cameras or frames.
    """
    from instgs.core.cameras import invert_rigid

    if len(ids) < 2 or frames < 2:
        raise InputError("a trajectory needs at least 2 cameras and 2 frames")
    c2w = cams.c2w[ids].double()
    pos, rot = c2w[:, :3, 3], c2w[:, :3, :3]
    t = np.linspace(0, len(ids) - 1, frames)
    out = torch.eye(4, dtype=torch.float64).repeat(frames, 1, 1)
    for f, tf in enumerate(t):
        j = min(int(tf), len(ids) - 2)
        u = tf - j
        p = [pos[max(j - 1, 0)], pos[j], pos[j + 1], pos[min(j + 2, len(ids) - 1)]]
        out[f, :3, 3] = 0.5 * ((2 * p[1]) + (-p[0] + p[2]) * u + (2 * p[0] - 5 * p[1] + 4 * p[2]
                                                                    - p[3]) * u ** 2
                               + (-p[0] + 3 * p[1] - 3 * p[2] + p[3]) * u ** 3)
        out[f, :3, :3] = _slerp(rot[j], rot[j + 1], u)
    vm = invert_rigid(out).float()
    return Cameras(vm, cams.Ks[ids[:1]].repeat(frames, 1, 1), cams.width, cams.height)


def _slerp(r0: Tensor, r1: Tensor, u: float) -> Tensor:
    """Rotation matrix at fraction ``u`` between r0 and r1 (axis-angle of r0^T r1)."""
    rel = r0.T @ r1
    angle = float(np.arccos(np.clip((torch.trace(rel).item() - 1) / 2, -1.0, 1.0)))
    if angle < 1e-8:
        return r0
    axis = torch.tensor([rel[2, 1] - rel[1, 2], rel[0, 2] - rel[2, 0], rel[1, 0] - rel[0, 1]],
                        dtype=r0.dtype) / (2 * np.sin(angle))
    kx = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]],
                      dtype=r0.dtype)
    a = angle * u
    return r0 @ (torch.eye(3, dtype=r0.dtype) + np.sin(a) * kx + (1 - np.cos(a)) * kx @ kx)


def _video(src: _Source, cams: Cameras, scene, cfg: PicturesConfig, scores,
           path: Path) -> Path:
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401 - the writer backend
    except ImportError as e:
        raise InputError("--video needs imageio-ffmpeg", path,
                         "pip install imageio-ffmpeg (or drop --video)") from e
    from tqdm import tqdm

    path_cams = trajectory(cams, list(scene.train_ids), cfg.video_frames)
    # ffmpeg picks the container from the suffix: the partial file keeps ".mp4"
    tmp = path.with_name(f".{path.stem}.partial.mp4")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with imageio.get_writer(str(tmp), format="FFMPEG", fps=cfg.fps, codec="libx264",
                                macro_block_size=2) as w:
            for f in tqdm(range(cfg.video_frames), desc="video", leave=False):
                w.append_data(_frame(src, path_cams, f, cfg, scores))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
