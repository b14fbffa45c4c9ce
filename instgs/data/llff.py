"""LLFF reader: ``poses_bounds.npy`` + ``images_<d>/`` (+ ``sparse/0/points3D.bin``).

``poses_bounds.npy`` is [N, 17]: a row-major 3x5 block per image, ``[R | t | hwf]`` where the
rotation columns are the camera's **[down, right, back]** axes in world coordinates (LLFF
``imgs2poses.py`` reorders COLMAP's [right, down, forward]), ``t`` the camera centre and
``hwf`` = (height, width, focal) in full-resolution pixels; then near and far bounds.
The world frame is COLMAP's, so ``sparse/0/points3D.bin`` lies in it unchanged.

Conversion to OpenCV [right, down, forward]: ``c2w = [col1, col0, -col2, t]``.
The principal point is the image centre (LLFF stores none). LLFF ignores lens distortion
(fern's COLMAP camera is SIMPLE_RADIAL, k = 0.0198); so does this reader.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from instgs.core.checks import InputError

from . import _images
from .colmap import read_points3d
from .types import Frame, SceneData, build_scene

__all__ = ["read_llff", "llff_to_opencv_c2w"]


def llff_to_opencv_c2w(poses: np.ndarray) -> np.ndarray:
    """LLFF [N, 3, 4] c2w with [down, right, back] columns -> [N, 4, 4] OpenCV c2w.

    Args:
        poses: [N, 3, 4] (the first four columns of the 3x5 LLFF block).

    Returns:
        [N, 4, 4] float64 with columns [right, down, forward, centre].
    """
    poses = np.asarray(poses, dtype=np.float64)
    out = np.tile(np.eye(4), (poses.shape[0], 1, 1))
    out[:, :3, 0] = poses[:, :, 1]
    out[:, :3, 1] = poses[:, :, 0]
    out[:, :3, 2] = -poses[:, :, 2]
    out[:, :3, 3] = poses[:, :, 3]
    return out


def _list_images(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir()
                  if p.suffix in _images.IMAGE_EXTS and not p.name.startswith("."))


def read_llff(root: Path, *, images_dir: str | None = None, downscale: int = 1,
              test_every: int = 8, max_images: int | None = None) -> SceneData:
    """Read an LLFF forward-facing scene.

    Images: ``images_dir`` if given, else ``images_<downscale>`` when it exists, else
    ``images`` (area-resized on load). The i-th sorted image belongs to row i of
    ``poses_bounds.npy``. The hwf focal is rescaled to the image size found on disk, and
    the image aspect must match hwf (checked).

    Returns:
        SceneData with points from ``sparse/0/points3D.bin|txt`` when present, else None.

    Raises:
        InputError: unreadable npy, wrong shape, NaN rows (naming the row and image), image
            count or aspect disagreeing with the poses, missing images folder.
    """
    root = Path(root)
    npy = root / "poses_bounds.npy"
    if not npy.is_file():
        raise InputError("poses_bounds.npy not found", root, "point to an LLFF scene folder")
    try:
        pb = np.load(npy, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"cannot read poses_bounds.npy ({e})", npy,
                         "the file is corrupt; regenerate it with LLFF imgs2poses.py") from e
    if pb.ndim != 2 or pb.shape[1] != 17:
        raise InputError(f"poses_bounds.npy has shape {pb.shape}, expected (N, 17)", npy,
                         "regenerate it with LLFF imgs2poses.py")
    blocks = pb[:, :15].reshape(-1, 3, 5).astype(np.float64)

    img_dir, prescaled = _pick_folder(root, images_dir, downscale)
    files = _list_images(img_dir)
    if len(files) != len(pb):
        raise InputError(f"{len(files)} images in {img_dir.name}/ but {len(pb)} poses", npy,
                         "use the image folder that poses_bounds.npy was made from")
    bad = np.flatnonzero(~np.isfinite(pb).all(axis=1))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"row {i} (image {files[i].name}) has non-finite (NaN/Inf) values "
                         f"({bad.size} bad rows in all)", npy, "repair or drop those rows")

    c2w = llff_to_opencv_c2w(blocks[:, :, :4])
    h_full, w_full, f_full = blocks[0, :, 4]
    w_disk, h_disk = _images.image_size(files[0])
    if abs(w_disk / h_disk - w_full / h_full) > 0.01 * (w_full / h_full):
        raise InputError(f"{files[0].name} is {w_disk}x{h_disk}, whose aspect does not match "
                         f"poses_bounds hwf {w_full:g}x{h_full:g}", npy,
                         "use the image folder that poses_bounds.npy was made from")
    # intrinsics at the size of the chosen image folder (prescaled) or full resolution
    if images_dir is not None:  # a user folder: its size is the "full" size here
        size, eff_downscale = (w_disk, h_disk), downscale
    elif prescaled:
        size = (w_disk, h_disk)
        if downscale > 1:
            # an images_<d> folder stands for the full size divided by d
            expect = _images.downscaled_size(int(round(w_full)), int(round(h_full)), downscale)
            if abs(expect[0] - w_disk) > 1 or abs(expect[1] - h_disk) > 1:
                raise InputError(f"{img_dir.name}/ images are {w_disk}x{h_disk} but hwf / "
                                 f"{downscale} is {expect[0]}x{expect[1]}", npy,
                                 "the folder does not match its name; regenerate it")
        eff_downscale = 1
    else:
        size = (int(round(w_full)), int(round(h_full)))
        eff_downscale = downscale
    s = size[0] / w_full
    frames = []
    for i, (p, blk) in enumerate(zip(files, blocks)):
        f = blk[2, 4] * s
        K = np.array([[f, 0, size[0] / 2], [0, f, size[1] / 2], [0, 0, 1]])
        frames.append(Frame(path=p, c2w=c2w[i], K=K, size=size, label=f"row {i} ({p.name})"))

    points = rgb = None
    for cand in (root / "sparse" / "0" / "points3D.bin", root / "sparse" / "0" / "points3D.txt"):
        if cand.is_file():
            points, rgb = read_points3d(cand)
            break
    scene = build_scene(frames, name=root.resolve().name, root=root, fmt="llff", pose_file=npy,
                        points=points, points_rgb=rgb, downscale=eff_downscale,
                        test_every=test_every, max_images=max_images)
    scene.downscale = downscale
    return scene


def _pick_folder(root: Path, images_dir: str | None, downscale: int) -> tuple[Path, bool]:
    """(folder, prescaled): prescaled means the folder's images are already camera-sized."""
    if images_dir is not None:
        d = Path(images_dir)
        d = d if d.is_absolute() else root / d
        if not d.is_dir():
            raise InputError("images_dir not found", d, "pass an existing image folder")
        return d, True
    if downscale > 1 and (root / f"images_{downscale}").is_dir():
        return root / f"images_{downscale}", True
    if (root / "images").is_dir():
        return root / "images", False
    have = sorted(int(m.group(1)) for p in root.iterdir()
                  if (m := re.fullmatch(r"images_(\d+)", p.name)) and p.is_dir())
    raise InputError(f"no images_{downscale}/ or images/ folder (available downscales: "
                     f"{have or 'none'})", root,
                     f"pass downscale= one of {have}" if have else "add the images folder")
