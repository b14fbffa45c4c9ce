"""COLMAP sparse-model reader (``pycolmap.Reconstruction``) and a points3D-only reader.

COLMAP's ``cam_from_world`` is world-to-camera with OpenCV axes, which is exactly instgs'
``viewmats``; intrinsics are pixels with pixel centres at +0.5, as in instgs.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from instgs.core.checks import InputError

from .types import Frame, SceneData, build_scene

__all__ = ["read_colmap", "find_sparse_dir", "read_points3d", "colmap_intrinsics"]

_MODEL_FILES = ("cameras", "images", "points3D")


def find_sparse_dir(root: Path) -> Path | None:
    """``root/sparse/0``, ``root/sparse`` or ``root`` itself when it holds a full model
    (cameras, images, points3D all ``.bin`` or all ``.txt``)."""
    for d in (root / "sparse" / "0", root / "sparse", root):
        for ext in (".bin", ".txt"):  # pycolmap reads one kind, not a mix
            if all((d / f"{n}{ext}").is_file() for n in _MODEL_FILES):
                return d
    return None


def colmap_intrinsics(model: str, params: np.ndarray, path: Path | str) -> tuple[np.ndarray,
                                                                                 np.ndarray]:
    """K [3, 3] and OpenCV distortion [5] (k1, k2, p1, p2, k3) for a COLMAP camera model.

    Supported: SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV (distortion is then
    undone on image load, see SceneData.load_image).

    Raises:
        InputError: any other model (fisheye, FULL_OPENCV, ...), naming ``path``.
    """
    p = [float(x) for x in params]
    dist = np.zeros(5)
    if model == "SIMPLE_PINHOLE":
        fx = fy = p[0]
        cx, cy = p[1], p[2]
    elif model == "PINHOLE":
        fx, fy, cx, cy = p[:4]
    elif model == "SIMPLE_RADIAL":
        fx = fy = p[0]
        cx, cy, dist[0] = p[1], p[2], p[3]
    elif model == "RADIAL":
        fx = fy = p[0]
        cx, cy, dist[0], dist[1] = p[1], p[2], p[3], p[4]
    elif model == "OPENCV":
        fx, fy, cx, cy = p[:4]
        dist[:4] = p[4:8]
    else:
        raise InputError(f"camera model {model} is not supported (supported: SIMPLE_PINHOLE, "
                         "PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV)", path,
                         "run `colmap image_undistorter` and read its PINHOLE output")
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    return K, dist


def _model_file(sparse: Path, stem: str) -> Path:
    b = sparse / f"{stem}.bin"
    return b if b.is_file() else sparse / f"{stem}.txt"


def read_colmap(root: Path, *, images_dir: str | None = None, downscale: int = 1,
                test_every: int = 8, max_images: int | None = None) -> SceneData:
    """Read a COLMAP scene: ``sparse/0`` (or ``sparse``) + ``images`` (or ``images_<d>``).

    Args:
        root: scene folder.
        images_dir: image folder (relative to ``root`` or absolute) instead of ``images``.
        downscale: integer factor; ``images_<downscale>`` is used when it exists.
        test_every: every-nth hold-out (sorted by name).
        max_images: evenly spaced subset size.

    Returns:
        SceneData with points and colours from points3D (float32, colours / 255).

    Raises:
        InputError: no/corrupt sparse model, unsupported camera model, strong distortion,
            views of different sizes, non-finite poses, missing/wrong-size images.
    """
    import pycolmap

    root = Path(root)
    sparse = find_sparse_dir(root)
    if sparse is None:
        raise InputError("no COLMAP model (cameras, images, points3D as .bin or .txt) in "
                         "sparse/0, sparse or the folder itself", root,
                         "point to the folder that contains sparse/0")
    try:
        rec = pycolmap.Reconstruction(str(sparse))
    except Exception as e:  # pycolmap raises ValueError / RuntimeError on bad files
        raise InputError(f"cannot read the COLMAP model ({e})", sparse,
                         "the model files are corrupt or truncated; re-export them") from e
    img_dir = _image_folder(root, images_dir, downscale)
    images_file = _model_file(sparse, "images")
    frames = []
    for image in rec.images.values():
        if not image.has_pose:
            continue
        cam = rec.cameras[image.camera_id]
        K, dist = colmap_intrinsics(cam.model_name, np.asarray(cam.params),
                                    _model_file(sparse, "cameras"))
        w2c = np.eye(4)
        w2c[:3, :] = np.asarray(image.cam_from_world().matrix(), dtype=np.float64)
        if not np.isfinite(w2c).all():
            raise InputError(f"image {image.name} has a non-finite (NaN/Inf) pose", images_file,
                             "repair or drop that image")
        path = img_dir / image.name
        if not path.is_file():
            raise InputError(f"image {image.name} (listed in {images_file.name}) not found",
                             path, "restore the image or pass images_dir=")
        frames.append(Frame(path=path, c2w=np.linalg.inv(w2c), K=K,
                            size=(int(cam.width), int(cam.height)), dist=dist,
                            label=image.name))
    points = rgb = None
    if rec.num_points3D() > 0:
        xyz = np.stack([p.xyz for p in rec.points3D.values()]).astype(np.float32)
        col = np.stack([p.color for p in rec.points3D.values()]).astype(np.float32) / 255.0
        if not np.isfinite(xyz).all():
            raise InputError("points3D has non-finite coordinates", _model_file(sparse, "points3D"),
                             "repair or drop those points")
        points, rgb = torch.from_numpy(xyz), torch.from_numpy(col)
    return build_scene(frames, name=root.resolve().name, root=root, fmt="colmap",
                       pose_file=images_file, points=points, points_rgb=rgb,
                       downscale=downscale, test_every=test_every, max_images=max_images)


def _image_folder(root: Path, images_dir: str | None, downscale: int) -> Path:
    if images_dir is not None:
        d = Path(images_dir)
        d = d if d.is_absolute() else root / d
        if not d.is_dir():
            raise InputError("images_dir not found", d, "pass an existing image folder")
        return d
    if downscale > 1 and (root / f"images_{downscale}").is_dir():
        return root / f"images_{downscale}"
    if (root / "images").is_dir():
        return root / "images"
    raise InputError("no images/ folder next to the COLMAP model", root,
                     "put the images in images/ or pass images_dir=")


# ----------------------------------------------------------------------------- points3D only
def read_points3d(path: str | Path) -> tuple[Tensor, Tensor]:
    """Read only a COLMAP ``points3D.bin`` / ``points3D.txt`` (no cameras/images needed).

    Used where ``images.bin`` is absent (e.g. the LLFF ``fern`` snapshot), so
    ``pycolmap.Reconstruction`` cannot load the model. Binary layout (COLMAP
    ``src/colmap/scene/reconstruction_io.cc``): uint64 count; per point uint64 id,
    3 x float64 xyz, 3 x uint8 rgb, float64 error, uint64 track length, then
    track length x (uint32 image_id, uint32 point2D_idx).

    Returns:
        (points [P, 3] float32, points_rgb [P, 3] float32 in [0, 1]), in file order.

    Raises:
        InputError: missing, truncated or corrupt file; no points; non-finite coordinates.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("points3D file not found", path, "restore sparse/0/points3D.bin")
    try:
        xyz, rgb = (_read_points3d_txt(path) if path.suffix == ".txt"
                    else _read_points3d_bin(path))
    except (struct.error, ValueError, IndexError) as e:
        raise InputError(f"cannot parse COLMAP points3D ({e})", path,
                         "the file is corrupt or truncated; re-export it") from e
    if xyz.shape[0] == 0:
        raise InputError("points3D holds 0 points", path, "re-run the reconstruction")
    if not np.isfinite(xyz).all():
        raise InputError("points3D has non-finite coordinates", path, "repair the file")
    return (torch.from_numpy(xyz.astype(np.float32)),
            torch.from_numpy(rgb.astype(np.float32) / 255.0))


def _read_points3d_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = path.read_bytes()
    (n,) = struct.unpack_from("<Q", data, 0)
    if n > len(data) // 43:
        raise ValueError(f"header says {n} points but the file has only {len(data)} bytes")
    off = 8
    xyz = np.empty((n, 3))
    rgb = np.empty((n, 3), dtype=np.uint8)
    rec = struct.Struct("<Q3d3BdQ")  # 43 bytes
    for i in range(n):
        vals = rec.unpack_from(data, off)
        xyz[i] = vals[1:4]
        rgb[i] = vals[4:7]
        off += rec.size + 8 * vals[8]
    if off != len(data):
        raise ValueError(f"{len(data) - off} trailing bytes after {n} points")
    return xyz, rgb


def _read_points3d_txt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    xyz, rgb = [], []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        t = line.split()
        xyz.append([float(v) for v in t[1:4]])
        rgb.append([int(v) for v in t[4:7]])
    return np.asarray(xyz, dtype=np.float64).reshape(-1, 3), np.asarray(rgb).reshape(-1, 3)
