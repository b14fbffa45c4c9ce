"""What the ``instgs-pc`` commands do, as plain functions (the commands parse and print).

* :func:`load_scenes` — ScanNet (Pointcept / HAIS .pth / MMDetection3D) or SemanticKITTI.
* :func:`make_transforms` — the training augmentation of a setup.
* :func:`train_setup` — ``instgs-pc train`` as a function (single process or DDP).
* :func:`load_network` — rebuild a trained network from its checkpoint (safe loading).
* :func:`evaluate_checkpoint` / :func:`evaluate_model` — ScanNet-style AP / AP50 / AP25,
  per class, semantic mIoU and stage timings for any of the four networks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instgs.core.artifacts import config_to_dict, update_manifest, write_json
from instgs.core.checks import InputError

__all__ = ["load_scenes", "make_transforms", "train_setup", "load_network",
           "evaluate_checkpoint", "evaluate_model", "CKPT_FIX"]

CKPT_FIX = "pass a ckpt/*.pt written by instgs-pc train"


def load_scenes(data: Path, scenes: Sequence[str], *, require_labels: bool = True) -> list:
    """Load labelled scans: ScanNet (Pointcept folder, HAIS .pth or MMDetection3D layout)
    or SemanticKITTI (``sequences/SS/velodyne/*.bin``, scenes named ``SS/FFFFFF``).

    Args:
        data: a scene folder/file, or a folder of scenes when ``scenes`` is given.
        scenes: scene names; empty = every scene found in ``data`` (or ``data`` itself).
        require_labels: refuse scenes without label files (train, eval); ``False``
            (predict) reads points and colours only.

    Returns:
        list of :class:`instgs.pointcloud.data.PointScene`.

    Raises:
        InputError: nothing found, or a bad scene file (names the file and the fix).
    """
    from instgs.pointcloud.data import load_scannet_scene
    from instgs.pointcloud.data.scannet import list_scannet_scenes
    from instgs.pointcloud.data.semantickitti import (
        is_semantickitti,
        list_semantickitti_scans,
        load_semantickitti_scan,
    )

    data = Path(data)
    if not data.exists():
        raise InputError("data path not found", data, "pass a ScanNet scene folder or file")
    names = list(scenes)
    if is_semantickitti(data):
        names = names or ([None] if data.suffix == ".bin" else list_semantickitti_scans(data))
        return [load_semantickitti_scan(data, n, require_labels=require_labels) for n in names]
    if not names:
        if data.is_dir() and not (data / "coord.npy").is_file():
            names = list_scannet_scenes(data)
        if not names:
            return [load_scannet_scene(data, require_labels=require_labels)]
    return [load_scannet_scene(data, n, require_labels=require_labels) for n in names]


def make_transforms(augment: str, max_points: int | None, block: tuple[float, int] | None = None):
    """Training augmentation of a setup.

    Args:
        augment: ``"none"``; ``"light"`` (flip x, z-rotation, scale 0.9-1.1, colour noise);
            ``"hais"`` (HAIS code list incl. jitter and elastic distortion); ``"ssen"``
            (SSEN paper list); ``"full"`` (the transfer recipe, every augmentation of the
            papers: ``transforms.full_train_transforms``).
        max_points: random crop to this many points (HAIS ``max_npoint``); None = none.
        block: ``(size, points)`` of MPNet's random training blocks, cropped first.

    Returns:
        a ``transforms.Compose`` or None.

    Raises:
        InputError: unknown ``augment``.
    """
    from instgs.pointcloud.data import transforms as T

    pre = [T.RandomBlock(*block)] if block else []
    if augment == "none":
        ts = []
    elif augment == "light":
        ts = [T.RandomFlip(0, 0.5), T.RandomRotateZ(), T.RandomScale((0.9, 1.1)),
              T.ColorJitter(0.1)]
    elif augment == "hais":
        ts = list(T.hais_train_transforms(max_points or 250_000).transforms)
    elif augment == "ssen":
        ts = list(T.ssen_train_transforms().transforms)
    elif augment == "full":
        ts = list(T.full_train_transforms(max_points).transforms)
    else:
        raise InputError(f"unknown augment {augment!r}", None,
                         "use none, light, hais, ssen or full")
    if max_points and augment not in ("hais", "full"):
        ts.append(T.CropToMaxPoints(max_points))
    ts = pre + ts
    return T.Compose(ts) if ts else None


def train_setup(setup: Any, data: Path, out: Path, scenes: Sequence[str] = (),
                resume: bool = False, record: dict | None = None) -> Path:
    """Train ``setup`` (a :class:`instgs.pointcloud.presets.TrainSetup`) on scenes of
    ``data`` into ``out``; see :func:`instgs.pointcloud.train.train` (DDP under torchrun).

    Returns:
        the final checkpoint path.

    Raises:
        InputError: bad data, setup or resume state.
    """
    from instgs.pointcloud.data import ScanNetDataset, class_statistics
    from instgs.pointcloud.networks import build_network, network_spec
    from instgs.pointcloud.train import train

    spec = network_spec(setup.network)
    items = load_scenes(data, scenes)
    cfg = setup.net_config
    if setup.network == "hais" and setup.class_stats:
        cfg = cfg.with_class_statistics(class_statistics(items, cfg.num_classes,
                                                         cfg.background_classes))
    torch.manual_seed(setup.train.seed)
    model = build_network(setup.network, cfg)
    block = (cfg.block_size, cfg.block_points) if spec.block_sampler else None
    ds = ScanNetDataset(items, make_transforms(setup.augment, setup.max_points, block),
                        seed=setup.train.seed)
    meta = {"network": setup.network, "net_config": config_to_dict(cfg),
            "scenes": [s.name for s in items]}
    if record is not None and int(_env_rank()) == 0:
        write_json(Path(out) / "config.json", record)
    t0 = time.perf_counter()
    path = train(model, ds, lambda b: spec.collate(b, cfg), setup.train, out, resume=resume,
                 meta=meta)
    if int(_env_rank()) == 0:
        update_manifest(Path(out), "train", checkpoint=str(path), scenes=meta["scenes"],
                        wall_s=round(time.perf_counter() - t0, 1))
    return path


def _env_rank() -> str:
    import os

    return os.environ.get("RANK", "0")


def load_network(ckpt: Path, expect: str | None = None) -> torch.nn.Module:
    """Rebuild a trained network from a checkpoint written by ``instgs-pc train``.

    The file is read with ``torch.load(weights_only=True)`` (:mod:`instgs.run.checkpoint`):
    nothing in it can run code.

    Args:
        ckpt: the checkpoint file.
        expect: network name the caller asked for (``--model``); None = any.

    Returns:
        the network in eval mode, with the stored config as ``model.cfg``.

    Raises:
        InputError: missing, refused (unsafe pickle), truncated or foreign checkpoint
            (Gaussian pipeline, another network than ``expect``, weights that do not fit),
            naming the file.
    """
    from instgs.core.configs import from_dict
    from instgs.pointcloud.networks import NETWORKS, build_network, network_spec
    from instgs.pointcloud.train import load_checkpoint

    ckpt = Path(ckpt)
    ck = load_checkpoint(ckpt, fix=CKPT_FIX)
    net = ck["network"]
    if not isinstance(net, str) or not isinstance(ck.get("net_config"), dict):
        raise InputError("not an instgs-pc network checkpoint (network / net_config missing "
                         "or malformed)", ckpt, CKPT_FIX)
    if net not in NETWORKS:
        raise InputError(f"the checkpoint is of network {net!r}, which instgs-pc cannot "
                         f"build (known: {list(NETWORKS)})", ckpt, CKPT_FIX)
    if expect is not None and net != expect:
        raise InputError(f"--model {expect} was given but the checkpoint holds a {net} "
                         "network", ckpt, f"pass --model {net}, or a {expect} checkpoint")
    try:
        cfg = from_dict(network_spec(net).config_cls, ck["net_config"], ckpt,
                        prefix="net_config.")
    except InputError as e:
        detail = str(e)
        if e.path is not None and detail.startswith(f"{e.path}: "):
            detail = detail[len(f"{e.path}: "):]
        detail = detail.split(". Fix: ")[0]
        raise InputError(f"this checkpoint is tagged as a {net} network but its settings do "
                         f"not fit {net} ({detail})", ckpt,
                         f"pass a {net} checkpoint written by instgs-pc train "
                         f"(--model {net}), or the instgs version that wrote it") from e
    model = build_network(net, cfg)
    state = ck["model"]
    try:
        if not isinstance(state, dict):
            raise TypeError(f"model entry is a {type(state).__name__}")
        model.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise InputError(f"the weights do not fit a {net} network with the stored "
                         f"settings ({first})", ckpt, CKPT_FIX) from e
    model.eval()
    return model


def _network_name(model: torch.nn.Module) -> str:
    from instgs.pointcloud.networks import NETWORKS, network_spec

    for name in NETWORKS:
        if isinstance(model, network_spec(name).model_cls):
            return name
    raise InputError(f"not a point-cloud network: {type(model).__name__}")


def evaluate_model(model: torch.nn.Module, items: Sequence, progress_bar: bool = False) -> dict:
    """Predict every scene of ``items`` and score it.

    Returns:
        dict with ``instance`` (``scannet_instance_ap`` over the label space's instance
        classes, without ``ap_table``), ``semantic`` (mIoU / mAcc / oAcc, or None for a
        network without a semantic branch), ``scenes``, ``num_predictions`` and
        ``timings`` (mean seconds per stage).
    """
    from tqdm import tqdm

    from instgs.pointcloud.data.labels import label_space
    from instgs.pointcloud.evaluate import scannet_instance_ap, semantic_metrics
    from instgs.pointcloud.networks import network_spec

    spec = network_spec(_network_name(model))
    cfg = model.cfg
    space = label_space(getattr(cfg, "label_space", "scannet20"))
    preds, gts, sem_p, sem_g, timings = [], [], [], [], []
    for sc in tqdm(items, desc="eval", disable=not progress_bar):
        p = spec.predict(model, sc)
        preds.append(p.instances)
        gts.append((sc.semantic, sc.instance))
        if p.semantic is not None:
            sem_p.append(p.semantic)
            sem_g.append(sc.semantic)
        timings.append(p.timings)
    ap = scannet_instance_ap(preds, gts, class_ids=space.instance_classes,
                             class_names=[space.class_names[c] for c in space.instance_classes],
                             min_region_size=cfg.scaled_min_points)
    ap.pop("ap_table", None)
    sem = None
    if sem_p:
        sem = semantic_metrics(np.concatenate(sem_p), np.concatenate(sem_g), space.num_classes,
                               class_names=list(space.class_names))
        sem.pop("confusion", None)
    return {"instance": ap, "semantic": sem, "scenes": [s.name for s in items],
            "num_predictions": [len(p) for p in preds],
            "timings": {k: float(np.mean([t.get(k, 0.0) for t in timings]))
                        for k in spec.stages}}


def evaluate_checkpoint(ckpt: Path, data: Path, scenes: Sequence[str], progress_bar: bool = True,
                        expect: str | None = None) -> dict:
    """:func:`evaluate_model` of the network in ``ckpt`` on scenes of ``data``; also
    records ``network``. Raises InputError like :func:`load_network` / :func:`load_scenes`."""
    model = load_network(ckpt, expect)
    res = evaluate_model(model, load_scenes(data, scenes), progress_bar)
    res["network"] = _network_name(model)
    return res
