"""``python -m instgs.masks --data SCENE``."""

from __future__ import annotations

from instgs.masks.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
