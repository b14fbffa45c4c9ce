"""``make_synthetic_scene`` / ``SyntheticSceneConfig``: write the synthetic scene folder
(layout: see :mod:`instgs.data.synthetic`)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from instgs.core.artifacts import write_json
from instgs.core.checks import InputError

from .cameras import camera_poses
from .classes import CLASSES, NYU40_NAMES, text_feature, text_feature_table
from .files import _dump, _readme, _transforms_json, _View, _write_checksums, _write_ply
from .masks import LEVEL_NAMES, build_masks
from .render import render_view, sample_points
from .scene import SyntheticScene, build_scene

FORMAT_VERSION = 1


@dataclass(frozen=True)
class SyntheticSceneConfig:
    """Generate the embedded synthetic table scene (no download, no model weights)."""

    out_dir: Path = Path("data/synthetic_table")
    """Scene folder to write (created; its parent must be writable)."""
    num_views: int = 24
    """Training views on a ring around the table (stems 00000, 00001, ...)."""
    num_test_views: int = 4
    """Held-out views between the ring positions (stems test_000, ...); 0 = none."""
    width: int = 160
    """Image width in pixels (focal length scales with it: f = 1170 * width / 1296)."""
    height: int = 120
    """Image height in pixels."""
    seed: int = 0
    """Scene seed: object kinds, sizes, placement, textures, camera jitter, feature noise."""
    num_objects: int = 5
    """Objects on the table (1..8; boxes, balls and cans)."""
    num_points: int = 30000
    """Surface points in points3d.ply (fixed anchors); a few fewer if some are never seen."""
    mask_noise: float = 0.0
    """Per-mask probability of a 1 px boundary erosion and per-view probability of one
    object merge in the large level (0 = exact masks)."""
    feature_cos: float = 0.85
    """Expected cosine between an oracle mask feature and its class's text vector."""
    min_mask_px: int = 30
    """Masks smaller than this many pixels are dropped (the ScanNet tool uses 150 px at
    320x240)."""
    image_format: Literal["png", "jpg"] = "png"
    """Colour image format: png (lossless; instgs readers add the extension) or jpg
    (quality 95, what the OpenGaussian/InstanceGaussian readers expect for color/<stem>)."""
    overwrite: bool = False
    """Regenerate even if out_dir already holds a complete scene."""

    def run(self) -> Path:
        """Generate the scene; returns the scene folder."""
        return make_synthetic_scene(
            self.out_dir, num_views=self.num_views, num_test_views=self.num_test_views,
            width=self.width, height=self.height, seed=self.seed,
            num_objects=self.num_objects, num_points=self.num_points,
            mask_noise=self.mask_noise, feature_cos=self.feature_cos,
            min_mask_px=self.min_mask_px, image_format=self.image_format,
            overwrite=self.overwrite)


def _check_params(p: dict) -> None:
    def bad(msg: str, fix: str) -> None:
        raise InputError(msg, None, fix)

    if p["num_views"] < 1:
        bad(f"num_views must be >= 1, got {p['num_views']}", "pass at least one view")
    if p["num_test_views"] < 0:
        bad(f"num_test_views must be >= 0, got {p['num_test_views']}", "pass 0 or more")
    if p["width"] < 8 or p["height"] < 8:
        bad(f"image size must be at least 8x8 pixels, got {p['width']}x{p['height']}",
            "pass width and height >= 8")
    if not 1 <= p["num_objects"] <= 8:
        bad(f"num_objects must be in 1..8, got {p['num_objects']}", "pass 1..8 objects")
    if p["num_points"] < 100:
        bad(f"num_points must be >= 100, got {p['num_points']}", "pass e.g. 30000")
    if not 0.0 <= p["mask_noise"] <= 1.0:
        bad(f"mask_noise must be in [0, 1], got {p['mask_noise']}", "pass a probability")
    if not 0.0 < p["feature_cos"] <= 1.0:
        bad(f"feature_cos must be in (0, 1], got {p['feature_cos']}", "pass e.g. 0.85")
    if p["min_mask_px"] < 1:
        bad(f"min_mask_px must be >= 1, got {p['min_mask_px']}", "pass e.g. 30")
    if p["image_format"] not in ("jpg", "png"):
        bad(f"image_format must be 'jpg' or 'png', got {p['image_format']!r}",
            "pass image_format='jpg' or 'png'")


def read_marker(out_dir: str | Path) -> dict | None:
    """The ``scene_complete.json`` of a finished synthetic scene, or None."""
    path = Path(out_dir) / "scene_complete.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return None


