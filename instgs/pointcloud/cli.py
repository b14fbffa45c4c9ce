"""``instgs-pc``: train / evaluate / run the point-cloud instance-segmentation networks.

Examples::

    instgs-pc train --data ../shared/data/scannet-scene0000-mmdet3d --scenes scene0000_00 \\
        --out /tmp/hais_runs/overfit --train.steps 400 --preset hais-tiny
    instgs-pc train --data ... --out ... --config my_setup.yaml --hais.width 8
    instgs-pc eval --ckpt /tmp/hais_runs/overfit/ckpt/last.pt \\
        --data ../shared/data/scannet-scene0000-mmdet3d --scenes scene0000_01
    instgs-pc predict --ckpt ... --data ... --scenes scene0000_01 --out /tmp/preds

Each subcommand is a dataclass with ``run()``; the network (``--model`` / ``--network``:
hais, ssen, queryis, mpnet) is built by the one factory
:func:`instgs.pointcloud.networks.build_network`. ``train`` starts from a preset file
(``--preset hais-tiny`` default; ``ssen-tiny``, ``queryis-tiny``, ``mpnet-tiny``, the
``*-paper`` files; ``configs/pointcloud/*.yaml``) or from ``--config FILE`` (same keys, see
:mod:`instgs.pointcloud.presets`), and every flag overrides the file (``--hais.width 8``).
``eval`` and ``predict`` rebuild the network from the checkpoint; ``--model NAME`` there
checks that the checkpoint is of that network.

Multi-process training: ``torchrun --nproc_per_node N -m instgs.pointcloud.cli train ...``
(gloo on CPU; see :mod:`instgs.pointcloud.train`).

Exit codes (:func:`instgs._cli.run_main`): 0 on success; 1 with one line
``instgs-pc <command>: error: ...`` on stderr for bad input of any kind (unknown flag, bad
choice, missing or refused file); ``--help`` exits 0.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tyro

from instgs._cli import UsageError, run_main, tyro_parse
from instgs.core.artifacts import atomic_save_npz, config_to_dict, write_json
from instgs.pointcloud.hais.config import HAISConfig
from instgs.pointcloud.mpnet.config import MPNetConfig
from instgs.pointcloud.networks import NETWORKS, Network, build_network, network_spec
from instgs.pointcloud.presets import (
    DEFAULT_PRESET,
    SETUP_FIELDS,
    Augment,
    TrainSetup,
    default_setup,
    load_setup,
    presets_help,
)
from instgs.pointcloud.queryis.config import QueryISConfig
from instgs.pointcloud.runner import evaluate_checkpoint, load_network, load_scenes, make_transforms
from instgs.pointcloud.ssen.config import SSENConfig
from instgs.pointcloud.train import TrainConfig

__all__ = ["main", "parse_args", "TrainCommand", "EvalCommand", "PredictCommand",
           "build_network", "load_network", "load_scenes", "make_transforms",
           "evaluate_checkpoint", "COMMANDS"]

log = logging.getLogger(__name__)

PROG = "instgs-pc"


def _default_value(name: str) -> Any:
    """Field ``name`` of the default preset (``TrainCommand``'s Python defaults)."""
    return copy.deepcopy(getattr(default_setup(), name))


@dataclass
class TrainCommand:
    """Train a network; writes ``<out>/ckpt/last.pt``, ``log.jsonl``, ``config.json``."""

    data: Path
    """Scene folder/file or a folder of scenes (Pointcept, HAIS .pth or MMDetection3D)."""
    out: Path
    """Run folder."""
    scenes: tuple[str, ...] = ()
    """Training scene names inside ``data`` (empty = all found)."""
    preset: str | None = DEFAULT_PRESET
    """Setup preset: a file configs/pointcloud/NAME.yaml (see the list above)."""
    config: Path | None = None
    """Setup file (same keys as a preset) used instead of --preset."""
    network: Annotated[Network, tyro.conf.arg(aliases=("--model",))] = field(
        default_factory=partial(_default_value, "network"))
    """Which network to train: hais, ssen, queryis, mpnet (--model is the same flag)."""
    hais: HAISConfig = field(default_factory=partial(_default_value, "hais"))
    """HAIS settings (from the preset / config file, then overrides)."""
    ssen: SSENConfig = field(default_factory=partial(_default_value, "ssen"))
    """SSEN settings."""
    queryis: QueryISConfig = field(default_factory=partial(_default_value, "queryis"))
    """3D-QueryIS settings."""
    mpnet: MPNetConfig = field(default_factory=partial(_default_value, "mpnet"))
    """MPNet settings."""
    train: TrainConfig = field(default_factory=partial(_default_value, "train"))
    """Optimisation settings."""
    augment: Augment = field(default_factory=partial(_default_value, "augment"))
    """Training augmentation: none (overfit), light, hais, ssen, full (transfer recipe)."""
    max_points: int | None = field(default_factory=partial(_default_value, "max_points"))
    """Random crop to this many points per training scene (speed; HAIS max_npoint)."""
    class_stats: bool = field(default_factory=partial(_default_value, "class_stats"))
    """Re-estimate class_numpoint_mean / class_radius_mean from the training scenes (HAIS
    set aggregation); classes without training instances keep the HAIS code table."""
    resume: bool = False
    """Continue from ``<out>/ckpt/last.pt``."""

    @property
    def setup(self) -> TrainSetup:
        """The :class:`TrainSetup` part of this command (what a preset file holds)."""
        return TrainSetup(**{k: copy.deepcopy(getattr(self, k)) for k in SETUP_FIELDS})

    @classmethod
    def from_setup(cls, setup: TrainSetup, **kw: Any) -> TrainCommand:
        """A command with the values of ``setup`` (``kw``: data, out, scenes, ...)."""
        return cls(**{k: copy.deepcopy(getattr(setup, k)) for k in SETUP_FIELDS}, **kw)

    def run(self) -> Path:
        from instgs.pointcloud.runner import train_setup

        path = train_setup(self.setup, self.data, self.out, self.scenes, resume=self.resume,
                           record={"command": "train", **config_to_dict(self)})
        print(f"checkpoint: {path}")
        return path


def _fmt(v: Any) -> str:
    return "nan" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.1f}"


