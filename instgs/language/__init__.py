"""Open-vocabulary language features: CLIP wrapper, 2D-3D association, text queries.

Submodules are imported explicitly (``from instgs.language.clip import load_clip``); nothing
is imported eagerly here, so ``import instgs.language`` never pulls in open_clip.
"""

from __future__ import annotations
