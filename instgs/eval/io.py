"""Readers for ScanNet GT and for predictions made by instgs or elsewhere.

GT sources (both give one entry per ``*_vh_clean_2.ply`` vertex, original vertex order):

* a scene folder written by ``../shared/tools/render_scannet_views.py``:
  ``<scene>/gt/instance_per_vertex.npy`` (int32, 0 = unannotated) and
  ``<scene>/gt/nyu40_per_vertex.npy`` (int32 NYU40 id, 0 = unannotated);
* MMDetection3D's per-vertex arrays:
  ``<root>/scannet_train_instance_data/<scene>_ins_label_all.npy`` (uint32 instance id,
  0 = unannotated, 1..K = the ScanNet aggregation groups incl. wall and floor -- the same
  GT instances as the ``segGroups`` of ``<scene>_vh_clean.aggregation.json`` that the
  released ``eval_instance_seg.py`` reads) and ``<scene>_sem_label_all.npy`` (NYU40 id).

Predictions: a per-vertex id file (``.npy`` or a ``.pt`` holding a tensor/array),
InstanceGaussian's ``cluster_lang.npz`` (``leaf_feat``, ``occu_count``, ``leaf_ind``), or a run
folder (its instance labels + optional language features, read through :mod:`instgs.run`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instgs.core.checks import InputError

__all__ = ["ScanNetGT", "Language", "load_scannet_gt", "load_pred_labels", "load_cluster_lang",
           "load_run_language", "load_text_features"]


@dataclass(frozen=True)
class ScanNetGT:
    """Per-vertex ScanNet ground truth.

    Attributes:
        instance: [N] int64 GT instance id, 0 = unannotated.
        semantic: [N] int64 NYU40 id, 0 = unannotated.
        scene: scene name (e.g. "scene0000_00").
        source: the folder or file the GT was read from.
    """

    instance: np.ndarray
    semantic: np.ndarray
    scene: str
    source: Path


@dataclass(frozen=True)
class Language:
    """Per-instance CLIP features for text queries.

    Attributes:
        features: [M, D] float32, one row per instance id.
        view_counts: [M] matched-view count per instance (``occu_count``), or None.
        labels: [N] int64 instance id per vertex (``leaf_ind``), or None when the labels
            come from elsewhere (a run's ``instances.npz``).
        source: file read.
    """

    features: np.ndarray
    view_counts: np.ndarray | None
    labels: np.ndarray | None
    source: Path


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read ({e})", path, "regenerate the file") from e


def load_scannet_gt(path: str | Path, scene: str | None = None) -> ScanNetGT:
    """Read per-vertex GT from a rendered scene folder or MMDetection3D arrays.

    Args:
        path: a rendered scene folder (holding ``gt/instance_per_vertex.npy``), its parent
            (then ``scene`` picks the subfolder), an MMDetection3D data root (holding
            ``scannet_train_instance_data/``) or that ``scannet_train_instance_data`` folder.
        scene: scene name, e.g. "scene0000_00"; required for MMDetection3D roots holding
            more than one scene.

    Returns:
        :class:`ScanNetGT`.

    Raises:
        InputError: nothing recognisable at ``path``, the scene is missing or ambiguous, or
            the arrays disagree in length.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("GT path not found", path,
                         "pass a rendered scene folder or the MMDetection3D ScanNet data root")
    cands = [path] + ([path / scene] if scene else [])
    for d in cands:
        if (d / "gt" / "instance_per_vertex.npy").is_file():
            ins = _load_npy(d / "gt" / "instance_per_vertex.npy")
            sem_p = d / "gt" / "nyu40_per_vertex.npy"
            sem = _load_npy(sem_p) if sem_p.is_file() else np.zeros_like(ins)
            return _make_gt(ins, sem, scene or d.name, d)
    data = path / "scannet_train_instance_data"
    if not data.is_dir():
        data = path
    files = sorted(data.glob("*_ins_label_all.npy"))
    if not files:
        raise InputError("no per-vertex GT found (expected gt/instance_per_vertex.npy or "
                         "scannet_train_instance_data/<scene>_ins_label_all.npy)", path,
                         "pass a scene folder written by render_scannet_views.py or the "
                         "MMDetection3D ScanNet data root with --scene")
    scenes = [f.name[: -len("_ins_label_all.npy")] for f in files]
    if scene is None:
        if len(scenes) != 1:
            raise InputError(f"several scenes here: {scenes}", data, "pass --scene NAME")
        scene = scenes[0]
    if scene not in scenes:
        raise InputError(f"scene {scene!r} not found; available: {scenes}", data,
                         "pass one of the available scene names")
    ins = _load_npy(data / f"{scene}_ins_label_all.npy")
    sem_p = data / f"{scene}_sem_label_all.npy"
    sem = _load_npy(sem_p) if sem_p.is_file() else np.zeros_like(ins)
    return _make_gt(ins, sem, scene, data)


def _make_gt(ins, sem, scene, source) -> ScanNetGT:
    ins = np.asarray(ins).astype(np.int64).reshape(-1)
    sem = np.asarray(sem).astype(np.int64).reshape(-1)
    if ins.shape != sem.shape:
        raise InputError(f"instance ({ins.shape[0]}) and semantic ({sem.shape[0]}) GT differ "
                         "in length", source, "regenerate the GT arrays")
    return ScanNetGT(instance=ins, semantic=sem, scene=scene, source=Path(source))


def load_pred_labels(path: str | Path) -> np.ndarray:
    """Read one predicted instance id per vertex from ``.npy`` or ``.pt``.

    Args:
        path: ``.npy`` array [N] or ``.pt`` holding a tensor/array [N] (e.g.
            InstanceGaussian's ``cluster_result.pt``); a ``.npz`` with ``leaf_ind`` or
            ``anchor_labels`` is accepted too.

    Returns:
        [N] int64.

    Raises:
        InputError: unreadable file, unknown suffix or not a 1-D integer array.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("prediction file not found", path)
    suf = path.suffix.lower()
    if suf == ".npy":
        a = _load_npy(path)
    elif suf == ".npz":
        from instgs.run import load_npz

        z = load_npz(path, "regenerate the file")
        key = next((k for k in ("anchor_labels", "leaf_ind", "labels") if k in z), None)
        if key is None:
            raise InputError(f"no label array among {sorted(z)}", path,
                             "save the labels under 'anchor_labels' or 'leaf_ind'")
        a = z[key]
    elif suf in (".pt", ".pth"):
        import torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 -- torch raises many types for bad files
            raise InputError(f"cannot read as a torch file ({type(e).__name__}: {e})", path,
                             "save a plain tensor with torch.save(labels, path)") from e
        a = obj.numpy() if hasattr(obj, "numpy") else np.asarray(obj)
    else:
        raise InputError(f"unknown prediction format {suf!r}", path,
                         "use .npy or .pt (one instance id per vertex)")
    a = np.asarray(a)
    if a.ndim == 2 and 1 in a.shape:  # [N, 1] or [1, N]
        a = a.reshape(-1)
    if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        raise InputError(f"expected a 1-D integer array, got {a.dtype} {a.shape}", path,
                         "save one integer instance id per vertex")
    return a.astype(np.int64)


def load_cluster_lang(path: str | Path) -> Language:
    """Read InstanceGaussian's ``cluster_lang.npz`` (``leaf_feat``, ``occu_count``, ``leaf_ind``).

    Raises:
        InputError: missing file or keys, inconsistent shapes.
    """
    from instgs.run import load_npz

    path = Path(path)
    if not path.is_file():
        raise InputError("language file not found", path)
    z = load_npz(path, "pass a cluster_lang.npz with leaf_feat, occu_count and leaf_ind")
    need = ("leaf_feat", "leaf_ind")
    miss = [k for k in need if k not in z]
    if miss:
        raise InputError(f"missing keys {miss} (has {sorted(z)})", path,
                         "pass a cluster_lang.npz with leaf_feat, occu_count and leaf_ind")
    feats = z["leaf_feat"].astype(np.float32)
    occ = z["occu_count"] if "occu_count" in z else None
    if feats.ndim != 2 or (occ is not None and occ.shape != (feats.shape[0],)):
        raise InputError(f"leaf_feat {feats.shape} / occu_count "
                         f"{None if occ is None else occ.shape} disagree", path)
    return Language(features=feats, view_counts=occ, labels=z["leaf_ind"].astype(np.int64),
                    source=path)


def load_run_language(run_dir: str | Path) -> Language | None:
    """A run's ``language.npz`` as a :class:`Language` (None when the run has none), read
    through :func:`instgs.run.load_language` (checked against the run's instances and
    checkpoint)."""
    from instgs.run import RunPaths, load_language

    if not RunPaths(Path(run_dir)).language.is_file():
        return None
    lang = load_language(run_dir)
    return Language(features=lang.instance_features, view_counts=lang.view_counts, labels=None,
                    source=RunPaths(Path(run_dir)).language)


def load_text_features(path: str | Path) -> dict[str, np.ndarray]:
    """Read a text-feature JSON ``{name: [D floats]}`` (OpenGaussian ``text_features.json``).

    Raises:
        InputError: not a JSON object of equal-length float lists.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("text-feature file not found", path)
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e})", path) from e
    if not isinstance(d, dict) or not d:
        raise InputError("expected a JSON object {name: [floats]}", path)
    out = {str(k): np.asarray(v, np.float32) for k, v in d.items()}
    dims = {v.shape for v in out.values()}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise InputError(f"text features must all be 1-D of one length, got shapes {dims}", path)
    return out