@dataclass
class EvalCommand:
    """Evaluate a checkpoint: ScanNet AP / AP50 / AP25 (+ per class) and semantic mIoU."""

    ckpt: Path
    """Checkpoint written by ``instgs-pc train``."""
    data: Path
    """Scene folder/file or folder of scenes (with labels)."""
    scenes: tuple[str, ...] = ()
    """Scene names inside ``data`` (empty = all found)."""
    out: Path | None = None
    """Optional JSON file for the metrics."""
    model: Network | None = None
    """Refuse a checkpoint of another network than this one (default: any)."""

    def run(self) -> Path | None:
        from instgs.pointcloud.runner import evaluate_checkpoint

        res = evaluate_checkpoint(self.ckpt, self.data, self.scenes, expect=self.model)
        ins = res["instance"]
        sem = res["semantic"]
        print(f"{res['network']} scenes: {', '.join(res['scenes'])}  predictions: "
              f"{res['num_predictions']}")
        print(f"AP {_fmt(ins['AP'])}  AP50 {_fmt(ins['AP50'])}  AP25 {_fmt(ins['AP25'])}  "
              f"mIoU {_fmt(sem['mIoU'] if sem else None)}")
        for name, v in ins["per_class"].items():
            if not all(isinstance(x, float) and np.isnan(x) for x in v.values()):
                print(f"  {name:16s} AP {_fmt(v['AP'])}  AP50 {_fmt(v['AP50'])}  "
                      f"AP25 {_fmt(v['AP25'])}")
        if self.out is not None:
            write_json(self.out, res)
            print(f"metrics: {self.out}")
        return self.out


