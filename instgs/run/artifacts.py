"""Typed readers and writers of a run's artifacts: ``instances.npz``, ``language.npz``,
``metrics.json`` and the eval JSONs. Every write is atomic; every ``np.load`` refuses pickles.

``instances.npz`` (``instgs segment``):
    ``anchor_labels``    [N] int64, instance id per anchor in [0, K) (-1 = unassigned).
    ``gaussian_labels``  [N * n_offsets] int64, instance id per neural Gaussian (anchor i's
                         children are rows i*n_offsets .. (i+1)*n_offsets-1); optional.
    ``cluster_feats``    [K, F] float32, one instance feature per instance.
    ``num_instances``    () int64, K.
    ``meta``             () str, JSON (config, timings, counts, ``source``).

``language.npz`` (``instgs language``):
    ``instance_features`` [K, D] float32 (L2-normalised CLIP rows, zero = unmatched),
    ``view_counts`` [K] int64, ``match_scores`` [K] float32, ``instance_ids`` [K] int64,
    ``containment_only`` [K] bool, ``config`` () str JSON, ``meta`` () str JSON (with
    ``source`` and ``anchor_labels_sha1``, the digest of the instances it was made for).

The ``source`` records say which checkpoint an artifact was made from
(:mod:`instgs.run.provenance`); :func:`load_instances` and :func:`load_language` refuse
stale ones unless ``fresh=False``.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instgs.core.artifacts import atomic_save_npz, config_to_dict, read_json, write_json
from instgs.core.checks import InputError

from .layout import RunPaths
from .provenance import check_source, current_source

__all__ = ["InstanceLabels", "LanguageFeatures", "expand_to_gaussians", "labels_digest",
           "save_instances", "load_instances", "save_language", "load_language",
           "save_metrics", "load_metrics", "save_eval", "load_npz"]


def load_npz(path: Path, fix: str) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` (pickles refused).

    Raises:
        InputError: missing, unreadable, or holding object arrays.
    """
    if not path.is_file():
        raise InputError("file not found", path, fix)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        msg = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise InputError(f"cannot read, truncated or corrupt ({msg})", path, fix) from e


def _meta(data: dict, key: str, path: Path, fix: str) -> dict:
    if key not in data:
        return {}
    try:
        return json.loads(str(data[key]))
    except ValueError as e:
        raise InputError(f"its {key!r} entry is not valid JSON", path, fix) from e


# --------------------------------------------------------------------------- instances
@dataclass(frozen=True)
class InstanceLabels:
    """Instance labels of a run (``instances.npz``).

    Attributes:
        anchor_labels: [N] int64, -1 = unassigned.
        gaussian_labels: [N * n_offsets] int64 or None.
        cluster_feats: [K, F] float32 or None.
        num_instances: K.
        meta: plain data (config, timings, counts, ``source``).
    """

    anchor_labels: np.ndarray
    gaussian_labels: np.ndarray | None
    cluster_feats: np.ndarray | None
    num_instances: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_offsets(self) -> int:
        """Neural Gaussians per anchor (from ``meta`` or the label lengths; 1 if unknown)."""
        n = int(self.meta.get("n_offsets") or 0)
        if n <= 0 and self.gaussian_labels is not None and len(self.anchor_labels):
            n = len(self.gaussian_labels) // len(self.anchor_labels)
        return max(n, 1)


def expand_to_gaussians(anchor_labels, n_offsets: int) -> np.ndarray:
    """Per-neural-Gaussian labels: each anchor's label repeated for its ``n_offsets`` children.

    Args:
        anchor_labels: [N] int.
        n_offsets: children per anchor (>= 1; InstanceGaussian uses 5, Scaffold-GS 10).

    Returns:
        [N * n_offsets] int64, anchor-major (``np.repeat``).

    Raises:
        InputError: ``n_offsets < 1``.
    """
    if int(n_offsets) < 1:
        raise InputError(f"n_offsets must be >= 1, got {n_offsets}")
    return np.repeat(np.asarray(anchor_labels, np.int64), int(n_offsets))


def labels_digest(anchor_labels: np.ndarray) -> str:
    """SHA-1 of the int64 anchor labels (detects language features gone stale)."""
    return hashlib.sha1(np.ascontiguousarray(anchor_labels, np.int64).tobytes()).hexdigest()


