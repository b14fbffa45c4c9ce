"""Whole ``instgs-pc train`` setups as YAML files: the presets of the point-cloud track.

A setup is a :class:`TrainSetup`: which network, its settings, the optimisation settings
and the augmentation. Each preset is one file ``configs/pointcloud/<name>.yaml``
(:func:`instgs.core.configs.list_presets`) holding only the values that differ from the
dataclass defaults, under the top-level keys of :class:`TrainSetup`::

    # HAIS-tiny for a 2-core CPU ...          <- leading comment = description in --help
    network: hais
    hais:            # HAISConfig fields (defaults: paper + official code)
      voxel_size: 0.05
      width: 16
    train:           # TrainConfig fields (instgs.pointcloud.train)
      steps: 400
    augment: none    # none | light | hais
    max_points: 8000 # random crop (HAIS max_npoint); omit for none
    class_stats: true

``instgs-pc train --preset NAME`` and ``--config FILE`` read the same schema (files are read
with ``yaml.safe_load``; unknown keys and wrong types are refused naming the file), and
flags given after them override single values. The files are the one source of truth:
:func:`hais_preset` reads them too.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from instgs.core.checks import InputError
from instgs.core.configs import list_presets, load_config_file, preset_description, preset_path
from instgs.pointcloud.hais.config import HAISConfig
from instgs.pointcloud.mpnet.config import MPNetConfig
from instgs.pointcloud.networks import Network
from instgs.pointcloud.queryis.config import QueryISConfig
from instgs.pointcloud.ssen.config import SSENConfig
from instgs.pointcloud.train import TrainConfig

__all__ = ["DEFAULT_PRESET", "GROUP", "SETUP_FIELDS", "Augment", "Network", "TrainSetup",
           "default_setup", "load_setup", "preset_names", "presets_help", "hais_preset"]

#: Preset group (folder under ``configs/``).
GROUP = "pointcloud"
#: Preset used when neither ``--preset`` nor ``--config`` is given.
DEFAULT_PRESET = "hais-tiny"

Augment = Literal["none", "light", "hais", "ssen", "full"]


@dataclass
class TrainSetup:
    """Everything about an ``instgs-pc train`` run except the data and the output folder."""

    network: Network = "hais"
    """Which network to train (hais, ssen, queryis, mpnet)."""
    hais: HAISConfig = field(default_factory=HAISConfig)
    """HAIS settings (used when ``network: hais``)."""
    ssen: SSENConfig = field(default_factory=SSENConfig)
    """SSEN settings (used when ``network: ssen``)."""
    queryis: QueryISConfig = field(default_factory=QueryISConfig)
    """3D-QueryIS settings (used when ``network: queryis``)."""
    mpnet: MPNetConfig = field(default_factory=MPNetConfig)
    """MPNet settings (used when ``network: mpnet``)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimisation settings."""
    augment: Augment = "none"
    """Training augmentation: none (overfit runs), light, hais (HAIS code list), ssen (SSEN
    paper list), full (the transfer recipe: every augmentation of the papers)."""
    max_points: int | None = None
    """Random crop to this many points per training scene (speed; HAIS max_npoint)."""
    class_stats: bool = True
    """Re-estimate class_numpoint_mean / class_radius_mean from the training scenes (HAIS
    set aggregation); classes without training instances keep the HAIS code table."""

    @property
    def net_config(self):
        """The config section of the chosen network."""
        return getattr(self, self.network)


#: Names of the :class:`TrainSetup` fields (the keys a setup file may hold).
SETUP_FIELDS = tuple(f.name for f in fields(TrainSetup))


def preset_names() -> list[str]:
    """Names of the preset files in ``configs/pointcloud`` (sorted)."""
    return list(list_presets(GROUP))


def _load_file(path: Path) -> TrainSetup:
    try:
        return load_config_file(path, TrainSetup)
    except InputError as e:
        if e.path is None:  # a HAISConfig / TrainConfig check: name the file
            raise InputError(str(e), path) from e
        raise


@functools.lru_cache(maxsize=16)
def _cached(path: str, mtime: float) -> TrainSetup:
    return _load_file(Path(path))


def load_setup(preset: str | None = None, config: str | Path | None = None) -> TrainSetup:
    """The setup of a preset name or of a config file (not both; neither = the default
    preset :data:`DEFAULT_PRESET`).

    Raises:
        InputError: unknown preset (lists the known ones), missing file, bad YAML, unknown
            keys, values of the wrong type or out of range — naming the file.
    """
    if preset is not None and config is not None:
        raise InputError("give --preset or --config, not both", Path(config),
                         "a config file replaces the preset; copy the preset file and edit it")
    path = Path(config) if config is not None else preset_path(GROUP, preset or DEFAULT_PRESET)
    if not path.is_file():
        raise InputError("config file not found", path, "pass an existing .yaml file")
    return copy.deepcopy(_cached(str(path.resolve()), path.stat().st_mtime))


def default_setup() -> TrainSetup:
    """The setup of :data:`DEFAULT_PRESET` (a fresh copy)."""
    return load_setup(DEFAULT_PRESET)


def presets_help() -> str:
    """A ``--help`` paragraph listing the presets with their descriptions."""
    presets = list_presets(GROUP)
    if not presets:
        return "Presets: none found (configs/pointcloud is missing)."
    width = max(len(n) for n in presets)
    lines = [(f"Presets (--preset NAME, default {DEFAULT_PRESET}; or --config FILE with the "
              f"same keys: {', '.join(SETUP_FIELDS)}; flags override the file):")]
    for name, path in presets.items():
        lines.append(f"  {name:<{width}}  {preset_description(path)}")
    return "\n".join(lines)


def hais_preset(name: str) -> HAISConfig:
    """The ``hais`` section of preset file ``name`` (``"hais-tiny"``: HAIS-tiny for a 2-core
    CPU, pointcloud-methods.md §C.5; ``"hais-paper"``: paper + official code; ``"tiny"`` /
    ``"paper"`` are accepted for them).

    Raises:
        InputError: unknown preset (the message lists the preset files), or a preset whose
            network is not HAIS.
    """
    key = name if name.startswith("hais-") or name not in ("tiny", "paper") else f"hais-{name}"
    setup = load_setup(key)
    if setup.network != "hais":
        raise InputError(f"preset {key!r} is for network {setup.network!r}, not HAIS", None,
                         "pick a hais-* preset")
    return setup.hais
