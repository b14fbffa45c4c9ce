"""Pinhole cameras in instgs' single convention (docs/conventions.md).

* Camera axes: OpenCV (x right, y down, z forward).
* ``viewmats``: world-to-camera [C, 4, 4] float32; ``c2w`` = inverse.
* ``Ks``: intrinsics in pixels [C, 3, 3]; pixel centres at integer + 0.5
  (a pixel (u, v) covers [u, u+1) x [v, v+1); the ray through its centre hits u + 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import check_shape

__all__ = ["Cameras", "opengl_to_opencv", "invert_rigid"]

# diag(1, -1, -1, 1): flips camera y and z; applying it twice is the identity.
_FLIP_YZ = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))


def opengl_to_opencv(c2w: Tensor) -> Tensor:
    """Convert camera-to-world matrices between OpenGL/Blender and OpenCV camera axes.

    The conversion negates the camera's y and z axes (columns 1 and 2 of c2w), so it is
    its own inverse.

    Args:
        c2w: [..., 4, 4] or [..., 3, 4] camera-to-world, any float dtype.

    Returns:
        Same shape and dtype.
    """
    out = c2w.clone()
    out[..., :3, 1:3] *= -1
    return out


def invert_rigid(T: Tensor) -> Tensor:
    """Invert rigid transforms [..., 4, 4] (rotation + translation) exactly:
    [R|t]^-1 = [R^T|-R^T t]."""
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    out = torch.zeros_like(T)
    out[..., :3, :3] = R.transpose(-1, -2)
    out[..., :3, 3:] = -R.transpose(-1, -2) @ t
    out[..., 3, 3] = 1
    return out


@dataclass(frozen=True)
class Cameras:
    """C pinhole cameras sharing one image size.

    Attributes:
        viewmats: world-to-camera, OpenCV axes. [C, 4, 4] float32, metres.
        Ks: intrinsics in pixels. [C, 3, 3] float32.
        width: image width in pixels.
        height: image height in pixels.
    """

    viewmats: Tensor
    Ks: Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        dims = check_shape("viewmats", self.viewmats, "C 4 4")
        check_shape("Ks", self.Ks, "C 3 3", **dims)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"width/height must be positive, got {self.width}x{self.height}")

    def __len__(self) -> int:
        return self.viewmats.shape[0]

    def __getitem__(self, idx) -> Cameras:
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return Cameras(self.viewmats[idx], self.Ks[idx], self.width, self.height)

    @property
    def c2w(self) -> Tensor:
        """Camera-to-world [C, 4, 4]."""
        return invert_rigid(self.viewmats)

    @property
    def centers(self) -> Tensor:
        """Camera centres in world coordinates [C, 3], metres."""
        return self.c2w[:, :3, 3]

    def to(self, device) -> Cameras:
        return Cameras(self.viewmats.to(device), self.Ks.to(device), self.width, self.height)

    def scaled(self, factor: float) -> Cameras:
        """Cameras for images resized by ``factor`` (e.g. 0.5 halves width and height)."""
        Ks = self.Ks.clone()
        Ks[:, :2, :] *= factor
        return Cameras(self.viewmats, Ks, round(self.width * factor), round(self.height * factor))