def save_instances(run_dir: str | Path, anchor_labels, gaussian_labels=None,
                   cluster_feats=None, meta: dict[str, Any] | None = None) -> Path:
    """Write ``RUN/instances.npz`` atomically.

    Args:
        run_dir: run folder (created if missing).
        anchor_labels: [N] int.
        gaussian_labels: [M] int or None.
        cluster_feats: [K, F] float or None; K must equal the number of instances.
        meta: JSON-able dict (dataclasses allowed), ideally with a ``source`` record.

    Returns:
        The written path.

    Raises:
        InputError: labels not 1-D, or ``cluster_feats`` rows disagree with the label range.
    """
    a = np.asarray(anchor_labels).astype(np.int64)
    if a.ndim != 1:
        raise InputError(f"anchor_labels must be [N], got {a.shape}")
    k = int(a.max(initial=-1)) + 1
    arrays: dict[str, np.ndarray] = {"anchor_labels": a, "num_instances": np.int64(k)}
    if gaussian_labels is not None:
        g = np.asarray(gaussian_labels).astype(np.int64)
        if g.ndim != 1:
            raise InputError(f"gaussian_labels must be [M], got {g.shape}")
        arrays["gaussian_labels"] = g
    if cluster_feats is not None:
        c = np.asarray(cluster_feats, np.float32)
        if c.ndim != 2 or c.shape[0] != k:
            raise InputError(f"cluster_feats must be [K={k}, F], got {c.shape}")
        arrays["cluster_feats"] = c
    arrays["meta"] = np.array(json.dumps(config_to_dict(meta or {})))
    return atomic_save_npz(_instances_path(run_dir), **arrays)


def _instances_path(p: str | Path) -> Path:
    p = Path(p)
    return p if p.suffix == ".npz" else RunPaths(p).instances


def load_instances(run_dir: str | Path, *, fresh: bool = True) -> InstanceLabels:
    """Read ``RUN/instances.npz`` (or an ``.npz`` file given directly).

    Args:
        run_dir: the run folder, or the file itself.
        fresh: refuse labels made from another checkpoint than the run's current one
            (ignored when a file is given).

    Raises:
        InputError: missing (run ``instgs segment RUN``), unreadable, lacking
            ``anchor_labels``, or stale.
    """
    path = _instances_path(run_dir)
    run = path.parent if Path(run_dir).suffix != ".npz" else None
    fix = f"run `instgs segment {run or 'RUN'}`"
    if not path.is_file():
        raise InputError("no instance labels found", path, f"{fix} first")
    data = load_npz(path, fix)
    if "anchor_labels" not in data:
        raise InputError(f"no 'anchor_labels' among {sorted(data)}", path, fix)
    a = data["anchor_labels"].astype(np.int64).reshape(-1)
    meta = _meta(data, "meta", path, fix)
    if fresh and run is not None and RunPaths(run).checkpoint.is_file():
        check_source(meta.get("source"), current_source(run), path, f"instgs segment {run}")
    k = int(data["num_instances"]) if "num_instances" in data else int(a.max(initial=-1)) + 1
    g = data.get("gaussian_labels")
    return InstanceLabels(anchor_labels=a,
                          gaussian_labels=None if g is None else g.astype(np.int64),
                          cluster_feats=data.get("cluster_feats"), num_instances=k, meta=meta)


# --------------------------------------------------------------------------- language
@dataclass
class LanguageFeatures:
    """Per-instance CLIP features of a run (the content of ``RUN/language.npz``).

    Attributes:
        instance_features: [K, D] float32, L2-normalised rows; zero rows for instances never
            matched (D = 512 for ViT-B CLIP).
        view_counts: [K] int64, number of views with a kept match (``occu_count``).
        match_scores: [K] float32, mean score of the pooled matches (0 if none).
        instance_ids: [K] int64, the instance id of each row (values of ``anchor_labels``).
        config: the association settings as plain data.
        meta: plain data (clip_features_available, sam_level, views, n_offsets, timings,
            ``anchor_labels_sha1``, ``source``).
        containment_only: [K] bool, the feature came from the containment fallback alone
            (a fragment inside one object's mask); None = all False.
    """

    instance_features: np.ndarray
    view_counts: np.ndarray
    match_scores: np.ndarray
    instance_ids: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    containment_only: np.ndarray | None = None


