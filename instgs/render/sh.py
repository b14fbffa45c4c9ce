"""Real spherical harmonics of degree 0..3 in the 3DGS convention, for baked colours.

A view-dependent colour is ``rgb(d) = max(0, 0.5 + sum_k Y_k(d) c_k)`` with ``d`` the unit
direction from the camera centre to the Gaussian (``means - campos``), ``c`` of shape
``[N, (degree+1)^2, 3]`` (coefficient 0 is the DC term, stored as ``f_dc`` in a 3DGS PLY) and
``Y_k`` the real SH basis with the signs and constants of 3DGS ``utils/sh_utils.py`` and
gsplat's ``spherical_harmonics`` (so files baked here render the same in other viewers).
:func:`sh_basis` is the vectorised basis; :func:`sh_basis_ref` its term-by-term twin.
"""

from __future__ import annotations

import torch
from torch import Tensor

from instgs.core.checks import InputError, check_shape

__all__ = ["SH_C0", "num_sh_bases", "sh_basis", "sh_basis_ref", "eval_sh", "rgb_to_sh_dc",
           "sh_degree_of"]

SH_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
       0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
       -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def num_sh_bases(degree: int) -> int:
    """``(degree + 1)^2``.

    Raises:
        InputError: degree outside 0..3.
    """
    if degree not in (0, 1, 2, 3):
        raise InputError(f"SH degree must be 0..3, got {degree}")
    return (degree + 1) ** 2


def sh_degree_of(num_bases: int) -> int:
    """The degree whose basis has ``num_bases`` functions (1, 4, 9, 16).

    Raises:
        InputError: not a square of 1..4.
    """
    for d in range(4):
        if (d + 1) ** 2 == num_bases:
            return d
    raise InputError(f"{num_bases} SH coefficients per channel is not a degree 0..3 basis")


def sh_basis(dirs: Tensor, degree: int) -> Tensor:
    """The real SH basis at unit directions.

    Args:
        dirs: [..., 3] unit vectors (x, y, z), any float dtype.
        degree: 0..3.

    Returns:
        [..., (degree+1)^2] same dtype.
    """
    num_sh_bases(degree)
    x, y, z = dirs[..., 0], dirs[..., 1], dirs[..., 2]
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [_C2[0] * xy, _C2[1] * yz, _C2[2] * (2 * zz - xx - yy), _C2[3] * xz,
                _C2[4] * (xx - yy)]
    if degree >= 3:
        out += [_C3[0] * y * (3 * xx - yy), _C3[1] * xy * z, _C3[2] * y * (4 * zz - xx - yy),
                _C3[3] * z * (2 * zz - 3 * xx - 3 * yy), _C3[4] * x * (4 * zz - xx - yy),
                _C3[5] * z * (xx - yy), _C3[6] * x * (xx - 3 * yy)]
    return torch.stack(out, dim=-1)


def sh_basis_ref(direction: tuple[float, float, float], degree: int) -> list[float]:
    """Reference twin of :func:`sh_basis` for one direction, term by term (tests only)."""
    x, y, z = direction
    vals = [SH_C0]
    if degree >= 1:
        vals += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        vals += [_C2[0] * x * y, _C2[1] * y * z, _C2[2] * (2 * z * z - x * x - y * y),
                 _C2[3] * x * z, _C2[4] * (x * x - y * y)]
    if degree >= 3:
        vals += [_C3[0] * y * (3 * x * x - y * y), _C3[1] * x * y * z,
                 _C3[2] * y * (4 * z * z - x * x - y * y),
                 _C3[3] * z * (2 * z * z - 3 * x * x - 3 * y * y),
                 _C3[4] * x * (4 * z * z - x * x - y * y), _C3[5] * z * (x * x - y * y),
                 _C3[6] * x * (x * x - 3 * y * y)]
    return vals


def eval_sh(coeffs: Tensor, means: Tensor, campos: Tensor) -> Tensor:
    """View-dependent RGB of N Gaussians seen from ``campos`` (3DGS ``SH2RGB`` + 0.5, >= 0).

    Args:
        coeffs: [N, K, 3] SH coefficients, K = (degree+1)^2 (K = 1: colour constant).
        means: [N, 3] centres, scene units. campos: [3] camera centre.

    Returns:
        [N, 3] colours, clamped below at 0 (not above, as 3DGS).

    Raises:
        ShapeError: shapes disagree. InputError: K is not a degree 0..3 basis.
    """
    dims = check_shape("coeffs", coeffs, "N K 3")
    check_shape("means", means, "N 3", N=dims["N"])
    degree = sh_degree_of(dims["K"])
    dirs = torch.nn.functional.normalize(means - campos.to(means), dim=-1)
    basis = sh_basis(dirs, degree).to(coeffs.dtype)  # [N, K]
    return (torch.einsum("nk,nkc->nc", basis, coeffs) + 0.5).clamp(min=0.0)


def rgb_to_sh_dc(rgb: Tensor) -> Tensor:
    """The DC coefficient of a constant colour: ``(rgb - 0.5) / C0``."""
    return (rgb - 0.5) / SH_C0
