"""Colours shared by every picture of instgs: instance colours and a heat map.

:func:`instance_colors` gives instance ``i`` the same colour everywhere (``instgs render``,
the viewer, exported previews): a fixed table of 20 well-separated colours (Glasbey-style,
dark and grey tones removed), then golden-ratio hues for larger ids. Unassigned (-1) is
grey. :func:`heatmap` is the turbo colour map (Mikhailov, Google 2019; the published
polynomial approximation), used for query relevancy and depth.
"""

from __future__ import annotations

import colorsys

import numpy as np

__all__ = ["instance_colors", "heatmap", "UNASSIGNED_COLOR"]

UNASSIGNED_COLOR = (0.5, 0.5, 0.5)

_TABLE = np.array([
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (255, 255, 255),
], np.float32) / 255.0


def instance_colors(ids: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] for instance ids.

    Args:
        ids: [...] int instance ids; negative = unassigned.

    Returns:
        [..., 3] float32.
    """
    ids = np.asarray(ids, np.int64)
    out = np.empty(ids.shape + (3,), np.float32)
    flat, res = ids.reshape(-1), out.reshape(-1, 3)
    table = flat < len(_TABLE)
    res[:] = UNASSIGNED_COLOR
    ok = table & (flat >= 0)
    res[ok] = _TABLE[flat[ok]]
    big = np.flatnonzero(~table)
    for j in big:
        h = (flat[j] * 0.6180339887498949) % 1.0
        res[j] = colorsys.hsv_to_rgb(h, 0.75, 0.95)
    return out


def heatmap(values: np.ndarray, vmin: float | None = None, vmax: float | None = None
            ) -> np.ndarray:
    """Turbo colour map of ``values`` scaled from [vmin, vmax] (default: their range).

    Args:
        values: [...] float; NaN maps to black.
        vmin, vmax: the range mapped to the ends of the map.

    Returns:
        [..., 3] float32 RGB in [0, 1].
    """
    v = np.asarray(values, np.float64)
    finite = np.isfinite(v)
    lo = float(np.min(v[finite])) if vmin is None and finite.any() else (vmin or 0.0)
    hi = float(np.max(v[finite])) if vmax is None and finite.any() else (vmax or 1.0)
    x = np.clip((v - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    x = np.where(finite, x, 0.0)
    r = 0.13572138 + x * (4.61539260 + x * (-42.66032258 + x * (132.13108234 + x * (
        -152.94239396 + x * 59.28637943))))
    g = 0.09140261 + x * (2.19418839 + x * (4.84296658 + x * (-14.18503333 + x * (
        4.27729857 + x * 2.82956604))))
    b = 0.10667330 + x * (12.64194608 + x * (-60.58204836 + x * (110.36276771 + x * (
        -89.90310912 + x * 27.34824973))))
    out = np.clip(np.stack([r, g, b], -1), 0.0, 1.0).astype(np.float32)
    out[~finite] = 0.0
    return out
