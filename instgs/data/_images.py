"""Image file helpers shared by the readers: locate, size-check, load, undistort."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from instgs.core.checks import InputError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".JPG", ".JPEG", ".PNG", ".webp", ".bmp", ".tif", ".tiff")

# Largest undistortion shift (pixels, relative to the image diagonal) we correct on load;
# beyond it the image border would be mostly invented, so we ask for colmap image_undistorter.
MAX_DISTORTION_SHIFT = 0.03


def resolve_image(base: Path, rel: str, source: Path, frame: str) -> Path:
    """Find ``base / rel``, adding a common image extension when ``rel`` has none.

    Raises:
        InputError: naming ``source`` (the pose file) and ``frame`` when nothing matches.
    """
    p = (base / rel)
    if p.is_file():
        return p
    for ext in IMAGE_EXTS:
        q = p.with_name(p.name + ext)
        if q.is_file():
            return q
    raise InputError(f"image of frame {frame} not found: {p} (also tried the extensions "
                     f"{', '.join(IMAGE_EXTS[:4])}...)", source,
                     "fix the file_path / image name or restore the missing image")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels.

    Raises:
        InputError: missing or unreadable file.
    """
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise InputError("image file not found", path, "restore the image or remove its frame")
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(f"cannot read image ({e})", path,
                         "the file is corrupt or not an image; re-export it") from e


def downscaled_size(width: int, height: int, downscale: int) -> tuple[int, int]:
    """Camera size after dividing by ``downscale``: ``floor(x / d + 0.5)`` (round half up)."""
    return (int(math.floor(width / downscale + 0.5)), int(math.floor(height / downscale + 0.5)))


def load_rgb(path: Path, size: tuple[int, int], full_size: tuple[int, int] | None,
             alpha: str) -> np.ndarray:
    """Decode an image to float32 [H, W, 3] in [0, 1] at camera ``size`` (width, height).

    Args:
        path: image file.
        size: camera (width, height) the result must have.
        full_size: (width, height) before the scene's downscale, or None. An image of this
            size is resized to ``size`` with PIL's BOX (area-averaging) filter.
        alpha: "white" composites RGBA on white (Blender-style data), "drop" ignores alpha.

    Raises:
        InputError: missing, unreadable/corrupt, or of a size that is neither ``size`` nor
            ``full_size`` (the message names the file and the sizes).
    """
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise InputError("image file not found", path, "restore the image or remove its frame")
    try:
        with Image.open(path) as im:
            im.load()
            on_disk = im.size
            check_size(path, on_disk, size, full_size)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                if alpha == "white":
                    bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                    rgb = Image.alpha_composite(bg, rgba).convert("RGB")
                else:
                    rgb = rgba.convert("RGB")
            elif im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                arr = arr / (65535.0 if arr.max(initial=0) > 255 else 255.0)
                rgb = Image.fromarray((arr.clip(0, 1) * 255 + 0.5).astype(np.uint8)).convert("RGB")
            else:
                rgb = im.convert("RGB")
            if on_disk != size:
                rgb = rgb.resize(size, Image.Resampling.BOX)
            arr = np.asarray(rgb, dtype=np.float32) / 255.0
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise InputError(f"cannot decode image ({e})", path,
                         "the file is corrupt or truncated; re-export it") from e
    return arr


def check_size(path: Path, on_disk: tuple[int, int], size: tuple[int, int],
               full_size: tuple[int, int] | None) -> None:
    """Raise InputError unless ``on_disk`` equals the camera size or the pre-downscale size."""
    if on_disk == size or (full_size is not None and on_disk == full_size):
        return
    expect = f"{size[0]}x{size[1]}"
    if full_size is not None and full_size != size:
        expect += f" (or {full_size[0]}x{full_size[1]} before downscale)"
    raise InputError(f"image is {on_disk[0]}x{on_disk[1]} but its camera expects {expect}", path,
                     "use images that match the camera intrinsics (or the right images_<d> "
                     "folder / downscale)")


# ----------------------------------------------------------------------------- distortion
def distort_normalized(xy: Tensor, dist: Tensor) -> Tensor:
    """Apply the OpenCV radial-tangential model to normalised camera coordinates.

    Args:
        xy: [..., 2] undistorted normalised coordinates (x/z, y/z).
        dist: [5] (k1, k2, p1, p2, k3), OpenCV order.

    Returns:
        [..., 2] distorted normalised coordinates (same dtype).

    References:
        OpenCV ``cv::projectPoints``; COLMAP ``OpenCVCameraModel`` (k3 = 0 there).
    """
    k1, k2, p1, p2, k3 = (float(v) for v in dist.tolist())
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return torch.stack([xd, yd], dim=-1)