@dataclass
class PredictCommand:
    """Write per-scene predictions ``<out>/<scene>.npz``: ``labels [K]``, ``scores [K]``,
    ``point_idx [P]`` and ``instance_offsets [K+1]`` (CSR: instance k =
    ``point_idx[instance_offsets[k]:instance_offsets[k+1]]``), ``semantic [N]`` (not
    3D-QueryIS) and the network's extras (HAIS ``offsets [N,3]``; SSEN / MPNet
    ``embedding [N,d]``, ``cluster [N]``)."""

    ckpt: Path
    """Checkpoint written by ``instgs-pc train``."""
    data: Path
    """Scene folder/file or folder of scenes (labels not needed)."""
    out: Path
    """Output folder."""
    scenes: tuple[str, ...] = ()
    """Scene names inside ``data`` (empty = all found)."""
    model: Network | None = None
    """Refuse a checkpoint of another network than this one (default: any)."""

    def run(self) -> Path:
        from instgs.pointcloud.runner import load_network, load_scenes

        model = load_network(self.ckpt, self.model)
        spec = network_spec(next(n for n in NETWORKS
                                 if isinstance(model, network_spec(n).model_cls)))
        for sc in load_scenes(self.data, self.scenes, require_labels=False):
            p = spec.predict(model, sc)
            idx = [np.flatnonzero(i.mask) for i in p.instances]
            extra = dict(getattr(p, "arrays", {}))
            if getattr(p, "offsets", None) is not None:
                extra["offsets"] = p.offsets
            if p.semantic is not None:
                extra["semantic"] = p.semantic
            atomic_save_npz(self.out / f"{sc.name}.npz",
                            labels=np.array([i.label for i in p.instances], dtype=np.int64),
                            scores=np.array([i.score for i in p.instances], dtype=np.float32),
                            point_idx=(np.concatenate(idx) if idx else np.zeros(0, np.int64)),
                            instance_offsets=np.cumsum([0] + [len(i) for i in idx]
                                                       ).astype(np.int64), **extra)
            print(f"{sc.name}: {len(p.instances)} instances, "
                  f"{json.dumps({k: round(v, 3) for k, v in p.timings.items()})}")
        return self.out


COMMANDS = {"train": TrainCommand, "eval": EvalCommand, "predict": PredictCommand}


def _take_value(args: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` in ``args`` (``--flag V`` or ``--flag=V``; last one wins)."""
    value = None
    for i, a in enumerate(args):
        if a == flag:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise UsageError(f"{flag} needs a value")
            value = args[i + 1]
        elif a.startswith(flag + "="):
            value = a.split("=", 1)[1]
    return value


def _train_default(args: Sequence[str]) -> TrainCommand:
    """The :class:`TrainCommand` defaults of the preset / config file named in ``args``
    (data and out still required)."""
    import tyro

    preset = _take_value(args, "--preset")
    config = _take_value(args, "--config")
    if preset is not None and config is not None:
        raise UsageError("give --preset or --config, not both")
    if preset in ("None", ""):
        preset = None
    setup = load_setup(preset=None if config else (preset or DEFAULT_PRESET), config=config)
    return TrainCommand.from_setup(
        setup, data=tyro.MISSING, out=tyro.MISSING,
        preset=None if config else (preset or DEFAULT_PRESET),
        config=None if config is None else Path(config))


def _overview() -> str:
    lines = [f"usage: {PROG} {{train,eval,predict}} [OPTIONS]  ({PROG} COMMAND --help)", ""]
    for name, cls in COMMANDS.items():
        lines.append(f"  {name:8s} {(cls.__doc__ or '').strip().splitlines()[0]}")
    return "\n".join(lines)


def parse_args(args: Sequence[str]) -> Any:
    """argv (without the program name) -> the command object (``TrainCommand`` ...).

    Raises:
        UsageError: no or unknown command, unknown flag, bad value, missing argument.
        InputError: unknown preset, bad config file (naming it).
        SystemExit(0): ``--help``.
    """
    args = list(args)
    if not args:
        raise UsageError(f"missing command; choose one of {list(COMMANDS)} "
                         f"(see {PROG} --help)")
    if args[0] in ("-h", "--help"):
        print(_overview())
        raise SystemExit(0)
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        raise UsageError(f"unknown command {name!r}; choose one of {list(COMMANDS)}")
    cls = COMMANDS[name]
    doc = (cls.__doc__ or "").strip()
    if name == "train":
        return tyro_parse(cls, rest, f"{PROG} train", description=doc + "\n\n" +
                          presets_help(), default=_train_default(rest))
    return tyro_parse(cls, rest, f"{PROG} {name}", description=doc)


def main(args: Sequence[str] | None = None) -> int:
    """Console entry point ``instgs-pc`` (subcommands ``train``, ``eval``, ``predict``).

    Args:
        args: argv without the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 1 on bad input (one line ``instgs-pc <cmd>: error: ...`` on stderr,
        no traceback), 130 on Ctrl-C. ``--help`` raises ``SystemExit(0)``.
    """
    import sys

    argv = list(sys.argv[1:] if args is None else args)
    cmd = next((a for a in argv if not a.startswith("-")), None)
    prog = f"{PROG} {cmd}" if cmd in COMMANDS else PROG
    return run_main(prog, argv, parse_args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
