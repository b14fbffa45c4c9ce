"""ScanNet reader for the OpenGaussian / InstanceGaussian layout (frozen mesh-vertex anchors).

Layout (``yanmin-wu/OpenGaussian`` README §2, ``scripts/scannet2blender.py``; see
shared/notes/reference-implementations.md §0.3, §0.5, §7a)::

    <scene>/color/<stem>.jpg
    <scene>/transforms_train.json    global w, h, fl_x, fl_y, cx, cy (per-frame overrides);
                                     frames: file_path "color/<stem>", transform_matrix c2w
    <scene>/transforms_test.json     optional held-out views
    <scene>/points3d.ply             the *_vh_clean_2.ply vertices, ORIGINAL order
                                     (InstanceGaussian: <scene>_vh_clean_2.ply itself)

The convention trap: OpenGaussian's converter negates c2w columns 1:2 (OpenGL/Blender
axes) and its reader flips them back; InstanceGaussian's reader does not flip, so its
downloads store OpenCV axes. ``convention`` selects which; the choice is checked against
the points (the mesh was reconstructed from these very frames, so its vertices fill the
camera frusta far better under the right convention).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from instgs.core.checks import InputError

from .nerf_json import parse_transforms
from .ply import read_ply_points
from .types import SceneData, build_scene

__all__ = ["read_scannet", "looks_like", "frustum_fraction", "check_convention"]

#: the flipped convention must fill the frusta this many times better to count as evidence
CONVENTION_MARGIN = 1.5


def _points_file(root: Path) -> Path | None:
    p = root / "points3d.ply"
    if p.is_file():
        return p
    cands = sorted(root.glob("*_vh_clean_2.ply"))
    return cands[0] if cands else None


def looks_like(root: Path) -> bool:
    """True when ``root`` has ``color/``, ``transforms_train.json`` and a vertex PLY."""
    return ((root / "color").is_dir() and (root / "transforms_train.json").is_file()
            and _points_file(root) is not None)


def frustum_fraction(points: Tensor, viewmats: Tensor, Ks: Tensor, width: int, height: int,
                     near: float = 0.05) -> Tensor:
    """Per camera, the fraction of points in front (z > near) that project inside the image.

    Args:
        points: [P, 3] world points.
        viewmats: [C, 4, 4] world-to-camera (OpenCV).
        Ks: [C, 3, 3] pixels.
        width, height: image size in pixels.
        near: minimum camera z, scene units.

    Returns:
        [C] float64 fractions in [0, 1].
    """
    P = points.double()
    out = []
    for V, K in zip(viewmats.double(), Ks.double()):
        X = P @ V[:3, :3].T + V[:3, 3]                                 # [P, 3]
        z = X[:, 2]
        front = z > near
        zs = torch.where(front, z, torch.ones_like(z))
        u = K[0, 0] * X[:, 0] / zs + K[0, 2]
        v = K[1, 1] * X[:, 1] / zs + K[1, 2]
        inside = front & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        out.append(inside.double().mean())
    return torch.stack(out)


def check_convention(scene: SceneData, convention: str, path: Path,
                     max_points: int = 20000) -> tuple[float, float]:
    """Check that the chosen camera convention fits the points; raise otherwise.

    Compares the mean (over cameras) fraction of points inside the view frustum with the
    cameras as read and with camera y/z flipped (the other convention).

    Returns:
        (fraction as read, fraction flipped).

    Raises:
        InputError: no point lies in any frustum, or the flipped cameras fit the points at
            least ``CONVENTION_MARGIN`` times better (names the other ``scannet_convention``).
    """
    pts = scene.points
    assert pts is not None
    if pts.shape[0] > max_points:
        g = torch.Generator().manual_seed(0)
        pts = pts[torch.randperm(pts.shape[0], generator=g)[:max_points]]
    cams = scene.cameras
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=cams.viewmats.dtype))
    as_read = frustum_fraction(pts, cams.viewmats, cams.Ks, cams.width, cams.height).mean()
    flipped = frustum_fraction(pts, flip @ cams.viewmats, cams.Ks, cams.width,
                               cams.height).mean()
    a, b = float(as_read), float(flipped)
    other = "opencv" if convention == "opengl" else "opengl"
    if a == 0.0 and b == 0.0:
        raise InputError("no mesh vertex projects into any camera: poses and points are in "
                         "different frames", path, "check that points3d.ply and the poses "
                         "come from the same scene and alignment (raw vs axis-aligned)")
    if b >= CONVENTION_MARGIN * a:
        raise InputError(f"with scannet_convention={convention!r} only {a:.1%} of the mesh "
                         f"vertices fall inside the average view frustum, {b:.1%} with the "
                         f"other convention", path,
                         f"pass scannet_convention={other!r} (OpenGaussian downloads are "
                         "'opengl', InstanceGaussian-style unflipped poses are 'opencv')")
    return a, b


def read_scannet(root: Path, *, convention: Literal["opengl", "opencv"] = "opengl",
                 images_dir: str | None = None, downscale: int = 1, test_every: int = 8,
                 max_images: int | None = None) -> SceneData:
    """Read a ScanNet scene in the OpenGaussian layout with the vertices as fixed anchors.

    Args:
        root: scene folder (``color/``, ``transforms_train.json``, ``points3d.ply``).
        convention: axes of ``transform_matrix``: "opengl" (OpenGaussian's Blender flip,
            the default) or "opencv" (unflipped ScanNet poses).
        images_dir: image folder instead of the json's ``color/``.
        downscale: integer factor (OpenGaussian trains ScanNet with ``-r 2``).
        test_every: every-nth hold-out when there is no ``transforms_test.json``.
        max_images: evenly spaced subset size.

    Returns:
        SceneData with ``fixed_anchors=True`` and ``points`` = all vertices in file order
        (+ colours), never subsampled or normalised.

    Raises:
        InputError: missing files, bad json/PLY, NaN poses, missing/wrong-size images, or a
            convention that does not fit the points (names the other convention).
    """
    root = Path(root)
    if convention not in ("opengl", "opencv"):
        raise InputError(f"unknown scannet_convention {convention!r}; choose opengl or opencv")
    train = root / "transforms_train.json"
    if not train.is_file():
        raise InputError("transforms_train.json not found", root,
                         "point to an OpenGaussian-layout ScanNet scene folder")
    ply = _points_file(root)
    if ply is None:
        raise InputError("no points3d.ply (or *_vh_clean_2.ply) in the scene folder", root,
                         "copy the scene's *_vh_clean_2.ply there as points3d.ply")
    test = root / "transforms_test.json"
    has_test = test.is_file()
    frames = parse_transforms(train, convention=convention, images_dir=images_dir,
                              downscale=downscale, is_test=False if has_test else None)
    if has_test:
        frames += parse_transforms(test, convention=convention, images_dir=images_dir,
                                   downscale=downscale, is_test=True)
    points, rgb = read_ply_points(ply)
    scene = build_scene(frames, name=root.resolve().name, root=root, fmt="scannet",
                        pose_file=train, points=points, points_rgb=rgb, downscale=downscale,
                        test_every=test_every, max_images=max_images, fixed_anchors=True)
    check_convention(scene, convention, train)
    return scene

