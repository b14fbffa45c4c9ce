"""``instgs-pc``: train / evaluate / run the point-cloud instance-segmentation networks.

Examples::

    instgs-pc train --data ../shared/data/scannet-scene0000-mmdet3d --scenes scene0000_00 \\
        --out /tmp/hais_runs/overfit --train.steps 400 hais:tiny
    instgs-pc eval --ckpt /tmp/hais_runs/overfit/ckpt/last.pt \\
        --data ../shared/data/scannet-scene0000-mmdet3d --scenes scene0000_01
    instgs-pc predict --ckpt ... --data ... --scenes scene0000_01 --out /tmp/preds

Each subcommand is a dataclass with ``run()``; the network is chosen by ``network:
Literal["hais"]`` and built by :func:`build_network` (3D-QueryIS, MPNet and SSEN will join
that one factory). HAIS settings start from a preset subcommand (``hais:tiny`` default,
``hais:paper``) and every field can be overridden (``--hais.width 8``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence, Union

import numpy as np
import torch

from instgs.core.artifacts import atomic_save_npz, config_to_dict, update_manifest, write_json
from instgs.core.checks import InputError
from instgs.pointcloud.hais.config import HAISConfig
from instgs.pointcloud.train import TrainConfig

__all__ = ["main", "TrainCommand", "EvalCommand", "PredictCommand", "build_network",
           "load_network", "load_scenes", "make_transforms"]

Network = Literal["hais"]


def _hais_presets() -> Any:
    import tyro

    return Union[
        Annotated[HAISConfig, tyro.conf.subcommand("tiny", default=HAISConfig.tiny())],
        Annotated[HAISConfig, tyro.conf.subcommand("paper", default=HAISConfig.paper())],
    ]


HAISPreset = _hais_presets()


def load_scenes(data: Path, scenes: Sequence[str]) -> list:
    """Load ScanNet scenes (Pointcept folder, HAIS .pth or MMDetection3D layout).

    Args:
        data: a scene folder/file, or a folder of scenes when ``scenes`` is given.
        scenes: scene names; empty = every scene found in ``data`` (or ``data`` itself).

    Raises:
        InputError: nothing found (names the folder and the fix).
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
            return [load_scannet_scene(data)]
    return [load_scannet_scene(data, n) for n in names]


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


def _config_from_dict(network: str, d: dict) -> Any:
    if network == "hais":
        return HAISConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
    raise InputError(f"unknown network {network!r} in checkpoint", None, "choose 'hais'")


def load_network(ckpt: Path) -> torch.nn.Module:
    """Rebuild a trained network from a checkpoint written by ``instgs-pc train``.

    Raises:
        InputError: missing / foreign checkpoint.
    """
    from instgs.pointcloud.train import load_checkpoint

    ck = load_checkpoint(ckpt)
    cfg = _config_from_dict(ck["network"], ck["net_config"])
    model = build_network(ck["network"], cfg)
    model.load_state_dict(ck["model"])
    model.eval()
    return model


@dataclass
class TrainCommand:
    """Train a network; writes ``<out>/ckpt/last.pt``, ``log.jsonl``, ``config.json``."""

    data: Path
    """Scene folder/file or a folder of scenes (Pointcept, HAIS .pth or MMDetection3D)."""
    out: Path
    """Run folder."""
    scenes: tuple[str, ...] = ()
    """Training scene names inside ``data`` (empty = all found)."""
    network: Network = "hais"
    """Which network to train."""
    hais: HAISPreset = field(default_factory=HAISConfig.tiny)  # type: ignore[valid-type]
    """HAIS settings (preset subcommand, then overrides)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimisation settings."""
    augment: Literal["none", "light", "hais"] = "none"
    """Training augmentation (none for overfit runs; hais = paper-code list)."""
    max_points: int | None = None
    """Random crop to this many points per training scene (speed; HAIS max_npoint)."""
    class_stats: bool = True
    """Re-estimate class_numpoint_mean / class_radius_mean from the training scenes (HAIS
    set aggregation); classes without training instances keep the HAIS code table."""
    resume: bool = False
    """Continue from ``<out>/ckpt/last.pt``."""

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
        for sc in load_scenes(self.data, self.scenes):
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


def main(args: Sequence[str] | None = None) -> Any:
    """Console entry point ``instgs-pc`` (tyro subcommands ``train``, ``eval``, ``predict``).

    Args:
        args: argv without the program name (default: ``sys.argv[1:]``).

    Returns:
        What the subcommand's ``run()`` returns (a path).
    """
    import tyro

    cmd = tyro.cli(
        Union[
            Annotated[TrainCommand, tyro.conf.subcommand("train")],
            Annotated[EvalCommand, tyro.conf.subcommand("eval")],
            Annotated[PredictCommand, tyro.conf.subcommand("predict")],
        ],
        args=args,
    )
    try:
        return cmd.run()
    except InputError as e:  # bad user input: one clear line, no traceback
        raise SystemExit(f"instgs-pc: error: {e}") from e


if __name__ == "__main__":  # pragma: no cover
    main()
