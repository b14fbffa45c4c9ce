"""2D masks per image (SAM / Felzenszwalb) and per-mask CLIP features, LangSplat layout.

``instgs.masks.run(data, cfg) -> Path`` is the stage (what ``instgs masks`` does).

The reader/writer (:mod:`instgs.masks.io`) is numpy-only; SAM, CLIP and scikit-image are
imported by the functions that need them.
"""

from __future__ import annotations

from .io import (FEATURES_DIRNAME, LEVEL_NAMES, MaskLevel, level_index, list_feature_stems,
                 read_language_features, read_level, read_masks, write_language_features)
from .stage import MasksConfig, run

__all__ = ["run", "MasksConfig", "FEATURES_DIRNAME", "LEVEL_NAMES", "MaskLevel", "level_index",
           "list_feature_stems", "read_language_features", "read_level", "read_masks",
           "write_language_features"]
