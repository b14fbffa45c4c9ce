"""The scene types every reader builds: :class:`SceneData` (posed images + initial points +
split), :class:`Frame` (one view as a reader found it) and :func:`build_scene`.

Readers (``colmap``, ``nerf_json``, ``llff``, ``scannet``) import this module; the entry point
:func:`instgs.data.read_scene` (in :mod:`instgs.data.scene`) imports the readers, so there
is no import cycle. Every reader converts its format's conventions at this boundary
(docs/conventions.md): OpenCV camera axes, ``viewmats`` world-to-camera, ``Ks`` in pixels
with pixel centres at integer + 0.5, world units and orientation exactly as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from instgs.core.cameras import Cameras
from instgs.core.checks import InputError, check_shape

from . import _images

__all__ = ["SceneData", "Frame", "build_scene", "scene_scale_of", "every_nth_split",
           "subsample_ids"]

@dataclass
class SceneData:
    """Posed images of one scene in instgs conventions, plus initial points and the split.

    Attributes:
        name: scene name (the folder name unless given otherwise).
        root: the scene folder.
        image_paths: one file per view, sorted by name (relative to the image folder).
        cameras: all views; viewmats [C, 4, 4] world-to-camera (OpenCV axes, scene units),
            Ks [C, 3, 3] pixels, one width/height; ``downscale`` already applied.
        points: initial points [P, 3] float32 in world units, or None.
        points_rgb: their colours [P, 3] float32 in [0, 1], or None.
        train_ids: view indices used for training.
        test_ids: held-out view indices.
        fixed_anchors: True for the ScanNet protocol: ``points`` are the mesh vertices in
            file order and must be used as frozen anchors (predictions are indexed by them).
        scene_scale: 1.1 x the largest distance of a camera centre from their mean (3DGS
            ``cameras_extent``), scene units; 1.0 when all centres coincide.
        format: the reader that produced this scene ("colmap", "nerf", "llff", "scannet").
        downscale: the integer factor the cameras were divided by.
        full_size: (width, height) before ``downscale``; an image of this size on disk is
            resized to the camera size on load (BOX / area filter).
        distortion: [C, 5] float32 OpenCV (k1, k2, p1, p2, k3) of the files on disk, or None.
            Images are undistorted on load to the pinhole ``cameras`` (same K and size).
        alpha: "white": RGBA images are composited on white (Blender-style synthetic data,
            NeRF/nerfstudio convention); "drop": the alpha channel is ignored.
        pose_file: the file the poses came from (named in error messages).
    """

    name: str
    root: Path
    image_paths: list[Path]
    cameras: Cameras
    points: Tensor | None
    points_rgb: Tensor | None
    train_ids: list[int]
    test_ids: list[int]
    fixed_anchors: bool
    scene_scale: float
    format: str = ""
    downscale: int = 1
    full_size: tuple[int, int] | None = None
    distortion: Tensor | None = None
    alpha: Literal["white", "drop"] = "drop"
    pose_file: Path | None = None
    _undistort_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.cameras)
        if len(self.image_paths) != n:
            raise ValueError(f"{len(self.image_paths)} image paths for {n} cameras")
        if self.points is not None:
            dims = check_shape("points", self.points, "P 3")
            if self.points_rgb is not None:
                check_shape("points_rgb", self.points_rgb, "P 3", **dims)
        if self.distortion is not None:
            check_shape("distortion", self.distortion, "C 5", C=n)
        ids = list(self.train_ids) + list(self.test_ids)
        if any(not 0 <= i < n for i in ids):
            raise ValueError(f"split ids must lie in [0, {n})")

    def __len__(self) -> int:
        return len(self.image_paths)

    @property
    def width(self) -> int:
        return self.cameras.width

    @property
    def height(self) -> int:
        return self.cameras.height

    def split(self, which: Literal["train", "test"]) -> list[int]:
        """View indices of the ``"train"`` or ``"test"`` split.

        Raises:
            ValueError: ``which`` is not "train" or "test".
        """
        if which == "train":
            return list(self.train_ids)
        if which == "test":
            return list(self.test_ids)
        raise ValueError(f"split must be 'train' or 'test', got {which!r}")

    def load_image(self, i: int) -> Tensor:
        """Load view ``i`` as [H, W, 3] float32 in [0, 1] at the camera size.

        An image stored at the pre-downscale size is resized with PIL's BOX (area) filter.
        RGBA is composited on white when ``alpha == "white"`` (Blender-style data) and
        its alpha dropped otherwise. Distorted images (``distortion``) are resampled to the
        pinhole camera (bilinear, same K).

        Raises:
            IndexError: ``i`` out of range.
            InputError: the file is missing, unreadable/corrupt, or its size is neither the
                camera size nor the pre-downscale size (the message names both sizes).
        """
        if not -len(self) <= i < len(self):
            raise IndexError(f"view {i} out of range for {len(self)} views")
        i = i % len(self)
        size = (self.cameras.width, self.cameras.height)
        arr = _images.load_rgb(self.image_paths[i], size, self.full_size, self.alpha)
        img = torch.from_numpy(arr)
        if self.distortion is not None and bool((self.distortion[i] != 0).any()):
            img = _images.undistort_image(img, self.cameras.Ks[i], self.distortion[i],
                                          cache=self._undistort_cache)
        return img

    def image_names(self) -> list[str]:
        """File names relative to the scene root (POSIX), in view order."""
        out = []
        for p in self.image_paths:
            try:
                out.append(p.relative_to(self.root).as_posix())
            except ValueError:
                out.append(str(p))
        return out

    def to_json(self) -> dict:
        """Plain data for ``scene.json`` in a run directory (cameras, split, names).

        Returns:
            dict with name, root, format, width, height, downscale, viewmats (C x 4 x 4 lists,
            world-to-camera, OpenCV), Ks (C x 3 x 3, pixels), image_names, train_ids,
            test_ids, fixed_anchors, scene_scale, num_points and a conventions note.
        """
        return {
            "name": self.name,
            "root": str(self.root),
            "format": self.format,
            "width": self.cameras.width,
            "height": self.cameras.height,
            "downscale": self.downscale,
            "conventions": "viewmats = world-to-camera, OpenCV axes (x right, y down, "
                           "z forward), scene units as given; Ks in pixels, pixel centres at "
                           "integer + 0.5 (docs/conventions.md)",
            "viewmats": self.cameras.viewmats.double().tolist(),
            "Ks": self.cameras.Ks.double().tolist(),
            "image_names": self.image_names(),
            "train_ids": list(self.train_ids),
            "test_ids": list(self.test_ids),
            "fixed_anchors": self.fixed_anchors,
            "scene_scale": self.scene_scale,
            "num_points": None if self.points is None else int(self.points.shape[0]),
        }


# ----------------------------------------------------------------------------- building
def scene_scale_of(centers: np.ndarray) -> float:
    """1.1 x max distance of camera centres [C, 3] from their mean (3DGS getNerfppNorm)."""
    centers = np.asarray(centers, dtype=np.float64)
    radius = float(np.linalg.norm(centers - centers.mean(0), axis=1).max()) * 1.1
    return radius if radius > 0 else 1.0


def every_nth_split(n: int, test_every: int) -> tuple[list[int], list[int]]:
    """LLFF / 3DGS hold-out: index % test_every == 0 is test; ``test_every <= 0``: no test."""
    if test_every <= 0:
        return list(range(n)), []
    test = [i for i in range(n) if i % test_every == 0]
    train = [i for i in range(n) if i % test_every != 0]
    return train, test


def subsample_ids(n: int, max_images: int | None) -> list[int]:
    """``max_images`` evenly spaced indices of ``n`` (all when None or >= n)."""
    if max_images is None or max_images >= n:
        return list(range(n))
    if max_images <= 0:
        raise InputError(f"max_images must be positive, got {max_images}")
    return sorted(set(np.linspace(0, n - 1, max_images).round().astype(int).tolist()))


@dataclass
class Frame:
    """One posed view as a reader found it (before sorting, subsetting, downscaling)."""

    path: Path
    c2w: np.ndarray            # [4, 4] float64, OpenCV axes
    K: np.ndarray              # [3, 3] float64, pixels at ``size``
    size: tuple[int, int]      # (width, height) the intrinsics refer to
    dist: np.ndarray | None = None   # [5] (k1, k2, p1, p2, k3)
    is_test: bool | None = None      # explicit split membership (None: use every-nth)
    label: str = ""                  # how to name the frame in errors


def build_scene(frames: list[Frame], *, name: str, root: Path, fmt: str, pose_file: Path,
                points: Tensor | None, points_rgb: Tensor | None, downscale: int,
                test_every: int, max_images: int | None, fixed_anchors: bool = False,
                alpha: Literal["white", "drop"] = "drop", check_images: bool = True
                ) -> SceneData:
    """Sort, subset, downscale, split and size-check frames into a :class:`SceneData`.

    Raises:
        InputError: no frames; views of different sizes; non-finite poses/intrinsics; an
            image that is missing or of the wrong size.
    """
    if not frames:
        raise InputError("no posed images found", pose_file, "check that the file lists frames")
    for f in frames:
        if not (np.isfinite(f.c2w).all() and np.isfinite(f.K).all()):
            raise InputError(f"frame {f.label or f.path.name} has a non-finite (NaN/Inf) pose or "
                             "intrinsics", pose_file, "repair or drop that frame")
    sizes = sorted({f.size for f in frames})
    if len(sizes) > 1:
        a = next(f for f in frames if f.size == sizes[0])
        b = next(f for f in frames if f.size == sizes[1])
        raise InputError(f"views have {len(sizes)} different image sizes, e.g. {a.path.name} is "
                         f"{a.size[0]}x{a.size[1]} and {b.path.name} is {b.size[0]}x{b.size[1]}",
                         pose_file, "instgs needs one image size per scene; resize or crop "
                         "the images (and intrinsics) to a common size")
    if downscale < 1:
        raise InputError(f"downscale must be a positive integer, got {downscale}")
    frames = sorted(frames, key=lambda f: f.path.as_posix())
    frames = [frames[i] for i in subsample_ids(len(frames), max_images)]
    full = frames[0].size
    W, H = _images.downscaled_size(*full, downscale)
    sx, sy = W / full[0], H / full[1]

    c2w = np.stack([f.c2w for f in frames]).astype(np.float64)
    Ks = np.stack([f.K for f in frames]).astype(np.float64)
    Ks[:, 0, :] *= sx
    Ks[:, 1, :] *= sy
    viewmats = np.linalg.inv(c2w)
    viewmats[:, 3, :] = (0, 0, 0, 1)
    cams = Cameras(torch.from_numpy(viewmats).float(), torch.from_numpy(Ks).float(), W, H)

    dist = None
    if any(f.dist is not None and np.any(f.dist != 0) for f in frames):
        dist = torch.tensor(np.stack([np.zeros(5) if f.dist is None else f.dist
                                      for f in frames]), dtype=torch.float32)
        for i in range(len(frames)):
            if bool((dist[i] != 0).any()):
                shift = _images.max_distortion_shift(cams.Ks[i], dist[i], W, H)
                if shift > _images.MAX_DISTORTION_SHIFT:
                    raise InputError(
                        f"frame {frames[i].label or frames[i].path.name} has strong lens "
                        f"distortion (up to {shift:.1%} of the image diagonal)", pose_file,
                        "undistort the images first (colmap image_undistorter, or "
                        "ns-process-data) and use the resulting PINHOLE cameras")
                break  # one check per scene: intrinsics are shared in practice

    if all(f.is_test is not None for f in frames) and any(f.is_test for f in frames):
        test_ids = [i for i, f in enumerate(frames) if f.is_test]
        train_ids = [i for i, f in enumerate(frames) if not f.is_test]
    else:
        train_ids, test_ids = every_nth_split(len(frames), test_every)

    if check_images:
        for f in frames:
            _images.check_size(f.path, _images.image_size(f.path), (W, H), full)

    if points is not None and points_rgb is not None and points_rgb.shape != points.shape:
        points_rgb = None
    return SceneData(
        name=name, root=root, image_paths=[f.path for f in frames], cameras=cams,
        points=points, points_rgb=points_rgb, train_ids=train_ids, test_ids=test_ids,
        fixed_anchors=fixed_anchors, scene_scale=scene_scale_of(c2w[:, :3, 3]), format=fmt,
        downscale=downscale, full_size=full, distortion=dist, alpha=alpha, pose_file=pose_file)
