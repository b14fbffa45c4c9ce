"""``RUN/instances.npz``: the segment stage's artifact (read by language, export, eval, viewer).

Keys:
    ``anchor_labels``    [N] int64, instance id per anchor in [0, K) (-1 = unassigned).
    ``gaussian_labels``  [N * n_offsets] int64, instance id per neural Gaussian (anchor i's
                         children are rows i*n_offsets .. (i+1)*n_offsets-1); optional.
    ``cluster_feats``    [K, F] float32, one instance feature per instance.
    ``num_instances``    () int64, K.
    ``meta``             () str, JSON (config, timings, counts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instgs.core.artifacts import atomic_save_npz, config_to_dict
from instgs.core.checks import InputError

__all__ = ["InstanceLabels", "INSTANCES_FILE", "save_instances", "load_instances",
           "expand_to_gaussians"]

INSTANCES_FILE = "instances.npz"


@dataclass(frozen=True)
class InstanceLabels:
    """Instance labels of a run (see the module docstring for the file layout).

    Attributes:
        anchor_labels: [N] int64, -1 = unassigned.
        gaussian_labels: [N * n_offsets] int64 or None.
        cluster_feats: [K, F] float32 or None.
        num_instances: K.
        meta: plain data (config, timings).
    """

    anchor_labels: np.ndarray
    gaussian_labels: np.ndarray | None
    cluster_feats: np.ndarray | None
    num_instances: int
    meta: dict[str, Any] = field(default_factory=dict)


def expand_to_gaussians(anchor_labels, n_offsets: int) -> np.ndarray:
    """Per-neural-Gaussian labels: each anchor's label repeated for its ``n_offsets`` children.

    Args:
        anchor_labels: [N] int.
        n_offsets: children per anchor (>= 1; InstanceGaussian uses 5, Scaffold-GS 10).

    Returns:
        [N * n_offsets] int64, anchor-major (``np.repeat``).
    """
    if int(n_offsets) < 1:
        raise InputError(f"n_offsets must be >= 1, got {n_offsets}")
    return np.repeat(np.asarray(anchor_labels, np.int64), int(n_offsets))


def save_instances(run_dir: str | Path, anchor_labels, gaussian_labels=None,
                   cluster_feats=None, meta: dict[str, Any] | None = None) -> Path:
    """Write ``run_dir/instances.npz`` atomically.

    Args:
        run_dir: run folder (created if missing).
        anchor_labels: [N] int.
        gaussian_labels: [M] int or None.
        cluster_feats: [K, F] float or None; K must equal the number of instances.
        meta: JSON-able dict (dataclasses allowed).

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
    return atomic_save_npz(Path(run_dir) / INSTANCES_FILE, **arrays)


def load_instances(run_dir: str | Path) -> InstanceLabels:
    """Read ``run_dir/instances.npz`` (or the file itself when given).

    Raises:
        InputError: file missing (run ``instgs segment RUN`` first) or lacking ``anchor_labels``.
    """
    p = Path(run_dir)
    path = p if p.suffix == ".npz" else p / INSTANCES_FILE
    if not path.is_file():
        raise InputError("no instance labels found", path, "run `instgs segment RUN` first")
    try:
        z = np.load(path, allow_pickle=False)
        files = z.files
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read ({e})", path, "rerun `instgs segment RUN`") from e
    if "anchor_labels" not in files:
        raise InputError(f"no 'anchor_labels' among {files}", path, "rerun `instgs segment RUN`")
    a = z["anchor_labels"].astype(np.int64)
    meta = json.loads(str(z["meta"])) if "meta" in files else {}
    k = int(z["num_instances"]) if "num_instances" in files else int(a.max(initial=-1)) + 1
    return InstanceLabels(
        anchor_labels=a,
        gaussian_labels=z["gaussian_labels"].astype(np.int64) if "gaussian_labels" in files
        else None,
        cluster_feats=z["cluster_feats"] if "cluster_feats" in files else None,
        num_instances=k, meta=meta)