def make_synthetic_scene(out_dir: str | Path, *, num_views: int = 24, width: int = 160,
                         height: int = 120, seed: int = 0, num_objects: int = 5,
                         overwrite: bool = False, num_test_views: int = 4,
                         num_points: int = 30000, mask_noise: float = 0.0,
                         feature_cos: float = 0.85, min_mask_px: int = 30,
                         image_format: Literal["png", "jpg"] = "png",
                         progress: bool = True) -> Path:
    """Write the synthetic table scene to ``out_dir`` (layout: see the module docstring).

    Idempotent: when ``out_dir/scene_complete.json`` exists with the same parameters and
    ``overwrite`` is False, returns at once. The scene is written into a temporary sibling
    folder and moved into place at the end, so an interrupted run leaves no half scene.

    Args:
        out_dir: scene folder (the folder ``read_scene`` takes).
        num_views: train views (>= 1). num_test_views: held-out views (>= 0).
        width, height: image size in pixels (>= 8).
        seed: scene seed (geometry, textures, camera jitter, feature noise, mask errors).
        num_objects: 1..8 objects on the table.
        overwrite: regenerate even if a complete scene is there (also when the parameters
            differ).
        num_points: surface points in ``points3d.ply`` (>= 100).
        mask_noise: mask error probability in [0, 1] (see :func:`build_masks`).
        feature_cos: expected cosine of oracle rows to their text vector, in (0, 1].
        min_mask_px: smallest mask kept, pixels.
        image_format: ``"png"`` (lossless) or ``"jpg"`` (quality 95; the research
            readers of this layout append ``.jpg`` to ``file_path``).
        progress: show a tqdm bar over the views.

    Returns:
        ``Path(out_dir)``.

    Raises:
        InputError: a parameter is out of range; ``out_dir`` holds a complete scene made
            with other parameters and ``overwrite`` is False; ``out_dir`` is a non-empty
            folder that is not a synthetic scene (it is never deleted).
    """
    out_dir = Path(out_dir)
    params = dict(num_views=int(num_views), num_test_views=int(num_test_views),
                  width=int(width), height=int(height), seed=int(seed),
                  num_objects=int(num_objects), num_points=int(num_points),
                  mask_noise=float(mask_noise), feature_cos=float(feature_cos),
                  min_mask_px=int(min_mask_px), image_format=str(image_format),
                  format_version=FORMAT_VERSION)
    _check_params(params)
    if _existing_scene_is_current(out_dir, params, overwrite):
        return out_dir

    t0 = time.time()
    timings = {}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        scene = build_scene(seed, num_objects)
        train_c2w, test_c2w = camera_poses(num_views, num_test_views, seed)
        for sub in ("color", "gt/instance", "gt/semantic", "gt/valid", "language_features",
                    "language_features_clean"):
            (tmp / sub).mkdir(parents=True, exist_ok=True)

        t = time.time()
        nyu_of_inst = _nyu_of_inst(scene)
        views, meta_noisy, meta_clean, cos_log = _write_views(
            tmp, scene, train_c2w, test_c2w, nyu_of_inst, width=width, height=height,
            seed=seed, min_mask_px=min_mask_px, feature_cos=feature_cos,
            mask_noise=mask_noise, image_format=image_format, progress=progress)
        timings["render+masks+write"] = time.time() - t
        train = [v for v in views if v.split == "train"]
        test = [v for v in views if v.split == "test"]

        t = time.time()
        prng = np.random.default_rng([seed, 23])
        pts = sample_points(scene, num_points, train_c2w, width, height, prng)
        timings["points"] = time.time() - t
        insts = _write_points_and_gt(tmp, scene, pts, nyu_of_inst)
        _write_tables(tmp, width, height, train, test, meta_noisy, meta_clean)

        stats = _generation_stats(params, train, test, pts, insts, cos_log, timings)
        stats["timings_s"]["total"] = round(time.time() - t0, 3)
        _dump(tmp / "generation_stats.json", stats)
        (tmp / "README.md").write_text(_readme(params, scene, stats))
        _write_checksums(tmp)
        write_json(tmp / "scene_complete.json",
                   dict(generator="instgs.data.synthetic", params=params,
                        n_vertices=int(len(pts["xyz"])), n_train=len(train), n_test=len(test)))
        _move_into_place(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _existing_scene_is_current(out_dir: Path, params: dict, overwrite: bool) -> bool:
    """True when ``out_dir`` already holds a complete scene made with ``params`` (and
    ``overwrite`` is False); False when the scene is to be (re)generated.

    Raises:
        InputError: ``out_dir`` is not a folder; it holds a scene made with other parameters
            and ``overwrite`` is False; it is a non-empty folder that is not a synthetic scene.
    """
    marker = read_marker(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a folder", out_dir, "pass a folder path")
    if marker is not None and not overwrite:
        if marker.get("params") == params and all(
                (out_dir / f).exists() for f in ("points3d.ply", "transforms_train.json",
                                                 "color", "language_features")):
            return True
        if marker.get("params") != params:
            raise InputError(
                f"holds a synthetic scene made with other parameters ({marker.get('params')})",
                out_dir, "pass overwrite=True (--overwrite) to regenerate it, or another "
                "out_dir")
        # our scene with the same parameters, damaged: make it again
    if out_dir.is_dir() and any(out_dir.iterdir()) and marker is None:
        raise InputError("is a non-empty folder that is not a synthetic scene", out_dir,
                         "pass an empty or new folder; instgs never deletes foreign data")
    return False


def _nyu_of_inst(scene: SyntheticScene) -> np.ndarray:
    """[I + 1] uint8 lookup: instance id -> NYU40 id (0 for the background id 0)."""
    nyu_of_inst = np.zeros(len(scene.instances) + 1, np.uint8)
    for i in scene.instances:
        nyu_of_inst[i.inst] = CLASSES[i.cls]
    return nyu_of_inst


def _write_views(tmp: Path, scene: SyntheticScene, train_c2w: list[np.ndarray],
                 test_c2w: list[np.ndarray], nyu_of_inst: np.ndarray, *, width: int,
                 height: int, seed: int, min_mask_px: int, feature_cos: float,
                 mask_noise: float, image_format: str, progress: bool
                 ) -> tuple[list[_View], dict, dict, list[float]]:
    """Render every train and test view and write its images, GT maps and masks to ``tmp``.

    Returns:
        (views, per-stem noisy mask meta, per-stem clean mask meta, cosine of every noisy
        feature row to its class's text vector).
    """
    from tqdm import tqdm

    views: list[_View] = []
    jobs = ([("train", k, f"{k:05d}", c) for k, c in enumerate(train_c2w)]
            + [("test", k, f"test_{k:03d}", c) for k, c in enumerate(test_c2w)])
    meta_noisy, meta_clean = {}, {}
    cos_log = []
    class_vec = {nyu: text_feature(name) for name, nyu in CLASSES.items()}
    cls_of_inst = {i.inst: i.cls for i in scene.instances}
    ext = "jpg" if image_format == "jpg" else "png"
    for split, k, stem, c2w in tqdm(jobs, desc="synthetic scene", unit="view",
                                    disable=not progress, leave=False):
        r = render_view(scene, c2w, width, height)
        valid = r["inst"] > 0
        v = _View(stem, split, k, c2w)
        v.stats = dict(valid_fraction=float(valid.mean()),
                       median_depth=float(np.median(r["depth"][valid])) if valid.any() else 0.0)
        _write_view_images(tmp, stem, r, nyu_of_inst, ext)
        seed_v = seed if split == "train" else seed + 1000
        mrng = np.random.default_rng([seed_v, 11, k])
        (seg, feats, mn), (cseg, cfeats, mc) = build_masks(
            r["inst"], r["med"], r["small"], cls_of_inst, mrng, min_px=min_mask_px,
            feature_cos=feature_cos, mask_noise=mask_noise)
        np.save(tmp / "language_features" / f"{stem}_s.npy", seg)
        np.save(tmp / "language_features" / f"{stem}_f.npy", feats)
        np.save(tmp / "language_features_clean" / f"{stem}_s.npy", cseg)
        np.save(tmp / "language_features_clean" / f"{stem}_f.npy", cfeats)
        meta_noisy[stem], meta_clean[stem] = mn, mc
        v.stats["n_masks"] = [len(lv) for lv in mn["levels"]]
        f32 = feats.astype(np.float32)
        for row, m in zip(f32, [m for lv in mn["levels"] for m in lv]):
            cos_log.append(float(row @ class_vec[m[1]]))
        views.append(v)
    return views, meta_noisy, meta_clean, cos_log


def _write_view_images(tmp: Path, stem: str, r: dict, nyu_of_inst: np.ndarray,
                       ext: str) -> None:
    """The colour image and the GT instance / semantic / valid PNGs of one rendered view."""
    from PIL import Image

    valid = r["inst"] > 0
    img = Image.fromarray(r["rgb"])
    if ext == "jpg":
        img.save(tmp / "color" / f"{stem}.jpg", quality=95)
    else:
        img.save(tmp / "color" / f"{stem}.png")
    Image.fromarray(r["inst"].astype(np.uint16)).save(tmp / "gt/instance" / f"{stem}.png")
    Image.fromarray(nyu_of_inst[r["inst"]]).save(tmp / "gt/semantic" / f"{stem}.png")
    Image.fromarray((valid * 255).astype(np.uint8)).save(
        tmp / "gt/valid" / f"{stem}.png", optimize=True)


def _write_points_and_gt(tmp: Path, scene: SyntheticScene, pts: dict,
                         nyu_of_inst: np.ndarray) -> dict:
    """``points3d.ply``, the per-vertex GT and the GT tables; returns the instances table."""
    _write_ply(tmp / "points3d.ply", pts["xyz"], pts["rgb"])
    np.save(tmp / "gt/instance_per_vertex.npy", pts["inst"].astype(np.int32))
    np.save(tmp / "gt/nyu40_per_vertex.npy",
            nyu_of_inst[pts["inst"]].astype(np.int32))
    insts = {}
    for i in scene.instances:
        insts[i.inst] = {"nyu40": CLASSES[i.cls], "nyu40_name": NYU40_NAMES[CLASSES[i.cls]],
                         "text_feature_name": i.cls,
                         "n_vertices": int((pts["inst"] == i.inst).sum()),
                         "texture": i.texture["kind"]}
    _dump(tmp / "gt/instances.json", insts)
    _dump(tmp / "gt/nyu40_text_feature_names.json",
          {"nyu40_to_text_feature_name": {str(c): n for n, c in CLASSES.items()},
           "missing_names_mapped_to_otherfurniture": []})
    return insts


def _write_tables(tmp: Path, width: int, height: int, train: list[_View], test: list[_View],
                  meta_noisy: dict, meta_clean: dict) -> None:
    """``text_features.json``, the ``transforms_*.json`` files and both ``masks_meta.json``."""
    _dump(tmp / "text_features.json", text_feature_table(), compact=True)
    for split, vs in (("train", train), ("test", test)):
        if not vs:
            continue
        for conv, suffix in (("opengl", ""), ("opencv", "_opencv")):
            _dump(tmp / f"transforms_{split}{suffix}.json",
                  _transforms_json(width, height, vs, conv))
    _dump(tmp / "language_features/masks_meta.json",
          {"row_format": "[mask id (= row of _f.npy), nyu40 id, [GT instance ids], "
                         "tag (gt|part|merge), pixels]",
           "level_order": list(LEVEL_NAMES), "views": meta_noisy}, compact=True)
    _dump(tmp / "language_features_clean/masks_meta.json",
          {"row_format": "[mask id, nyu40 id, [GT instance id], 'gt', pixels]",
           "level_order": list(LEVEL_NAMES), "views": meta_clean}, compact=True)


def _generation_stats(params: dict, train: list[_View], test: list[_View], pts: dict,
                      insts: dict, cos_log: list[float], timings: dict) -> dict:
    """The ``generation_stats.json`` document (the caller adds ``timings_s["total"]``)."""
    nm = np.array([v.stats["n_masks"] for v in train])
    vf = np.array([v.stats["valid_fraction"] for v in train])
    return dict(
        generator="instgs.data.synthetic", params=params,
        n_train=len(train), n_test=len(test), n_vertices=int(len(pts["xyz"])),
        vertices_per_instance={str(k): v["n_vertices"] for k, v in insts.items()},
        vertices_seen_by_train_views=dict(
            ge1=float((pts["n_views_seen"] >= 1).mean()),
            ge2=float((pts["n_views_seen"] >= 2).mean()),
            ge3=float((pts["n_views_seen"] >= 3).mean())),
        valid_fraction=dict(mean=float(vf.mean()), min=float(vf.min()), max=float(vf.max())),
        masks_per_view_mean=dict(zip(LEVEL_NAMES, [float(x) for x in nm.mean(0)])),
        feature_cos_to_text=dict(mean=float(np.mean(cos_log)) if cos_log else None,
                                 std=float(np.std(cos_log)) if cos_log else None),
        valid_fraction_per_view=dict(train=[round(v.stats["valid_fraction"], 4) for v in train],
                                     test=[round(v.stats["valid_fraction"], 4) for v in test]),
        timings_s={k: round(v, 3) for k, v in timings.items()},
    )


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` folder to ``out_dir``, replacing our own previous output only."""
    if out_dir.exists():
        if read_marker(out_dir) is None and any(out_dir.iterdir()):
            raise InputError("became a non-empty foreign folder during generation",
                             out_dir, "pass an empty or new folder")
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
