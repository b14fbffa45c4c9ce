"""``instgs train``: a preset or config file, then tyro flags, into a
:class:`~instgs.train.config.TrainConfig`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence

from instgs.core.checks import InputError
from instgs.train.config import TrainConfig

__all__ = ["TrainCommand", "pop_option"]


def pop_option(args: list[str], flag: str, prog: str) -> str | None:
    """Remove ``flag VALUE`` (or ``flag=VALUE``) from ``args``; return VALUE or None.

    Raises:
        InputError: the flag is given without a value.
    """
    for k, a in enumerate(args):
        if a == flag:
            if k + 1 >= len(args) or args[k + 1].startswith("--"):
                raise InputError(f"{flag} needs a value", None, f"see `{prog} --help`")
            value = args[k + 1]
            del args[k:k + 2]
            return value
        if a.startswith(flag + "="):
            del args[k]
            return a.split("=", 1)[1]
    return None


def _flag_value(args: Sequence[str], flag: str) -> str | None:
    for k, a in enumerate(args):
        if a == flag and k + 1 < len(args):
            return args[k + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _help_text(doc: str) -> str:
    from instgs.core.configs import configs_dir
    from instgs.train.config import train_presets

    lines = [doc, "", f"Presets (--preset NAME; files in {configs_dir() / 'train'}):"]
    lines += [f"  {k}: {v}" for k, v in train_presets().items()]
    lines += ["", "--config FILE reads a YAML file of settings (nested like the flags: "
              "`model: {ins_feat_dim: 16}`); flags given after it override it. With --resume "
              "the run's own settings are the defaults."]
    return "\n".join(lines)


@dataclass
class TrainCommand:
    """Train a Semantic-Scaffold-GS scene. ``--preset NAME`` or ``--config FILE`` picks the
    defaults; any other flag overrides them."""

    config: TrainConfig

    @classmethod
    def parse_cli(cls, args: Sequence[str], prog: str = "instgs train") -> TrainCommand:
        """Parse ``[--preset NAME | --config FILE] [TrainConfig flags...]``.

        With ``--resume`` and an existing ``--run-dir``, the run's ``config.json`` is the
        base instead (only runtime settings may then differ, see
        :func:`instgs.run.check_resumable`).

        Raises:
            InputError: unknown preset, unreadable config file, both given.
            UsageError: tyro rejected a flag.
        """
        from instgs._cli import tyro_parse
        from instgs.core.configs import load_config_file
        from instgs.train.config import train_preset

        args = list(args)
        preset = pop_option(args, "--preset", prog)
        config = pop_option(args, "--config", prog)
        if preset and config:
            raise InputError("--preset and --config both given", None, "pass one of them")
        if config:
            base = load_config_file(Path(config), TrainConfig)
        else:
            base = train_preset(preset or "default")
        run_dir = _flag_value(args, "--run-dir")
        if "--resume" in args and run_dir and not (preset or config):
            from instgs.run import RunPaths, read_run_config

            if RunPaths(Path(run_dir)).config.is_file():
                base = read_run_config(run_dir)
        cfg = tyro_parse(TrainConfig, args, prog, default=base,
                         description=_help_text(cls.__doc__ or ""))
        return cls(cfg)

    def run(self) -> Path:
        """Train; return the run folder."""
        from instgs.train.trainer import train

        return train(self.config)

