"""``instgs prepare``: a folder of unposed photos -> a COLMAP scene that ``instgs train`` reads.

Structure from motion with pycolmap (COLMAP's library), in four steps; features and matches
are kept in ``SCENE/.sfm/`` so an interrupted run does not compute them again (mapping and
undistortion, a few seconds each, are redone):

1. SIFT features, one shared camera (``CameraMode.SINGLE``; instgs needs one image size);
2. matching chosen by image count: exhaustive up to ``exhaustive_max`` images, sequential
   (the ``sequential_overlap`` neighbours in name order, as a video gives them) above;
   ``--matcher spatial`` for photos with GPS priors;
3. incremental mapping; the largest model is kept;
4. undistortion to PINHOLE: ``SCENE/images/`` and ``SCENE/sparse/`` (``cameras``, ``images``,
   ``points3D``), plus optional box-filtered copies ``SCENE/images_<d>/``.

``SCENE/prepare_report.json`` (written last) records registered images, the ones mapping
left out, the mean reprojection error, the 3D points and the time of every step. Photos of
different sizes, no photos, unreadable files and photos that cannot be matched end in an
:class:`~instgs.core.checks.InputError` naming the files.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from instgs.core.artifacts import atomic_path, read_json, write_json
from instgs.core.checks import InputError
from instgs.core.lock import FolderLock

__all__ = ["PrepareConfig", "prepare", "REPORT_NAME", "check_photos"]

log = logging.getLogger(__name__)

REPORT_NAME = "prepare_report.json"
_SUFFIXES = {".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"}


@dataclass(frozen=True)
class PrepareConfig:
    """``instgs prepare`` settings."""

    matcher: Literal["auto", "exhaustive", "sequential", "spatial"] = "auto"
    """auto: exhaustive up to ``exhaustive_max`` images, else sequential."""
    exhaustive_max: int = 100
    """Largest image count matched exhaustively by ``auto``."""
    sequential_overlap: int = 20
    """Sequential matching: neighbours in name order matched with each image."""
    max_image_size: int = 1600
    """SIFT runs on images resized to at most this side (COLMAP default 3200)."""
    downscales: tuple[int, ...] = ()
    """Also write box-filtered copies images_<d>/ (e.g. 2 4 8)."""
    threads: int = -1
    """Threads for COLMAP (-1: all cores)."""
    min_registered: float = 0.5
    """Fail when mapping registers fewer than this fraction of the photos."""
    overwrite: bool = False
    """Redo every step (default: resume at the first missing one)."""
    progress: bool = True


@dataclass
class PrepareReport:
    """What :func:`prepare` produced (also ``SCENE/prepare_report.json``)."""

    scene: Path
    num_images: int
    registered: list[str]
    unregistered: list[str]
    mean_reprojection_error_px: float
    num_points3d: int
    matcher: str
    seconds: dict[str, float] = field(default_factory=dict)


def check_photos(folder: str | Path) -> tuple[list[Path], tuple[int, int]]:
    """The photos of a folder (sorted) and their one size.

    Raises:
        InputError: missing folder, no photos, unreadable files, or several sizes (the
            message names one file of each size).
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("photo folder not found", folder, "pass --images DIR with your photos")
    photos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _SUFFIXES)
    if not photos:
        raise InputError("no photos (.jpg, .jpeg, .png) in this folder", folder,
                         "pass the folder that holds the photos")
    sizes: dict[tuple[int, int], Path] = {}
    for p in photos:
        try:
            with Image.open(p) as im:
                im.verify()
            with Image.open(p) as im:
                sizes.setdefault(im.size, p)
        except (UnidentifiedImageError, OSError) as e:
            raise InputError(f"cannot read this photo ({type(e).__name__})", p,
                             "remove or replace the file") from e
    if len(sizes) > 1:
        shown = ", ".join(f"{p.name} is {w}x{h}" for (w, h), p in list(sizes.items())[:4])
        raise InputError(f"the photos have {len(sizes)} different sizes ({shown})", folder,
                         "instgs needs one image size per scene: resize or crop them to one "
                         "size, or split the folder")
    return photos, next(iter(sizes))


def _quiet_colmap() -> None:
    import pycolmap

    try:
        pycolmap.logging.minloglevel = 2  # warnings and errors only
    except AttributeError:  # pragma: no cover - older pycolmap
        pass


def _matcher(cfg: PrepareConfig, n: int) -> str:
    if cfg.matcher != "auto":
        return cfg.matcher
    return "exhaustive" if n <= cfg.exhaustive_max else "sequential"


def _features(db: Path, images: Path, cfg: PrepareConfig) -> None:
    import pycolmap

    eo = pycolmap.FeatureExtractionOptions()
    eo.num_threads = cfg.threads
    eo.max_image_size = cfg.max_image_size
    pycolmap.extract_features(db, images, camera_mode=pycolmap.CameraMode.SINGLE,
                              extraction_options=eo, device=pycolmap.Device.cpu)


def _match(db: Path, how: str, cfg: PrepareConfig) -> None:
    import pycolmap

    mo = pycolmap.FeatureMatchingOptions()
    mo.num_threads = cfg.threads
    if how == "exhaustive":
        pycolmap.match_exhaustive(db, matching_options=mo, device=pycolmap.Device.cpu)
    elif how == "sequential":
        po = pycolmap.SequentialPairingOptions()
        po.overlap = cfg.sequential_overlap
        pycolmap.match_sequential(db, matching_options=mo, pairing_options=po,
                                  device=pycolmap.Device.cpu)
    else:
        pycolmap.match_spatial(db, matching_options=mo, device=pycolmap.Device.cpu)


