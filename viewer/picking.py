"""Which Gaussian a click ray hits: ray picking against the baked Gaussians.

viser's click callbacks give a ray (origin, direction) and no splat index, so the viewer
finds the hit itself: a Gaussian is *crossed* by the ray when the ray's smallest Mahalanobis
distance to its centre is at most ``sigmas`` (the ray passes through its ``sigmas``-sigma
ellipsoid) and its opacity is at least ``min_opacity``; the hit is the crossed Gaussian
whose closest point lies nearest the camera (smallest ray parameter, in front of the
origin). For ray ``o + t d`` and ``A = Sigma^-1``, the closest point is at
``t* = d^T A (mu - o) / (d^T A d)`` and the squared distance there is
``(mu - o)^T A (mu - o) - (d^T A (mu - o))^2 / (d^T A d)``. :func:`pick_ref` is the loop twin.
"""

from __future__ import annotations

import numpy as np

__all__ = ["precision_matrices", "pick", "pick_ref"]


def precision_matrices(quats: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """``Sigma^-1 = R diag(1 / s^2) R^T`` of N Gaussians.

    Args:
        quats: [N, 4] unit quaternions, wxyz. scales: [N, 3] standard deviations (> 0).

    Returns:
        [N, 3, 3] float64.
    """
    from .scene import rotation_matrices

    r = rotation_matrices(quats)
    inv = 1.0 / np.maximum(np.asarray(scales, np.float64), 1e-9) ** 2
    return np.einsum("nij,nj,nkj->nik", r, inv, r)


def pick(origin, direction, means: np.ndarray, precisions: np.ndarray,
         opacities: np.ndarray, sigmas: float = 2.0, min_opacity: float = 0.1,
         candidates: np.ndarray | None = None) -> int:
    """Index of the Gaussian the ray hits first (module docstring), or -1.

    Args:
        origin: [3] ray origin, scene units. direction: [3] ray direction (any length).
        means: [N, 3]. precisions: [N, 3, 3] inverse covariances. opacities: [N] in [0, 1].
        sigmas: ellipsoid size, in standard deviations.
        min_opacity: fainter Gaussians are never hit.
        candidates: [N] bool, Gaussians that may be hit (visible ones); default all.

    Returns:
        The Gaussian's row, or -1 when the ray crosses none.
    """
    o = np.asarray(origin, np.float64)
    d = np.asarray(direction, np.float64)
    d = d / max(np.linalg.norm(d), 1e-12)
    ok = opacities >= min_opacity
    if candidates is not None:
        ok &= candidates
    # cheap prefilter: centres within a cylinder of the largest possible radius
    rel = means - o
    t = rel @ d
    perp = np.linalg.norm(rel - t[:, None] * d, axis=1)
    reach = sigmas / np.sqrt(np.maximum(np.linalg.eigvalsh(precisions)[:, 0], 1e-18))
    idx = np.flatnonzero(ok & (perp <= reach) & (t + reach > 0))
    if not len(idx):
        return -1
    a = precisions[idx]
    r = rel[idx]
    ad = a @ d
    dad = ad @ d
    dar = (ad * r).sum(1)
    rar = np.einsum("ni,nij,nj->n", r, a, r)
    tstar = dar / np.maximum(dad, 1e-18)
    m2 = rar - dar ** 2 / np.maximum(dad, 1e-18)
    hit = (m2 <= sigmas ** 2) & (tstar > 0)
    if not hit.any():
        return -1
    best = np.flatnonzero(hit)[np.argmin(tstar[hit])]
    return int(idx[best])


def pick_ref(origin, direction, means, precisions, opacities, sigmas: float = 2.0,
             min_opacity: float = 0.1, samples: int = 4000) -> int:
    """Loop twin of :func:`pick` without the closed form: for each Gaussian, march the ray
    in ``samples`` steps out to twice its centre's distance and take the sample of smallest
    Mahalanobis distance (tests only)."""
    o = np.asarray(origin, np.float64)
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    best, best_t = -1, np.inf
    for i in range(len(means)):
        if opacities[i] < min_opacity:
            continue
        ts = np.linspace(0.0, 2.0 * np.linalg.norm(means[i] - o) + 1e-9, samples)
        x = o + ts[:, None] * d - means[i]
        m2 = np.einsum("ni,ij,nj->n", x, precisions[i], x)
        j = int(np.argmin(m2))
        if 0 < j and m2[j] <= sigmas ** 2 and ts[j] < best_t:
            best, best_t = i, ts[j]
    return best
