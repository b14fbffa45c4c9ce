"""``instgs-pc``: train / evaluate / run the point-cloud instance-segmentation networks.

Examples::

    instgs-pc train --data ../shared/data/scannet-scene0000-mmdet3d --scenes scene0000_00 \\
        --out /tmp/hais_runs/overfit --train.steps 400 --preset hais-tiny
    instgs-pc train --data ... --out ... --config my_setup.yaml --hais.width 8
    instgs-pc eval --ckpt /tmp/hais_runs/overfit/ckpt/last.pt \\
        --data ../shared/data/scannet-scene0000-mmdet3d --scenes scene0000_01
    instgs-pc predict --ckpt ... --data ... --scenes scene0000_01 --out /tmp/preds

Each subcommand is a dataclass with ``run()``; the network is chosen by ``network:
Literal["hais"]`` and built by :func:`build_network` (3D-QueryIS, MPNet and SSEN will join
that one factory). ``train`` starts from a preset file (``--preset hais-tiny`` default,
``hais-paper``; ``configs/pointcloud/*.yaml``) or from ``--config FILE`` (same keys, see
:mod:`instgs.pointcloud.presets`), and every flag overrides the file (``--hais.width 8``).

Exit codes (:func:`instgs._cli.run_main`): 0 on success; 1 with one line
``instgs-pc <command>: error: ...`` on stderr for bad input of any kind (unknown flag, bad
choice, missing or refused file); ``--help`` exits 0.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from instgs._cli import UsageError, run_main, tyro_parse
from instgs.core.artifacts import atomic_save_npz, config_to_dict, update_manifest, write_json
from instgs.core.checks import InputError
from instgs.pointcloud.hais.config import HAISConfig
from instgs.pointcloud.presets import (
    DEFAULT_PRESET,
    SETUP_FIELDS,
    Augment,
    TrainSetup,
    default_setup,
    load_setup,
    presets_help,
)
from instgs.pointcloud.train import TrainConfig

__all__ = ["main", "parse_args", "TrainCommand", "EvalCommand", "PredictCommand",
           "build_network", "load_network", "load_scenes", "make_transforms", "COMMANDS"]

log = logging.getLogger(__name__)

Network = Literal["hais"]
PROG = "instgs-pc"


def load_scenes(data: Path, scenes: Sequence[str], *, require_labels: bool = True) -> list:
    """Load ScanNet scenes (Pointcept folder, HAIS .pth or MMDetection3D layout).

    Args:
        data: a scene folder/file, or a folder of scenes when ``scenes`` is given.
        scenes: scene names; empty = every scene found in ``data`` (or ``data`` itself).
        require_labels: refuse scenes without label files (train, eval); ``False``
            (predict) reads points and colours only.

    Raises:
        InputError: nothing found, or a bad scene file (names the file and the fix).
    """
    from instgs.pointcloud.data import load_scannet_scene
    from instgs.pointcloud.data.scannet import list_scannet_scenes

    data = Path(data)
    if not data.exists():
        raise InputError("data path not found", data, "pass a ScanNet scene folder or file")
    names = list(scenes)
    if not names:
        if data.is_dir() and not (data / "coord.npy").is_file():
            names = list_scannet_scenes(data)
        if not names:
            return [load_scannet_scene(data, require_labels=require_labels)]
    return [load_scannet_scene(data, n, require_labels=require_labels) for n in names]


def make_transforms(augment: str, max_points: int | None):
    """Training augmentation: ``"none"``; ``"light"`` (flip x, z-rotation, scale 0.9-1.1,
    colour noise); ``"hais"`` (the full HAIS list incl. jitter and elastic distortion).
    ``max_points`` adds a random crop (HAIS ``max_npoint``)."""
    from instgs.pointcloud.data import transforms as T

    if augment == "none":
        ts = []
    elif augment == "light":
        ts = [T.RandomFlip(0, 0.5), T.RandomRotateZ(), T.RandomScale((0.9, 1.1)),
              T.ColorJitter(0.1)]
    elif augment == "hais":
        ts = list(T.hais_train_transforms(max_points or 250_000).transforms)
    else:
        raise InputError(f"unknown augment {augment!r}", None, "use none, light or hais")
    if max_points and augment != "hais":
        ts.append(T.CropToMaxPoints(max_points))
    return T.Compose(ts) if ts else None


def build_network(network: Network, cfg: Any) -> torch.nn.Module:
    """The one factory of point-cloud networks: ``network`` name + its config -> module.

    Raises:
        InputError: unknown network (lists the choices).
    """
    if network == "hais":
        from instgs.pointcloud.hais import HAIS

        return HAIS(cfg)
    raise InputError(f"unknown network {network!r}", None, "choose one of ['hais']")


def _config_from_dict(network: str, d: Any, path: Path) -> Any:
    from instgs.core.configs import from_dict

    if network == "hais":
        try:
            return from_dict(HAISConfig, d, path, prefix="net_config.")
        except InputError as e:
            if e.path is None:
                raise InputError(str(e), path) from e
            raise
    raise InputError(f"the checkpoint is of network {network!r}, which instgs-pc cannot "
                     "build (known: ['hais'])", path,
                     "pass a checkpoint written by instgs-pc train --network hais")


def load_network(ckpt: Path) -> torch.nn.Module:
    """Rebuild a trained network from a checkpoint written by ``instgs-pc train``.

    The file is read with ``torch.load(weights_only=True)`` (:mod:`instgs.run.checkpoint`):
    nothing in it can run code.

    Raises:
        InputError: missing, refused (unsafe pickle), truncated or foreign checkpoint
            (Gaussian pipeline, another network, weights that do not fit), naming the file.
    """
    from instgs.pointcloud.train import load_checkpoint

    fix = "pass a ckpt/*.pt written by instgs-pc train"
    ckpt = Path(ckpt)
    ck = load_checkpoint(ckpt, fix=fix)
    if not isinstance(ck["network"], str) or not isinstance(ck.get("net_config"), dict):
        raise InputError("not an instgs-pc network checkpoint (network / net_config missing "
                         "or malformed)", ckpt, fix)
    cfg = _config_from_dict(ck["network"], ck["net_config"], ckpt)
    model = build_network(ck["network"], cfg)
    state = ck["model"]
    try:
        if not isinstance(state, dict):
            raise TypeError(f"model entry is a {type(state).__name__}")
        model.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise InputError(f"the weights do not fit a {ck['network']} network with the stored "
                         f"settings ({first})", ckpt, fix) from e
    model.eval()
    return model


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
    network: Network = field(default_factory=partial(_default_value, "network"))
    """Which network to train."""
    hais: HAISConfig = field(default_factory=partial(_default_value, "hais"))
    """HAIS settings (from the preset / config file, then overrides)."""
    train: TrainConfig = field(default_factory=partial(_default_value, "train"))
    """Optimisation settings."""
    augment: Augment = field(default_factory=partial(_default_value, "augment"))
    """Training augmentation (none for overfit runs; hais = paper-code list)."""
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
        from instgs.pointcloud.data import ScanNetDataset, class_statistics
        from instgs.pointcloud.hais import collate_scenes
        from instgs.pointcloud.train import train

        scenes = load_scenes(self.data, self.scenes)
        cfg = self.hais
        if self.class_stats:
            cfg = cfg.with_class_statistics(class_statistics(scenes, cfg.num_classes,
                                                             cfg.background_classes))
        torch.manual_seed(self.train.seed)
        model = build_network(self.network, cfg)
        ds = ScanNetDataset(scenes, make_transforms(self.augment, self.max_points),
                            seed=self.train.seed)
        meta = {"network": self.network, "net_config": config_to_dict(cfg),
                "scenes": [s.name for s in scenes]}
        write_json(self.out / "config.json", {"command": "train", **config_to_dict(self)})
        t0 = time.perf_counter()
        path = train(model, ds, lambda items: collate_scenes(items, cfg), self.train, self.out,
                     resume=self.resume, meta=meta)
        update_manifest(self.out, "train", checkpoint=str(path), scenes=meta["scenes"],
                        wall_s=round(time.perf_counter() - t0, 1))
        print(f"checkpoint: {path}")
        return path


def evaluate_checkpoint(ckpt: Path, data: Path, scenes: Sequence[str],
                        progress_bar: bool = True) -> dict:
    """Predict every scene and compute ScanNet AP / AP50 / AP25 and semantic mIoU.

    Returns:
        dict with ``instance`` (``scannet_instance_ap`` output without ``ap_table``),
        ``semantic`` (mIoU / mAcc / oAcc), ``scenes`` and ``timings`` (mean s per stage).
    """
    from tqdm import tqdm

    from instgs.pointcloud.evaluate import scannet_instance_ap, semantic_metrics
    from instgs.pointcloud.hais import STAGES, predict

    model = load_network(ckpt)
    cfg = model.cfg
    items = load_scenes(data, scenes)
    preds, gts, sem_p, sem_g, timings = [], [], [], [], []
    for sc in tqdm(items, desc="eval", disable=not progress_bar):
        p = predict(model, sc)
        preds.append(p.instances)
        gts.append((sc.semantic, sc.instance))
        sem_p.append(p.semantic)
        sem_g.append(sc.semantic)
        timings.append(p.timings)
    ap = scannet_instance_ap(preds, gts, min_region_size=cfg.scaled_min_points)
    ap.pop("ap_table", None)
    sem = semantic_metrics(np.concatenate(sem_p), np.concatenate(sem_g), cfg.num_classes)
    sem.pop("confusion", None)
    return {"instance": ap, "semantic": sem, "scenes": [s.name for s in items],
            "num_predictions": [len(p) for p in preds],
            "timings": {k: float(np.mean([t.get(k, 0.0) for t in timings])) for k in STAGES}}


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

    def run(self) -> Path | None:
        res = evaluate_checkpoint(self.ckpt, self.data, self.scenes)
        ins = res["instance"]
        print(f"scenes: {', '.join(res['scenes'])}  predictions: {res['num_predictions']}")
        print(f"AP {_fmt(ins['AP'])}  AP50 {_fmt(ins['AP50'])}  AP25 {_fmt(ins['AP25'])}  "
              f"mIoU {_fmt(res['semantic']['mIoU'])}")
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
    """Write per-scene predictions ``<out>/<scene>.npz``: ``semantic [N]``, ``offsets
    [N,3]``, ``labels [K]``, ``scores [K]``, ``point_idx [P]`` and ``instance_offsets [K+1]``
    (CSR: instance k = ``point_idx[instance_offsets[k]:instance_offsets[k+1]]``)."""

    ckpt: Path
    """Checkpoint written by ``instgs-pc train``."""
    data: Path
    """Scene folder/file or folder of scenes (labels not needed)."""
    out: Path
    """Output folder."""
    scenes: tuple[str, ...] = ()
    """Scene names inside ``data`` (empty = all found)."""

    def run(self) -> Path:
        from instgs.pointcloud.hais import predict

        model = load_network(self.ckpt)
        for sc in load_scenes(self.data, self.scenes, require_labels=False):
            p = predict(model, sc)
            idx = [np.flatnonzero(i.mask) for i in p.instances]
            off = np.cumsum([0] + [len(i) for i in idx]).astype(np.int64)
            atomic_save_npz(self.out / f"{sc.name}.npz", semantic=p.semantic, offsets=p.offsets,
                            labels=np.array([i.label for i in p.instances], dtype=np.int64),
                            scores=np.array([i.score for i in p.instances], dtype=np.float32),
                            point_idx=(np.concatenate(idx) if idx else np.zeros(0, np.int64)),
                            instance_offsets=off)
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
