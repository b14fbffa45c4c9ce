"""The export stage: a run folder in, standard 3DGS files out (``instgs export RUN``).

``instgs.export.run(run_dir, cfg) -> list[Path]`` bakes the run (:func:`load_or_bake`, cached
in ``RUN/exports/`` per checkpoint and bake settings), drops Gaussians below
``min_opacity``, selects a subset (instance ids, text queries through the run's language
features, their complement) or splits it into one file per instance, and writes the files
(:mod:`instgs.export.formats`) with an ``instances.json`` sidecar: per instance its id,
Gaussian count, centroid, axis-aligned box and, where the run has language features and a
text-feature table, the best-matching name and its cosine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from instgs.core.artifacts import atomic_save_npz, config_to_dict, update_manifest, write_json
from instgs.core.checks import InputError
from instgs.core.lock import FolderLock
from instgs.run import (InstanceLabels, LoadedRun, RunPaths, current_source, load_instances,
                        load_npz, load_run)

from .bake import BakeConfig, bake, with_instance_ids
from .formats import SUFFIX, Format, write_splats
from .splats import Splats

__all__ = ["ExportConfig", "run", "load_or_bake", "select_splats", "instance_table",
           "run_text_features"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportConfig:
    """``instgs export`` settings."""

    out: Path | None = None
    """Output folder (default RUN/exports)."""
    format: Format = "ply"
    """ply (3DGS + instance_id), compressed-ply (SuperSplat), splat (antimatter15), spz."""
    instances: tuple[int, ...] = ()
    """Export only these instance ids."""
    query: tuple[str, ...] = ()
    """Export the best instance of each text (through the run's language features)."""
    text_features: Path | None = None
    """JSON {name: [512 floats]} for --query offline; default: the scene's
    text_features.json when it has one, else CLIP."""
    invert: bool = False
    """Export everything except the selection (the scene with the objects removed)."""
    split_instances: bool = False
    """One file per instance (plus unassigned), whose counts sum to the whole."""
    min_opacity: float = 1.0 / 255.0
    """Drop Gaussians whose baked opacity is below this (1/255: never visible)."""
    name: str | None = None
    """File stem (default from the selection: scene, instances_3_7, query_table, ...)."""
    bake: BakeConfig = field(default_factory=BakeConfig)
    """Baking settings (SH degree, opacity rule, weights)."""


def run_text_features(run_dir: str | Path) -> Path | None:
    """The run's text-feature table: ``text_features.json`` in its scene folder, if any."""
    from instgs.run import read_run_config

    p = Path(read_run_config(run_dir).data) / "text_features.json"
    return p if p.is_file() else None


def _bake_key(run: LoadedRun, cfg: BakeConfig) -> str:
    d = config_to_dict(dataclasses.replace(cfg, progress=True, chunk=0))
    raw = json.dumps({"ckpt": run.checkpoint.sha256, "bake": d}, sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def load_or_bake(run: LoadedRun, cfg: BakeConfig | None = None,
                 instances: InstanceLabels | None = None) -> Splats:
    """:func:`~instgs.export.bake.bake` the run, or read the cached bake of the same
    checkpoint and settings from ``RUN/exports/baked_<key>.npz`` (written here otherwise).

    Instance ids are always taken from ``instances`` (not cached), so re-segmenting does not
    invalidate the bake.
    """
    cfg = cfg or BakeConfig()
    path = RunPaths(run.run_dir).exports / f"baked_{_bake_key(run, cfg)}.npz"
    if path.is_file():
        z = load_npz(path, "delete it; it is remade")
        s = Splats(*(torch.from_numpy(z[k]) for k in ("means", "quats", "scales", "opacities",
                                                      "sh", "instance_ids", "child_ids")))
        log.info("using the cached bake %s", path)
    else:
        t0 = time.perf_counter()
        s = bake(run, cfg)
        atomic_save_npz(path, means=s.means.numpy(), quats=s.quats.numpy(),
                        scales=s.scales.numpy(), opacities=s.opacities.numpy(),
                        sh=s.sh.numpy(), instance_ids=s.instance_ids.numpy(),
                        child_ids=s.child_ids.numpy(),
                        source=np.array(json.dumps(run.source)))
        log.info("baked in %.1f s (cached as %s)", time.perf_counter() - t0, path.name)
    return with_instance_ids(s, instances, run)


def _query_ids(run_dir: Path, texts: tuple[str, ...], tf: Path | None) -> list[int]:
    from instgs.language.query import query_instances

    tf = tf if tf is not None else run_text_features(run_dir)
    res = query_instances(run_dir, list(texts), text_features=tf)
    for m in res.matches:
        if len(m.instance_ids):
            log.info('  "%s": instance %d (score %.3f)', m.text, int(m.instance_ids[0]),
                     float(m.scores[0]))
    return [int(i) for i in res.selected_ids]


def select_splats(s: Splats, ids: list[int] | None, invert: bool) -> Splats:
    """The Gaussians of instances ``ids`` (all when None), or of the others with ``invert``."""
    if ids is None:
        return s
    keep = torch.as_tensor(np.isin(s.instance_ids.numpy(), np.asarray(ids, np.int64)))
    return s.select(~keep if invert else keep)


def _selection(cfg: ExportConfig, run_dir: Path, inst: InstanceLabels | None
               ) -> tuple[list[int] | None, str]:
    """(selected instance ids or None, default file stem)."""
    if not cfg.instances and not cfg.query:
        if cfg.invert:
            raise InputError("--invert needs a selection", None,
                             "pass --instances ID ... or --query TEXT ...")
        return None, "scene"
    k = inst.num_instances
    bad = [i for i in cfg.instances if not 0 <= i < k]
    if bad:
        raise InputError(f"unknown instance id(s) {bad}; this run has ids 0..{k - 1}",
                         RunPaths(run_dir).instances, "pick ids from `instgs query` or the "
                         "instances.json of a full export")
    ids = list(cfg.instances)
    stem = "instances_" + "_".join(map(str, ids)) if ids else ""
    if cfg.query:
        from instgs.language.query import query_slug

        ids += _query_ids(run_dir, cfg.query, cfg.text_features)
        stem = (stem + "_" if stem else "") + "query_" + query_slug(cfg.query)
    ids = sorted(set(ids))
    return ids, ("without_" + stem if cfg.invert else stem)


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".instgs_write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputError(f"cannot write here ({e.strerror or e})", folder,
                         "pass a writable --out folder") from e


def run(run_dir: str | Path, cfg: ExportConfig | None = None) -> list[Path]:
    """``instgs export RUN``: bake, select and write 3DGS files (module docstring).

    Args:
        run_dir: a trained run (segmented for instance subsets, with language features for
            text queries).
        cfg: :class:`ExportConfig`.

    Returns:
        The written Gaussian files (the ``instances.json`` sidecar beside them).

    Raises:
        InputError: no or stale checkpoint / instances; an instance selection on a run never
            segmented; an unknown instance id; a query on a run without language features;
            an unwritable ``--out``; bad settings.
    """
    cfg = cfg or ExportConfig()
    run_dir = Path(run_dir)
    out = Path(cfg.out) if cfg.out is not None else RunPaths(run_dir).exports
    if not run_dir.is_dir():
        raise InputError("run folder not found", run_dir, "pass a folder written by "
                         "`instgs train`")
    need_inst = bool(cfg.instances or cfg.query or cfg.split_instances)
    inst = load_instances(run_dir) if need_inst or RunPaths(run_dir).instances.is_file() \
        else None
    ids, stem = _selection(cfg, run_dir, inst)
    _check_writable(out)
    with FolderLock(run_dir, "instgs export"):
        loaded = load_run(run_dir)
        t0 = time.perf_counter()
        splats = load_or_bake(loaded, cfg.bake, inst)
        splats = splats.select(splats.opacities >= cfg.min_opacity)
        chosen = select_splats(splats, ids, cfg.invert)
        paths = _write(chosen, out, cfg.name or stem, cfg, run_dir)
        log.info("instgs export: %d Gaussians (%d baked, SH degree %d) -> %d file(s) in %s, "
                 "%.1f s", len(chosen), len(splats), chosen.sh_degree, len(paths), out,
                 time.perf_counter() - t0)
        update_manifest(run_dir, "export", files=[str(p) for p in paths],
                        num_gaussians=len(chosen), config=cfg)
    return paths


def _write(s: Splats, out: Path, stem: str, cfg: ExportConfig, run_dir: Path) -> list[Path]:
    suffix = SUFFIX[cfg.format]
    if cfg.split_instances:
        folder = out / stem if stem != "scene" else out / "instances"
        paths = []
        for i in sorted(set(s.instance_ids.tolist())):
            name = f"instance_{i:03d}" if i >= 0 else "unassigned"
            paths.append(write_splats(folder / f"{name}{suffix}",
                                      s.select(s.instance_ids == i), cfg.format))
        table_path = folder / "instances.json"
    else:
        paths = [write_splats(out / f"{stem}{suffix}", s, cfg.format)]
        table_path = out / f"{stem}.instances.json"
    write_json(table_path, {"files": [p.name for p in paths], "format": cfg.format,
                            "num_gaussians": len(s), "source": current_source(run_dir),
                            "instances": instance_table(s, run_dir, cfg.text_features)})
    return paths


def instance_table(s: Splats, run_dir: Path | None = None,
                   text_features: Path | None = None) -> list[dict]:
    """Per instance of ``s``: id, Gaussian count, centroid, axis-aligned box (scene units)
    and, with the run's language features and a text-feature table, the best name and its
    cosine (``label``, ``score``).
    """
    labels = _instance_labels(run_dir, text_features) if run_dir is not None else {}
    ids = s.instance_ids.numpy()
    means = s.means.numpy()
    rows = []
    for i in sorted(set(ids.tolist())):
        m = means[ids == i]
        row = {"id": int(i), "num_gaussians": int(len(m)),
               "centroid": [round(float(x), 5) for x in m.mean(0)],
               "bbox_min": [round(float(x), 5) for x in m.min(0)],
               "bbox_max": [round(float(x), 5) for x in m.max(0)]}
        if i in labels:
            row["label"], row["score"] = labels[i]
        rows.append(row)
    return rows


def _instance_labels(run_dir: Path, text_features: Path | None) -> dict[int, tuple[str, float]]:
    """instance id -> (best table name, cosine) when the run has language features."""
    from instgs.language.query import load_text_feature_table
    from instgs.run import load_language

    tf = text_features or run_text_features(run_dir)
    if tf is None or not RunPaths(run_dir).language.is_file():
        return {}
    lang = load_language(run_dir)
    table = load_text_feature_table(tf)
    names = sorted(table)
    t = np.stack([table[n] / max(np.linalg.norm(table[n]), 1e-12) for n in names])
    f = lang.instance_features
    if f.shape[1] != t.shape[1]:
        return {}
    cos = f @ t.T
    out = {}
    for row, i in enumerate(lang.instance_ids.tolist()):
        if np.linalg.norm(f[row]) > 0:
            j = int(np.argmax(cos[row]))
            out[int(i)] = (names[j], round(float(cos[row, j]), 4))
    return out