def save_language(run_dir: str | Path, lang: LanguageFeatures) -> Path:
    """Write ``RUN/language.npz`` atomically (keys in the module docstring)."""
    k = len(lang.instance_ids)
    part = np.zeros(k, bool) if lang.containment_only is None else lang.containment_only
    return atomic_save_npz(
        _language_path(run_dir),
        containment_only=np.asarray(part, bool),
        instance_features=np.asarray(lang.instance_features, np.float32),
        view_counts=np.asarray(lang.view_counts, np.int64),
        match_scores=np.asarray(lang.match_scores, np.float32),
        instance_ids=np.asarray(lang.instance_ids, np.int64),
        config=np.array(json.dumps(config_to_dict(lang.config))),
        meta=np.array(json.dumps(config_to_dict(lang.meta))))


def _language_path(p: str | Path) -> Path:
    p = Path(p)
    return p if p.suffix == ".npz" else RunPaths(p).language


def load_language(run_dir: str | Path, *, fresh: bool = True,
                  instances: InstanceLabels | None = None) -> LanguageFeatures:
    """Read ``RUN/language.npz`` (or the file itself).

    Args:
        run_dir: the run folder, or the file.
        fresh: refuse features made for other instance labels than the run's
            ``instances.npz`` (or ``instances`` when given), or from another checkpoint.
        instances: the run's labels, when the caller already read them.

    Raises:
        InputError: missing (tells to run ``instgs language RUN``), unreadable, keys missing
            or inconsistent, or stale.
    """
    path = _language_path(run_dir)
    run = path.parent if Path(run_dir).suffix != ".npz" else None
    fix = f"run `instgs language {run or 'RUN'}`"
    if not path.is_file():
        raise InputError("this run has no language features", path, f"{fix} first")
    data = load_npz(path, fix)
    need = ("instance_features", "view_counts", "match_scores", "instance_ids")
    missing = [k for k in need if k not in data]
    if missing:
        raise InputError(f"missing keys {missing}", path, fix)
    f = data["instance_features"].astype(np.float32)
    k = f.shape[0] if f.ndim == 2 else -1
    part = data.get("containment_only")
    if k < 0 or any(data[n].shape != (k,) for n in need[1:]) or \
            (part is not None and part.shape != (k,)):
        raise InputError("inconsistent array shapes", path, fix)
    meta = _meta(data, "meta", path, fix)
    if fresh and run is not None:
        inst = instances if instances is not None else load_instances(run)
        sha = meta.get("anchor_labels_sha1")
        if sha is not None and sha != labels_digest(inst.anchor_labels):
            raise InputError("the instances changed after the language features were "
                             "computed", path, f"rerun `instgs language {run}`")
        if RunPaths(run).checkpoint.is_file():
            check_source(meta.get("source"), current_source(run), path,
                         f"instgs language {run}")
    return LanguageFeatures(f, data["view_counts"].astype(np.int64),
                            data["match_scores"].astype(np.float32),
                            data["instance_ids"].astype(np.int64),
                            _meta(data, "config", path, fix), meta,
                            containment_only=(np.zeros(k, bool) if part is None
                                              else part.astype(bool)))


# --------------------------------------------------------------------------- json artifacts
def save_metrics(run_dir: str | Path, metrics: dict[str, Any]) -> Path:
    """Write ``RUN/metrics.json`` atomically."""
    return write_json(RunPaths(Path(run_dir)).metrics, metrics)


def load_metrics(run_dir: str | Path) -> dict[str, Any]:
    """Read ``RUN/metrics.json`` ({} when the run has none yet).

    Raises:
        InputError: the file exists but is not valid JSON.
    """
    p = RunPaths(Path(run_dir)).metrics
    return read_json(p) if p.is_file() else {}


def save_eval(run_dir: str | Path, benchmark: str, result: dict[str, Any],
              out: str | Path | None = None) -> Path:
    """Write an evaluation result to ``out`` or ``RUN/eval_<benchmark>.json`` atomically."""
    return write_json(Path(out) if out is not None else RunPaths(Path(run_dir)).eval(benchmark),
                      result)
