"""The standard 3DGS PLY (graphdeco-inria ``GaussianModel.save_ply``), read and written with
plyfile.

One ``vertex`` element, binary little-endian float32 properties in this order::

    x y z nx ny nz f_dc_0..2 f_rest_0..(3(K-1)-1) opacity scale_0..2 rot_0..3 [instance_id]

``nx ny nz`` are zeros; ``opacity`` is the logit; ``scale_*`` are logs; ``rot_*`` a quaternion,
w first; ``f_rest`` is channel-major (the K-1 higher-order coefficients of R, then G, then
B), so the number of ``f_rest`` properties (0, 9, 24, 45) gives the SH degree (0..3). instgs
adds an int32 ``instance_id`` (-1 = none), which other viewers ignore. :func:`read_ply`
reads any file of this layout (ours or another trainer's; ``instance_id`` optional).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from instgs.core.artifacts import atomic_path
from instgs.core.checks import InputError

from .splats import Splats

__all__ = ["write_ply", "read_ply", "ply_bytes"]

_REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1",
             "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def _vertex_array(s: Splats) -> np.ndarray:
    n, k = len(s), s.sh.shape[1]
    rest = s.sh[:, 1:].permute(0, 2, 1).reshape(n, 3 * (k - 1)).numpy()  # channel-major
    cols = ([("x", "f4"), ("y", "f4"), ("z", "f4"), ("nx", "f4"), ("ny", "f4"), ("nz", "f4")]
            + [(f"f_dc_{i}", "f4") for i in range(3)]
            + [(f"f_rest_{i}", "f4") for i in range(rest.shape[1])]
            + [("opacity", "f4")] + [(f"scale_{i}", "f4") for i in range(3)]
            + [(f"rot_{i}", "f4") for i in range(4)] + [("instance_id", "i4")])
    v = np.zeros(n, dtype=cols)
    for i, c in enumerate("xyz"):
        v[c] = s.means[:, i].numpy()
    for i in range(3):
        v[f"f_dc_{i}"] = s.sh[:, 0, i].numpy()
        v[f"scale_{i}"] = np.log(np.maximum(s.scales[:, i].numpy(), 1e-12))
    for i in range(rest.shape[1]):
        v[f"f_rest_{i}"] = rest[:, i]
    v["opacity"] = _logit(s.opacities.numpy().astype(np.float64))
    for i in range(4):
        v[f"rot_{i}"] = s.quats[:, i].numpy()
    v["instance_id"] = s.instance_ids.numpy().astype(np.int32)
    return v


def ply_bytes(splats: Splats) -> bytes:
    """The PLY file of ``splats`` as bytes (see the module docstring)."""
    import io

    from plyfile import PlyData, PlyElement

    buf = io.BytesIO()
    PlyData([PlyElement.describe(_vertex_array(splats), "vertex")], byte_order="<").write(buf)
    return buf.getvalue()


def write_ply(path: str | Path, splats: Splats) -> Path:
    """Write ``splats`` as a standard 3DGS PLY (+ ``instance_id``), atomically.

    Args:
        path: destination; its folder is created.
        splats: :class:`~instgs.export.splats.Splats`.

    Returns:
        ``path``.

    Raises:
        InputError: non-finite values (the file would not open elsewhere), or a folder that
            cannot be written.
    """
    path = Path(path)
    _check_finite(splats, path)
    data = ply_bytes(splats)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as e:
        raise InputError(f"cannot write ({e.strerror})", path,
                         "choose a writable --out folder") from e
    return path


def _check_finite(s: Splats, path: Path) -> None:
    bad = ~(torch.isfinite(s.means).all(1) & torch.isfinite(s.scales).all(1)
            & torch.isfinite(s.quats).all(1) & torch.isfinite(s.opacities)
            & torch.isfinite(s.sh).all(2).all(1))
    if bool(bad.any()):
        raise InputError(f"{int(bad.sum())} Gaussians hold NaN/Inf values", path,
                         "re-bake the run; report it if it persists")


def read_ply(path: str | Path) -> Splats:
    """Read a standard 3DGS PLY into :class:`~instgs.export.splats.Splats`.

    Scales are exponentiated, opacities passed through a sigmoid, quaternions normalised
    (wxyz kept); ``f_rest`` is read channel-major. ``instance_id`` is read when present
    (-1 otherwise); ``child_ids`` is the row.

    Raises:
        InputError: missing or unreadable file, no ``vertex`` element, missing required
            properties (listed), an ``f_rest`` count that is not 0/9/24/45, non-finite values.
    """
    from plyfile import PlyData

    path = Path(path)
    if not path.is_file():
        raise InputError("PLY file not found", path, "pass an existing .ply file")
    try:
        ply = PlyData.read(str(path))
    except Exception as e:  # noqa: BLE001 - plyfile raises many types for bad files
        raise InputError(f"cannot read as PLY ({type(e).__name__}: {e})", path,
                         "pass a binary or ASCII 3DGS .ply file") from e
    if "vertex" not in [el.name for el in ply.elements]:
        raise InputError("no 'vertex' element", path, "pass a 3DGS PLY (one vertex per "
                         "Gaussian)")
    v = ply["vertex"].data
    names = v.dtype.names or ()
    missing = [p for p in _REQUIRED if p not in names]
    if missing:
        raise InputError(f"not a 3DGS PLY: missing properties {missing}", path,
                         "export it with a 3DGS trainer (x y z f_dc_* opacity scale_* rot_*)")
    n_rest = sum(1 for p in names if p.startswith("f_rest_"))
    if n_rest not in (0, 9, 24, 45):
        raise InputError(f"{n_rest} f_rest properties is not an SH degree 0..3 layout", path,
                         "the file has 0, 9, 24 or 45 f_rest_* properties when valid")
    return _splats_from(v, names, n_rest, path)


def _splats_from(v, names, n_rest: int, path: Path) -> Splats:
    def col(name):
        return np.asarray(v[name], np.float64)

    n = len(v)
    k = n_rest // 3 + 1
    sh = np.zeros((n, k, 3), np.float64)
    for c in range(3):
        sh[:, 0, c] = col(f"f_dc_{c}")
        for j in range(k - 1):
            sh[:, 1 + j, c] = col(f"f_rest_{c * (k - 1) + j}")
    means = np.stack([col(c) for c in "xyz"], 1)
    scales = np.exp(np.stack([col(f"scale_{i}") for i in range(3)], 1))
    quats = np.stack([col(f"rot_{i}") for i in range(4)], 1)
    quats = quats / np.maximum(np.linalg.norm(quats, axis=1, keepdims=True), 1e-12)
    opac = 1.0 / (1.0 + np.exp(-col("opacity")))
    ids = (np.asarray(v["instance_id"], np.int32) if "instance_id" in names
           else np.full(n, -1, np.int32))
    for name, arr in (("x/y/z", means), ("scale_*", scales), ("rot_*", quats),
                      ("opacity", opac), ("f_dc/f_rest", sh)):
        if not np.isfinite(arr).all():
            raise InputError(f"{name} holds NaN/Inf values", path, "repair or re-export the "
                             "file")
    t = torch.from_numpy
    return Splats(t(means).float(), t(quats).float(), t(scales).float(), t(opac).float(),
                  t(sh).float(), t(ids), torch.arange(n, dtype=torch.int64))
