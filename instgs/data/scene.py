"""``read_scene``: detect a scene folder's layout and read it into a :class:`SceneData`.

The readers live in their own modules and build scenes through :mod:`instgs.data.types`;
this module imports them (they never import it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from instgs.core.checks import InputError

from . import colmap, llff, nerf_json, scannet
from .types import SceneData

__all__ = ["SceneData", "read_scene", "detect_format", "KNOWN_FORMATS", "LAYOUTS"]

KNOWN_FORMATS: tuple[str, ...] = ("colmap", "nerf", "llff", "scannet")

#: The files that identify each layout (checked by ``format="auto"`` in this order).
LAYOUTS: dict[str, str] = {
    "scannet": "color/ + transforms_train.json + points3d.ply (or *_vh_clean_2.ply) "
               "(OpenGaussian / InstanceGaussian ScanNet layout)",
    "colmap": "sparse/0/ or sparse/ holding cameras, images and points3D (.bin or .txt), "
              "plus images/",
    "llff": "poses_bounds.npy + images/ or images_<d>/ (optionally sparse/0/points3D.bin)",
    "nerf": "transforms.json, or transforms_train.json (+ transforms_test.json) "
            "(instant-ngp / nerfstudio / Blender)",
}


# ----------------------------------------------------------------------------- entry point
def detect_format(path: str | Path) -> str:
    """Guess a scene folder's layout from the files present (order: scannet, colmap, llff, nerf).

    Raises:
        InputError: the folder is missing or matches no layout (the message lists every
            layout and the files that identify it).
    """
    root = Path(path)
    if not root.is_dir():
        raise InputError("scene folder not found", root, "pass an existing scene folder")
    if scannet.looks_like(root):
        return "scannet"
    if colmap.find_sparse_dir(root) is not None:
        return "colmap"
    if (root / "poses_bounds.npy").is_file():
        return "llff"
    if nerf_json.find_transforms(root) is not None:
        return "nerf"
    listing = ", ".join(sorted(p.name for p in root.iterdir())[:12]) or "(empty)"
    layouts = "; ".join(f"{k}: {v}" for k, v in LAYOUTS.items())
    raise InputError(f"unknown scene layout (found: {listing}). Known layouts: {layouts}", root,
                     "arrange the folder as one of these layouts or pass format=...")


def read_scene(path: str | Path,
               format: Literal["auto", "colmap", "nerf", "llff", "scannet"] = "auto", *,
               images_dir: str | None = None, downscale: int = 1, test_every: int = 8,
               nerf_convention: Literal["opengl", "opencv", "auto"] = "auto",
               scannet_convention: Literal["opengl", "opencv"] = "opengl",
               max_images: int | None = None) -> SceneData:
    """Read a posed-image scene into instgs conventions.

    Args:
        path: scene folder.
        format: layout (see ``LAYOUTS``); "auto" detects it from the files present.
        images_dir: image folder relative to ``path`` (or absolute) overriding the layout's
            default (colmap: ``images``; nerf: the json's ``file_path`` folder).
        downscale: integer factor dividing width, height and Ks. An ``images_<d>`` folder
            is used when it exists; otherwise full-size images are area-resized on load.
        test_every: every ``test_every``-th view (sorted by name, index % test_every == 0)
            is held out, unless the layout has an explicit test list; <= 0 disables it.
        nerf_convention: camera axes of ``transform_matrix`` in nerf jsons; "auto" = OpenGL
            (instant-ngp, nerfstudio, Blender) unless the json declares OpenCV in a
            ``camera_convention`` key.
        scannet_convention: "opengl" for OpenGaussian's flipped ``transforms_train.json``,
            "opencv" for unflipped downloads (InstanceGaussian style). Checked against the
            points: a wrong choice raises InputError naming the other one.
        max_images: keep at most this many views, evenly spaced in name order (before
            the split).

    Returns:
        SceneData; world units and orientation as stored (no normalisation).

    Raises:
        InputError: unknown layout, missing/corrupt/wrong-size images, non-finite poses,
            bad point clouds, unsupported camera models, or a wrong ScanNet convention.
    """
    root = Path(path)
    if format not in ("auto", *KNOWN_FORMATS):
        raise InputError(f"unknown format {format!r}; choose one of "
                         f"{', '.join(('auto',) + KNOWN_FORMATS)}")
    if not isinstance(downscale, int) or downscale < 1:
        raise InputError(f"downscale must be a positive integer, got {downscale!r}")
    fmt = detect_format(root) if format == "auto" else format
    if not root.is_dir():
        raise InputError("scene folder not found", root, "pass an existing scene folder")
    common = dict(images_dir=images_dir, downscale=downscale, test_every=test_every,
                  max_images=max_images)
    if fmt == "colmap":
        return colmap.read_colmap(root, **common)
    if fmt == "nerf":
        return nerf_json.read_nerf(root, convention=nerf_convention, **common)
    if fmt == "llff":
        return llff.read_llff(root, **common)
    return scannet.read_scannet(root, convention=scannet_convention, **common)
