"""Compare recovered camera centres with known ones: a similarity alignment (Umeyama 1991).

Structure from motion recovers poses up to a similarity (scale, rotation, translation);
:func:`similarity_align` finds the one that maps the recovered centres onto the reference in
least squares, :func:`camera_center_rmse` reports the remaining error as a fraction of the
reference cameras' spread (RMS distance from their mean), so it has no units.
"""

from __future__ import annotations

import numpy as np

from instgs.core.checks import InputError

__all__ = ["similarity_align", "camera_center_rmse"]


def similarity_align(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares ``s, R, t`` with ``dst ~ s R src + t`` (Umeyama, PAMI 1991, Eq. 40-42).

    Args:
        src, dst: [N, 3] corresponding points (N >= 3, not collinear).

    Returns:
        (scale, R [3, 3] proper rotation, t [3]).

    Raises:
        InputError: shapes differ or fewer than 3 points.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 3:
        raise InputError(f"need two [N >= 3, 3] point sets, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1
    r = u @ sign @ vt
    var_s = (xs ** 2).sum() / len(src)
    scale = float(np.trace(np.diag(d) @ sign) / max(var_s, 1e-18))
    return scale, r, mu_d - scale * r @ mu_s


def camera_center_rmse(recovered: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(RMSE after :func:`similarity_align`, that RMSE / the reference spread).

    Args:
        recovered, reference: [N, 3] camera centres of the same images.

    Returns:
        (RMSE in reference units, RMSE as a fraction of the RMS distance of the reference
        centres from their mean).
    """
    s, r, t = similarity_align(recovered, reference)
    aligned = s * np.asarray(recovered, np.float64) @ r.T + t
    ref = np.asarray(reference, np.float64)
    rmse = float(np.sqrt(((aligned - ref) ** 2).sum(1).mean()))
    spread = float(np.sqrt(((ref - ref.mean(0)) ** 2).sum(1).mean()))
    return rmse, rmse / max(spread, 1e-18)