def undistort_grid(K: Tensor, dist: Tensor, width: int, height: int) -> Tensor:
    """Source pixel coordinates (in the distorted image) of every undistorted pixel centre.

    Pixel centres are at integer + 0.5 (docs/conventions.md). The undistorted image keeps
    the same K and size.

    Returns:
        [H, W, 2] float64 (u, v) in distorted-image pixels.
    """
    K = K.double()
    u = torch.arange(width, dtype=torch.float64) + 0.5
    v = torch.arange(height, dtype=torch.float64) + 0.5
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    x = (uu - K[0, 2]) / K[0, 0]
    y = (vv - K[1, 2]) / K[1, 1]
    xd = distort_normalized(torch.stack([x, y], -1), dist.double())
    return torch.stack([xd[..., 0] * K[0, 0] + K[0, 2], xd[..., 1] * K[1, 1] + K[1, 2]], -1)


def max_distortion_shift(K: Tensor, dist: Tensor, width: int, height: int,
                         samples: int = 64) -> float:
    """Largest |distorted - undistorted| pixel shift, as a fraction of the image diagonal.

    Evaluated on a ``samples`` x ``samples`` grid that includes the image border and corners.
    """
    K = K.double()
    u = torch.linspace(0, width, samples, dtype=torch.float64)
    v = torch.linspace(0, height, samples, dtype=torch.float64)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    x = (uu - K[0, 2]) / K[0, 0]
    y = (vv - K[1, 2]) / K[1, 1]
    xd = distort_normalized(torch.stack([x, y], -1), dist.double())
    du = (xd[..., 0] - x) * K[0, 0]
    dv = (xd[..., 1] - y) * K[1, 1]
    return (du * du + dv * dv).sqrt().max().item() / math.hypot(width, height)


def undistort_image(image: Tensor, K: Tensor, dist: Tensor, cache: dict | None = None) -> Tensor:
    """Resample a distorted [H, W, 3] image to the pinhole camera K (same size).

    Bilinear sampling (``grid_sample``, ``align_corners=False`` = pixel centres at +0.5);
    source positions outside the image take the nearest border pixel.

    Args:
        image: [H, W, 3] float.
        K: [3, 3] pixels (of this image size).
        dist: [5] OpenCV (k1, k2, p1, p2, k3).
        cache: optional dict reused across calls; holds the sampling grid per (K, dist, size).
    """
    H, W = image.shape[:2]
    key = (tuple(K.flatten().tolist()), tuple(dist.tolist()), W, H)
    norm = None if cache is None else cache.get(key)
    if norm is None:
        grid = undistort_grid(K, dist, W, H)
        norm = torch.stack([grid[..., 0] / W * 2 - 1, grid[..., 1] / H * 2 - 1], -1)
        norm = norm[None].float()
        if cache is not None:
            cache.clear()  # one camera at a time is the common case; keep memory bounded
            cache[key] = norm
    out = torch.nn.functional.grid_sample(image.permute(2, 0, 1)[None].float(), norm,
                                          mode="bilinear", padding_mode="border",
                                          align_corners=False)
    return out[0].permute(1, 2, 0).contiguous()


def undistort_image_reference(image: Tensor, K: Tensor, dist: Tensor) -> Tensor:
    """Slow, readable twin of :func:`undistort_image` (explicit bilinear per pixel)."""
    H, W = image.shape[:2]
    grid = undistort_grid(K, dist, W, H)
    img = image.double()
    out = torch.zeros(H, W, 3, dtype=torch.float64)
    for r in range(H):
        for c in range(W):
            # continuous -> index space (pixel centre i + 0.5 is index i), clamped to border
            x = min(max(grid[r, c, 0].item() - 0.5, 0.0), W - 1.0)
            y = min(max(grid[r, c, 1].item() - 0.5, 0.0), H - 1.0)
            x0, y0 = int(math.floor(x)), int(math.floor(y))
            x1, y1 = min(x0 + 1, W - 1), min(y0 + 1, H - 1)
            fx, fy = x - x0, y - y0
            out[r, c] = ((1 - fx) * (1 - fy) * img[y0, x0] + fx * (1 - fy) * img[y0, x1]
                         + (1 - fx) * fy * img[y1, x0] + fx * fy * img[y1, x1])
    return out.to(image.dtype)
