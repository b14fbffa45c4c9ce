"""``instgs train``: presets + tyro overrides for :class:`~instgs.train.config.TrainConfig`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from instgs.train.config import PRESETS, TrainConfig

__all__ = ["TrainCommand"]


@dataclass
class TrainCommand:
    """Train a Semantic-Scaffold-GS scene. ``--preset NAME`` picks the defaults
    (``default``, ``scannet``, ``appearance``); any other flag overrides them."""

    config: TrainConfig

    @classmethod
    def parse_cli(cls, args: Sequence[str], prog: str = "instgs train") -> "TrainCommand":
        """Parse ``[--preset NAME] [TrainConfig flags...]``.

        Raises:
            SystemExit: on an unknown preset (the message lists the known ones).
        """
        import tyro

        args = list(args)
        preset = "default"
        for flag in ("--preset",):
            if flag in args:
                k = args.index(flag)
                if k + 1 >= len(args):
                    raise SystemExit(f"{prog}: --preset needs a name: {', '.join(PRESETS)}")
                preset = args[k + 1]
                del args[k:k + 2]
        if preset not in PRESETS:
            raise SystemExit(f"{prog}: unknown preset {preset!r}. Known: "
                             + "; ".join(f"{k} ({v[0]})" for k, v in PRESETS.items()))
        desc = (cls.__doc__ or "") + "\n\nPresets:\n" + "\n".join(
            f"  {k}: {v[0]}" for k, v in PRESETS.items())
        cfg = tyro.cli(TrainConfig, default=PRESETS[preset][1], args=args, prog=prog,
                       description=desc)
        return cls(cfg)

    def run(self) -> Path:
        from instgs.train.trainer import train

        return train(self.config)


def with_overrides(cfg: TrainConfig, **kw) -> TrainConfig:
    """``dataclasses.replace`` for nested configs: ``model__ins_feat_dim=0`` style keys."""
    nested: dict[str, dict] = {}
    flat = {}
    for k, v in kw.items():
        if "__" in k:
            a, b = k.split("__", 1)
            nested.setdefault(a, {})[b] = v
        else:
            flat[k] = v
    for a, sub in nested.items():
        flat[a] = dataclasses.replace(getattr(cfg, a), **sub)
    return dataclasses.replace(cfg, **flat)
