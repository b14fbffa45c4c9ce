"""Point-cloud PLY reading for scene initialisation (via ``plyfile``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from instgs.core.checks import InputError

__all__ = ["read_ply_points"]

_COLOR_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green",
                                                         "diffuse_blue"))


def read_ply_points(path: str | Path) -> tuple[Tensor, Tensor | None]:
    """Read the ``vertex`` element of a PLY file as points and (optional) colours.

    Vertex order is preserved exactly (the ScanNet protocol indexes predictions by vertex).
    Faces and other elements are ignored.

    Args:
        path: a binary or ASCII PLY file with ``x, y, z`` vertex properties and optionally
            ``red, green, blue`` (uchar 0-255, ushort 0-65535, or float in [0, 1]).

    Returns:
        ``(points, points_rgb)``: points [P, 3] float32 in the file's world units;
        points_rgb [P, 3] float32 in [0, 1], or None when the file has no colours.

    Raises:
        InputError: the file is missing, not a PLY, truncated, has no ``vertex`` element,
            no ``x/y/z``, zero vertices, or non-finite coordinates.
    """
    from plyfile import PlyData

    path = Path(path)
    if not path.is_file():
        raise InputError("point cloud file not found", path,
                         "pass a folder that contains the PLY or regenerate it")
    try:
        ply = PlyData.read(str(path))
        names = [el.name for el in ply.elements]
        if "vertex" not in names:
            raise InputError(f"PLY has no 'vertex' element (elements: {names})", path,
                             "write the points as a 'vertex' element with x, y, z")
        vertex = ply["vertex"]
        props = vertex.data.dtype.names or ()
        if not {"x", "y", "z"} <= set(props):
            raise InputError(f"PLY vertices have no x/y/z properties (found {list(props)})",
                             path, "write float x, y, z vertex properties")
        xyz = np.stack([np.asarray(vertex[k], dtype=np.float64) for k in "xyz"], axis=1)
        rgb = None
        for cnames in _COLOR_NAMES:
            if set(cnames) <= set(props):
                raw = np.stack([np.asarray(vertex[k]) for k in cnames], axis=1)
                rgb = _colors_to_unit(raw)
                break
    except InputError:
        raise
    except Exception as e:  # plyfile raises PlyParseError, ValueError, EOFError, struct.error...
        raise InputError(f"cannot parse PLY ({type(e).__name__}: {e})", path,
                         "the file is corrupt or truncated; regenerate it") from e
    if xyz.shape[0] == 0:
        raise InputError("PLY has 0 vertices", path, "regenerate the point cloud")
    if not np.isfinite(xyz).all():
        bad = int((~np.isfinite(xyz).all(axis=1)).sum())
        raise InputError(f"{bad} vertices have NaN/Inf coordinates", path,
                         "remove or repair those vertices")
    points = torch.from_numpy(xyz.astype(np.float32))
    return points, (None if rgb is None else torch.from_numpy(rgb))


def _colors_to_unit(raw: np.ndarray) -> np.ndarray:
    """Integer colours -> [0, 1] by their dtype's max; float colours are clipped to [0, 1]."""
    if np.issubdtype(raw.dtype, np.integer):
        scale = 255.0 if raw.dtype.itemsize == 1 else float(np.iinfo(raw.dtype).max)
        if raw.dtype.itemsize > 1 and raw.max(initial=0) <= 255:
            scale = 255.0  # int colours stored in a wider type but 0-255 valued
        return (raw.astype(np.float64) / scale).clip(0, 1).astype(np.float32)
    return np.nan_to_num(raw.astype(np.float64), nan=0.0).clip(0, 1).astype(np.float32)
