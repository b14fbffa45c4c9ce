"""Config files and presets: plain YAML <-> nested frozen dataclasses, with no code executed.

The named presets live as files in the top-level ``configs/`` folder (shipped in the wheel as
``instgs/_configs``), one file per preset, grouped by command::

    configs/train/default.yaml        instgs train --preset default
    configs/train/scannet.yaml        instgs train --preset scannet   (= --config <that file>)
    configs/pointcloud/hais-tiny.yaml instgs-pc train --preset hais-tiny

A file holds only the values that differ from the dataclass defaults (the released-code
defaults documented on each field); its leading ``#`` comment block is the preset's
description shown by ``--help``. The files are the one source of truth for presets: the code
reads them (:func:`load_preset`) and ``tests/test_configs.py`` checks every file against the
dataclasses. YAML is read with ``yaml.safe_load``, so a config file cannot run code.

The same builder (:func:`from_dict`) reads a run's ``config.json`` back, refusing unknown
keys and values of the wrong type with an :class:`~instgs.core.checks.InputError` that names
the file and the key.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from .checks import InputError

__all__ = ["configs_dir", "list_presets", "preset_path", "load_preset", "load_config_file",
           "from_dict", "preset_description", "to_yaml"]

T = TypeVar("T")


def configs_dir() -> Path:
    """The preset folder: ``$INSTGS_CONFIGS``, the source checkout's ``configs/``, or the
    wheel's ``instgs/_configs``."""
    env = os.environ.get("INSTGS_CONFIGS")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2] / "configs"
    if repo.is_dir():
        return repo
    return Path(__file__).resolve().parents[1] / "_configs"


def list_presets(group: str) -> dict[str, Path]:
    """Preset name -> file for one group (``train``, ``pointcloud``), sorted by name."""
    folder = configs_dir() / group
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def preset_description(path: str | Path) -> str:
    """The first paragraph of a config file's leading ``#`` comment block, on one line."""
    lines = []
    for line in Path(path).read_text().splitlines():
        text = line.lstrip("#").strip()
        if not line.startswith("#") or (not text and lines):
            break
        if text:
            lines.append(text)
    return " ".join(lines)


def preset_path(group: str, name: str) -> Path:
    """The file of preset ``name`` in ``group``.

    Raises:
        InputError: unknown preset (the message lists the known ones).
    """
    presets = list_presets(group)
    if name not in presets:
        raise InputError(f"unknown preset {name!r}; known: {', '.join(presets) or '(none)'}",
                         configs_dir() / group, "pick one of the known presets or pass "
                         "--config FILE")
    return presets[name]


def _read_yaml(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise InputError("config file not found", path, "pass an existing .yaml file")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(f"not valid YAML ({str(e).splitlines()[0]})", path,
                         "fix the syntax (key: value, two-space indents)") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping of settings, got {type(data).__name__}", path,
                         "write one `key: value` per line")
    return data


def load_config_file(path: str | Path, cls: type[T], base: T | None = None) -> T:
    """Build a ``cls`` config from a YAML file, on top of ``base`` (default: ``cls()``).

    Args:
        path: YAML file of (nested) settings; keys are field names (``-`` or ``_``).
        cls: a dataclass type (e.g. :class:`instgs.train.config.TrainConfig`).
        base: values for the keys the file does not set.

    Returns:
        The config instance.

    Raises:
        InputError: missing file, bad YAML, unknown keys, values of the wrong type.
    """
    path = Path(path)
    return from_dict(cls, _read_yaml(path), path, base=base)


def load_preset(group: str, name: str, cls: type[T]) -> T:
    """The preset ``name`` of ``group`` as a ``cls`` (see :func:`load_config_file`)."""
    return load_config_file(preset_path(group, name), cls)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(tp: Any, value: Any, where: str, path: Path | None) -> Any:
    """Check / convert one plain value to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    def bad(want: str):
        return InputError(f"{where}: expected {want}, got {value!r}", path,
                          "fix the value or drop the key to use the default")

    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where, path)
            except InputError as e:
                errors.append(e)
        raise bad(" or ".join(getattr(a, "__name__", str(a)) for a in args))
    if origin is Literal:
        if value in args:
            return value
        raise bad(f"one of {list(args)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad(f"a mapping of {tp.__name__} settings")
        return from_dict(tp, value, path, prefix=f"{where}.")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise bad(f"a list of {len(args)} values")
            return tuple(_coerce(a, v, f"{where}[{i}]", path)
                         for i, (a, v) in enumerate(zip(args, value)))
        inner = args[0] if args else Any
        out = [_coerce(inner, v, f"{where}[{i}]", path) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise bad("a mapping")
        return dict(value)
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise bad("a path")
        return Path(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    return value


def from_dict(cls: type[T], data: dict, path: str | Path | None = None, *,
              base: T | None = None, prefix: str = "") -> T:
    """Rebuild a (nested) dataclass from plain data, refusing anything it does not know.

    Args:
        cls: dataclass type. data: plain mapping (JSON / YAML); keys may use ``-`` for ``_``.
        path: the file the data came from (named in errors).
        base: instance whose values fill the keys ``data`` lacks (default ``cls()``).
        prefix: dotted path of ``cls`` inside its parent (for messages).

    Returns:
        A ``cls`` instance.

    Raises:
        InputError: unknown keys (the message lists the known ones), wrong value types.
    """
    path = None if path is None else Path(path)
    if not isinstance(data, dict):
        raise InputError(f"{prefix or cls.__name__}: expected a mapping, got "
                         f"{type(data).__name__}", path)
    names = {f.name: f for f in dataclasses.fields(cls) if f.init}
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise InputError(f"unknown setting(s) {[prefix + k for k in unknown]} for "
                         f"{cls.__name__}; known: {sorted(names)}", path,
                         "remove them or use the instgs version that wrote the file")
    hints = _hints(cls)
    base = cls() if base is None else base
    kw = {}
    for k, v in data.items():
        tp = hints[k]
        if dataclasses.is_dataclass(tp) and isinstance(v, dict):
            kw[k] = from_dict(tp, v, path, base=getattr(base, k), prefix=f"{prefix}{k}.")
        else:
            kw[k] = _coerce(tp, v, prefix + k, path)
    return dataclasses.replace(base, **kw)


def to_yaml(cfg: Any, base: Any | None = None) -> str:
    """The settings of ``cfg`` that differ from ``base`` (default: ``type(cfg)()``) as YAML,
    nested like the dataclasses (for writing a preset or a user config file)."""
    import yaml

    from .artifacts import config_to_dict

    def diff(a: dict, b: dict) -> dict:
        out = {}
        for k, v in a.items():
            if isinstance(v, dict) and isinstance(b.get(k), dict):
                d = diff(v, b[k])
                if d:
                    out[k] = d
            elif b.get(k, object()) != v:
                out[k] = v
        return out

    full = config_to_dict(cfg)
    ref = config_to_dict(type(cfg)() if base is None else base)
    return yaml.safe_dump(diff(full, ref), sort_keys=False)
