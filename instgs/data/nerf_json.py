"""``transforms.json`` reader (instant-ngp / nerfstudio / Blender NeRF-synthetic).

``transform_matrix`` is camera-to-world. instant-ngp, nerfstudio and Blender store it with
OpenGL camera axes (x right, y up, z back); instgs converts to OpenCV by negating the
camera y and z columns (``instgs.core.cameras.opengl_to_opencv``).

Ignored on purpose (documented in docs/conventions.md): instant-ngp's ``aabb_scale``,
``scale``, ``offset`` (they only place the scene in instant-ngp's unit cube; instgs keeps
world units as given) and nerfstudio's ``applied_transform`` / ``applied_scale`` (already
baked into the matrices).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np

from instgs.core.artifacts import read_json
from instgs.core.checks import InputError

from . import _images
from .ply import read_ply_points
from .types import Frame, SceneData, build_scene

__all__ = ["read_nerf", "find_transforms", "parse_transforms"]

_OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
_POINT_FILES = ("points3d.ply", "points3D.ply", "sparse_pc.ply")


def find_transforms(root: Path) -> tuple[Path, Path | None] | None:
    """(main json, test json or None): ``transforms_train.json`` (+ ``transforms_test.json``)
    when present, else ``transforms.json``; None when neither exists."""
    train = root / "transforms_train.json"
    if train.is_file():
        test = root / "transforms_test.json"
        return train, (test if test.is_file() else None)
    single = root / "transforms.json"
    if single.is_file():
        return single, None
    return None


def _resolve_convention(meta: dict, convention: str, path: Path) -> str:
    if convention in ("opengl", "opencv"):
        return convention
    if convention != "auto":
        raise InputError(f"unknown convention {convention!r}; choose opengl, opencv or auto")
    declared = str(meta.get("camera_convention", meta.get("convention", ""))).lower()
    return "opencv" if "opencv" in declared else "opengl"


def parse_transforms(path: Path, *, convention: Literal["opengl", "opencv"],
                     images_dir: str | None = None, downscale: int = 1,
                     is_test: bool | None = None) -> list[Frame]:
    """Parse one transforms json into frames with OpenCV c2w and pixel intrinsics.

    Intrinsics: per-frame keys override global ones: ``fl_x, fl_y, cx, cy, w, h`` (pixels),
    or ``camera_angle_x`` (+ optional ``camera_angle_y``) Blender-style with
    ``fl = 0.5 w / tan(0.5 angle)``; missing ``cx, cy`` default to the image centre; missing
    ``w, h`` are read from the first image. Distortion ``k1, k2, k3, p1, p2`` (OpenCV).

    Raises:
        InputError: bad json, no frames, a frame without ``transform_matrix`` or with NaN,
            missing image, unsupported camera model (fisheye / equirectangular).
    """
    meta = read_json(path)
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
        raise InputError("no 'frames' list in the json", path,
                         "write a transforms.json with a 'frames' list")
    model = str(meta.get("camera_model", "OPENCV")).upper()
    if model not in ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        raise InputError(f"camera_model {model} is not supported (pinhole / OPENCV only)", path,
                         "undistort the images into a pinhole camera first")
    base = path.parent
    frames: list[Frame] = []
    for idx, fr in enumerate(meta["frames"]):
        label = f"#{idx} ({fr.get('file_path', '?')})" if isinstance(fr, dict) else f"#{idx}"
        if not isinstance(fr, dict) or "transform_matrix" not in fr or "file_path" not in fr:
            raise InputError(f"frame {label} lacks file_path or transform_matrix", path,
                             "every frame needs both keys")
        try:
            c2w = np.asarray(fr["transform_matrix"], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InputError(f"frame {label}: transform_matrix is not a 4x4 number array",
                             path, "write a 4x4 camera-to-world matrix") from e
        if c2w.shape == (3, 4):
            c2w = np.vstack([c2w, [0, 0, 0, 1]])
        if c2w.shape != (4, 4):
            raise InputError(f"frame {label}: transform_matrix has shape {c2w.shape}, "
                             "expected 4x4", path, "write a 4x4 camera-to-world matrix")
        if not np.isfinite(c2w).all():
            raise InputError(f"frame {label} has a non-finite (NaN/Inf) transform_matrix", path,
                             "repair or drop that frame")
        if convention == "opengl":
            c2w = c2w @ _OPENGL_TO_OPENCV
        img_path = _image_path(base, str(fr["file_path"]), images_dir, downscale, path, label)
        K, size, dist = _intrinsics(meta, fr, base, str(fr["file_path"]), path, label)
        frames.append(Frame(path=img_path, c2w=c2w, K=K, size=size, dist=dist,
                            is_test=is_test, label=label))
    return frames


def _get(meta: dict, fr: dict, key: str, default=None):
    return fr.get(key, meta.get(key, default))


def _intrinsics(meta: dict, fr: dict, base: Path, rel: str, path: Path, label: str):
    w, h = _get(meta, fr, "w"), _get(meta, fr, "h")
    if w is None or h is None:
        # Blender-style: size from the original image file
        w, h = _images.image_size(_images.resolve_image(base, rel, path, label))
    w, h = float(w), float(h)
    fx, fy = _get(meta, fr, "fl_x"), _get(meta, fr, "fl_y")
    ax, ay = _get(meta, fr, "camera_angle_x"), _get(meta, fr, "camera_angle_y")
    if fx is None and ax is not None:
        fx = 0.5 * w / math.tan(0.5 * float(ax))
    if fy is None and ay is not None and fx is None:
        fy = 0.5 * h / math.tan(0.5 * float(ay))
    if fx is None and fy is None:
        raise InputError(f"frame {label}: no focal length (fl_x/fl_y or camera_angle_x)", path,
                         "add fl_x, fl_y (pixels) or camera_angle_x (radians)")
    fx = float(fx if fx is not None else fy)
    fy = float(fy if fy is not None else fx)
    cx = float(_get(meta, fr, "cx", w / 2))
    cy = float(_get(meta, fr, "cy", h / 2))
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    dist = np.array([float(_get(meta, fr, k, 0.0)) for k in ("k1", "k2", "p1", "p2", "k3")])
    if float(_get(meta, fr, "k4", 0.0)) != 0.0:
        raise InputError(f"frame {label}: k4 distortion is not supported", path,
                         "undistort the images into a pinhole camera first")
    if not (np.isfinite(K).all() and np.isfinite(dist).all()):
        raise InputError(f"frame {label} has non-finite intrinsics", path, "repair them")
    return K, (int(round(w)), int(round(h))), dist


def _image_path(base: Path, rel: str, images_dir: str | None, downscale: int, path: Path,
                label: str) -> Path:
    rel = rel.replace("\\", "/")
    if images_dir is not None:
        d = Path(images_dir)
        d = d if d.is_absolute() else base / d
        return _images.resolve_image(d, Path(rel).name, path, label)
    parts = Path(rel).parts
    if downscale > 1 and len(parts) > 1:
        # nerfstudio layout: images/x.png -> images_<d>/x.png when that folder exists
        cand_dir = base.joinpath(*parts[:-2]) / f"{parts[-2]}_{downscale}"
        if cand_dir.is_dir():
            return _images.resolve_image(cand_dir, parts[-1], path, label)
    return _images.resolve_image(base, rel, path, label)


def read_nerf(root: Path, *, convention: Literal["opengl", "opencv", "auto"] = "auto",
              images_dir: str | None = None, downscale: int = 1, test_every: int = 8,
              max_images: int | None = None) -> SceneData:
    """Read a NeRF-style scene (``transforms.json`` or ``transforms_{train,test}.json``).

    Args:
        root: folder holding the json(s); ``file_path`` entries are relative to it, with or
            without an extension.
        convention: camera axes of ``transform_matrix``; "auto" = "opengl" (instant-ngp,
            nerfstudio, Blender) unless the json's ``camera_convention`` says OpenCV.
        images_dir: look images up by file name in this folder instead.
        downscale: integer factor; ``<folder>_<d>`` image folders are used when present.
        test_every: every-nth hold-out when there is no ``transforms_test.json``.
        max_images: evenly spaced subset size.

    Returns:
        SceneData. RGBA images are composited on white (Blender synthetic convention).
        Points from nerfstudio's ``ply_file_path`` or ``points3d.ply`` / ``sparse_pc.ply``
        next to the json, else None.

    Raises:
        InputError: see :func:`parse_transforms`; bad PLY; mixed image sizes.
    """
    root = Path(root)
    found = find_transforms(root)
    if found is None:
        raise InputError("no transforms.json or transforms_train.json", root,
                         "point to the folder that holds the transforms json")
    main, test = found
    meta = read_json(main)
    conv = _resolve_convention(meta if isinstance(meta, dict) else {}, convention, main)
    has_split = test is not None
    frames = parse_transforms(main, convention=conv, images_dir=images_dir,
                              downscale=downscale, is_test=False if has_split else None)
    if test is not None:
        tmeta = read_json(test)
        tconv = _resolve_convention(tmeta if isinstance(tmeta, dict) else {}, convention, test)
        frames += parse_transforms(test, convention=tconv, images_dir=images_dir,
                                   downscale=downscale, is_test=True)
    points = rgb = None
    ply = None
    if isinstance(meta, dict) and meta.get("ply_file_path"):
        ply = root / str(meta["ply_file_path"])
        if not ply.is_file():
            raise InputError(f"ply_file_path {meta['ply_file_path']} not found", main,
                             "fix ply_file_path or restore the point cloud")
    else:
        ply = next((root / n for n in _POINT_FILES if (root / n).is_file()), None)
    if ply is not None:
        points, rgb = read_ply_points(ply)
    return build_scene(frames, name=root.resolve().name, root=root, fmt="nerf", pose_file=main,
                       points=points, points_rgb=rgb, downscale=downscale,
                       test_every=test_every, max_images=max_images, alpha="white")
