"""instgs: 3D scene understanding with Gaussian Splatting (InstanceGaussian and a 3D-input track)."""

from __future__ import annotations

__version__ = "0.1.0"
