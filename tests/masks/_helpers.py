"""Small synthetic scenes for the masks tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_scene(root: Path, n: int, h: int = 48, w: int = 64, folder: str = "images",
               ext: str = ".png", seed: int = 0) -> Path:
    """A scene with ``n`` images of coloured rectangles on a flat background."""
    rng = np.random.default_rng(seed)
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a = np.empty((h, w, 3), np.uint8)
        a[:] = rng.integers(0, 256, 3)
        for _ in range(3):
            y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
            a[y0: y0 + h // 3, x0: x0 + w // 3] = rng.integers(0, 256, 3)
        a = np.clip(a.astype(int) + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(d / f"frame_{i:03d}{ext}")
    return root