def _map(db: Path, images: Path, out: Path, cfg: PrepareConfig, names: list[str]):
    """The largest incremental-mapping model; InputError when none registers two images."""
    import pycolmap

    opts = pycolmap.IncrementalPipelineOptions()
    opts.num_threads = cfg.threads
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    models = pycolmap.incremental_mapping(db, images, out, options=opts)
    if not models:
        raise InputError("structure from motion registered no images: the photos could not "
                         f"be matched to each other ({len(names)} photos: "
                         f"{', '.join(names[:8])}{' ...' if len(names) > 8 else ''})", images,
                         "use overlapping photos of one scene (each part seen from several "
                         "positions), sharp and well lit")
    return max(models.values(), key=lambda r: r.num_reg_images())


def _undistort(model_dir: Path, images: Path, scene: Path) -> None:
    import pycolmap

    tmp = scene / ".sfm" / "undistorted"
    shutil.rmtree(tmp, ignore_errors=True)
    pycolmap.undistort_images(tmp, model_dir, images, output_type="COLMAP")
    for name in ("images", "sparse"):
        shutil.rmtree(scene / name, ignore_errors=True)
        shutil.move(str(tmp / name), str(scene / name))
    shutil.rmtree(tmp, ignore_errors=True)


def _downscale(scene: Path, factors: tuple[int, ...]) -> None:
    from PIL import Image

    for d in factors:
        out = scene / f"images_{d}"
        out.mkdir(exist_ok=True)
        for p in sorted((scene / "images").iterdir()):
            target = out / p.name
            if target.is_file():
                continue
            with Image.open(p) as im, atomic_path(target) as tmp:
                w, h = im.size
                im.resize((max(1, round(w / d)), max(1, round(h / d))), Image.BOX).save(
                    tmp, format=im.format or "PNG")


def prepare(images: str | Path, scene: str | Path, cfg: PrepareConfig | None = None
            ) -> PrepareReport:
    """Pose a folder of photos with pycolmap and write a COLMAP scene (module docstring).

    Args:
        images: folder of photos (one size; .jpg / .png).
        scene: output scene folder (created).
        cfg: :class:`PrepareConfig`.

    Returns:
        :class:`PrepareReport`.

    Raises:
        InputError: no / unreadable / mixed-size photos; photos that cannot be matched;
            mapping registering fewer than ``cfg.min_registered`` of them (the message lists
            the left-out ones); the scene folder in use by another process.
    """
    cfg = cfg or PrepareConfig()
    images, scene = Path(images).resolve(), Path(scene)
    photos, size = check_photos(images)
    names = [p.name for p in photos]
    with FolderLock(scene, "instgs prepare"):
        report = scene / REPORT_NAME
        if report.is_file() and not cfg.overwrite:
            log.info("prepare: %s is complete (delete it or pass --overwrite to redo)", report)
            return PrepareReport(scene=scene, **{k: v for k, v in read_json(report).items()
                                                 if k != "scene"})
        return _run_steps(images, scene, photos, names, cfg)


def _run_steps(images: Path, scene: Path, photos: list[Path], names: list[str],
               cfg: PrepareConfig) -> PrepareReport:
    _quiet_colmap()
    sfm = scene / ".sfm"
    if cfg.overwrite:
        shutil.rmtree(sfm, ignore_errors=True)
    sfm.mkdir(parents=True, exist_ok=True)
    db, done = sfm / "database.db", sfm / "steps.json"
    steps = read_json(done) if done.is_file() else {}
    how = _matcher(cfg, len(photos))
    secs: dict[str, float] = {}
    for step, fn in (("features", lambda: _features(db, images, cfg)),
                     ("matching", lambda: _match(db, how, cfg))):
        if step in steps:
            continue
        if step == "features":
            db.unlink(missing_ok=True)
        t0 = time.perf_counter()
        log.info("prepare: %s (%d photos%s)", step, len(photos),
                 f", {how}" if step == "matching" else "")
        fn()
        secs[step] = steps[step] = time.perf_counter() - t0
        write_json(done, steps)
    t0 = time.perf_counter()
    log.info("prepare: incremental mapping")
    model = _map(db, images, sfm / "models", cfg, names)
    secs["mapping"] = time.perf_counter() - t0
    registered = sorted(img.name for img in model.images.values())
    left = [n for n in names if n not in set(registered)]
    if len(registered) < cfg.min_registered * len(names):
        raise InputError(f"structure from motion registered only {len(registered)} of "
                         f"{len(names)} photos; left out: {', '.join(left)}", images,
                         "add overlapping photos between the parts, or remove the photos of "
                         "other scenes")
    if left:
        log.warning("prepare: %d photo(s) could not be posed and are left out: %s", len(left),
                    ", ".join(left))
    model_dir = sfm / "best"
    shutil.rmtree(model_dir, ignore_errors=True)
    model_dir.mkdir()
    model.write(model_dir)
    t0 = time.perf_counter()
    _undistort(model_dir, images, scene)
    _downscale(scene, cfg.downscales)
    secs["undistort"] = time.perf_counter() - t0
    secs = {**{k: round(v, 2) for k, v in steps.items()}, **{k: round(v, 2) for k, v in
                                                             secs.items()}}
    rep = PrepareReport(scene, len(names), registered, left,
                        float(model.compute_mean_reprojection_error()),
                        int(model.num_points3D()), how, secs)
    write_json(scene / REPORT_NAME, {k: v for k, v in rep.__dict__.items()})
    log.info("prepare: %d of %d photos registered, mean reprojection error %.2f px, %d "
             "points (%s)", len(registered), len(names), rep.mean_reprojection_error_px,
             rep.num_points3d, ", ".join(f"{k} {v:.0f}s" for k, v in secs.items()))
    return rep
