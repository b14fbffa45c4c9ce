"""Write :class:`~instgs.export.splats.Splats` in the formats other tools open.

=================  ===================================================  =====================
``--format``       file                                                 written by
=================  ===================================================  =====================
``ply``            standard 3DGS PLY + ``instance_id`` (SH 0..3)         plyfile (:mod:`.ply`)
``compressed-ply`` SuperSplat compressed PLY (``.compressed.ply``)       gsplat ``export_splats``
``splat``          antimatter15 ``.splat`` (32 bytes/splat, no SH)       gsplat ``export_splats``
``spz``            Niantic SPZ v3 (gzip)                                 gsply ``write_spz``
=================  ===================================================  =====================

gsplat's own PLY writer omits ``nx ny nz`` and cannot carry ``instance_id``, so plain PLY goes
through plyfile. gsplat's compressed PLY drops splats below opacity 1/255; the export stage
removes those before any format (``--min-opacity``), so every format holds the same splats.
Every write is atomic (a temporary file in the same folder, then a rename).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from instgs.core.artifacts import atomic_path
from instgs.core.checks import InputError

from .ply import _check_finite, write_ply
from .splats import Splats

__all__ = ["FORMATS", "SUFFIX", "write_splats"]

Format = Literal["ply", "compressed-ply", "splat", "spz"]
FORMATS: tuple[str, ...] = ("ply", "compressed-ply", "splat", "spz")
SUFFIX = {"ply": ".ply", "compressed-ply": ".compressed.ply", "splat": ".splat",
          "spz": ".spz"}


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.double().clamp(1e-6, 1 - 1e-6)
    return (p.log() - (-p).log1p()).float()


def _gsplat_bytes(s: Splats, fmt: str) -> bytes:
    from gsplat.exporter import export_splats

    return export_splats(s.means, s.scales.clamp(min=1e-12).log(), s.quats,
                         _logit(s.opacities), s.sh[:, :1], s.sh[:, 1:],
                         format={"compressed-ply": "ply_compressed", "splat": "splat"}[fmt])


def _write_spz(path: Path, s: Splats) -> None:
    try:
        import gsply
    except ImportError as e:
        raise InputError("SPZ export needs the gsply package", path,
                         "pip install 'gsply[spz]' (or export --format ply)") from e
    from gsply.gsdata import create_ply_format

    data = gsply.GSData(means=s.means.numpy(), scales=s.scales.clamp(min=1e-12).log().numpy(),
                        quats=s.quats.numpy(), opacities=_logit(s.opacities).numpy(),
                        sh0=s.sh[:, 0].numpy(), shN=s.sh[:, 1:].numpy(),
                        _format=create_ply_format(s.sh_degree))
    with atomic_path(path) as tmp:
        gsply.write_spz(tmp, data, version=3)


def write_splats(path: str | Path, splats: Splats, fmt: Format = "ply") -> Path:
    """Write ``splats`` to ``path`` in ``fmt`` (table in the module docstring), atomically.

    Args:
        path: destination file (its folder is created).
        splats: the Gaussians.
        fmt: ``ply`` | ``compressed-ply`` | ``splat`` | ``spz``.

    Returns:
        ``path``.

    Raises:
        InputError: unknown format, non-finite values, an unwritable folder, gsply missing
            for SPZ.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}", None,
                         f"use one of {', '.join(FORMATS)}")
    _check_finite(splats, path)
    try:
        if fmt == "ply":
            return write_ply(path, splats)
        if fmt == "spz":
            _write_spz(path, splats)
            return path
        data = _gsplat_bytes(splats, fmt)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as e:
        raise InputError(f"cannot write ({e.strerror or e})", path,
                         "choose a writable --out folder") from e
    return path
