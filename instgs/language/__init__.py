"""Open-vocabulary language features: 2D-3D association and text queries.

``instgs.language.run(run_dir, cfg) -> Path`` is the stage (what ``instgs language RUN``
does). Nothing here imports open_clip; :mod:`instgs.language.query` loads it when a text has
to be encoded.
"""

from __future__ import annotations

from .associate import LanguageConfig
from .stage import run

__all__ = ["run", "LanguageConfig"]
