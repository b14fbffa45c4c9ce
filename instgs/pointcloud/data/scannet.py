"""ScanNet v2 point clouds with semantic (ScanNet20) and instance labels.

Reads the three common per-scene layouts into one :class:`PointScene`:

* **Pointcept** (``Pointcept/Pointcept``, ``preprocess_scannet.py``): a folder per scene with
  ``coord.npy`` (float32 [N,3]), ``color.npy`` (uint8 0..255 [N,3]), ``segment20.npy``
  (0..19, -1 ignore) and ``instance.npy`` (aggregation group id, -1 none).
* **HAIS / PointGroup** (``hustvl/HAIS``, ``prepare_data_inst.py``): ``<scene>_inst_nostuff.pth``
  = ``torch.save((coords, colors, sem_labels, instance_labels))`` with colours already in
  [-1, 1], semantic 0..19 / -100 and instance ids / -100 (wall and floor already removed).
  The file is a pickle of numpy arrays (float64 from ``prepare_data_inst.py``). It is read
  with ``torch.load(weights_only=True)`` and only the numpy globals such arrays need
  (:data:`HAIS_PTH_SAFE_GLOBALS`); any other object in the file is refused, never built.
* **MMDetection3D** (``open-mmlab/mmdetection3d``, ``scannet_train_instance_data``):
  ``<scene>_vert_all.npy`` (float32 [N,6] xyz + rgb 0..255, axis-aligned),
  ``<scene>_ins_label_all.npy`` (0 = unannotated, 1..K) and ``<scene>_sem_label_all.npy``
  (NYU40 ids, 0 = unannotated).

Conventions of the returned scene (those of HAIS): coordinates in metres in the file's frame
(not centred; use :class:`instgs.pointcloud.data.transforms.Center`), colours
``rgb / 127.5 - 1`` in [-1, 1], semantic ScanNet20 index or ``IGNORE_INDEX`` (-100), instance
ids consecutive 0..I-1 with -100 for unannotated points and for wall / floor, which are
"stuff" without instances. As in HAIS, instances of objects outside the 20 classes (e.g.
ceiling, otherprop) keep an instance id while their semantic label is -100; pass
``benchmark_instances_only=True`` to drop them too.

Labels are optional with ``require_labels=False`` (inference on unlabelled scans: a Pointcept
folder with only ``coord.npy`` / ``color.npy``, MMDetection3D points without the label
arrays, a HAIS test-split ``(coords, colors)`` file); missing labels are then all -100.
"""

from __future__ import annotations

import copy
import logging
import pickle
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from instgs.core.checks import InputError
from instgs.pointcloud.data.labels import IGNORE_INDEX, SCANNET_STUFF, nyu40_to_scannet20

log = logging.getLogger(__name__)

__all__ = [
    "HAIS_PTH_SAFE_GLOBALS",
    "PointScene",
    "load_scannet_scene",
    "list_scannet_scenes",
    "validate_scene",
    "relabel_instances",
    "ScanNetDataset",
    "class_statistics",
]


@dataclass
class PointScene:
    """One labelled point cloud.

    Attributes:
        name: scene name, e.g. ``"scene0000_00"``.
        coord: [N, 3] float32, metres.
        color: [N, 3] float32 in [-1, 1] (``rgb / 127.5 - 1``, HAIS).
        semantic: [N] int64, class index (0..19 ScanNet20, 0..12 S3DIS) or -100.
        instance: [N] int64, consecutive 0..I-1, -100 = no instance.
        extra: optional per-point arrays that transforms keep aligned (e.g. ``"index"``).
    """

    name: str
    coord: np.ndarray
    color: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return int(self.coord.shape[0])

    @property
    def num_instances(self) -> int:
        valid = self.instance[self.instance >= 0]
        return int(valid.max()) + 1 if valid.size else 0

    def subset(self, index: np.ndarray, relabel: bool = True) -> PointScene:
        """Points ``index`` (int array or bool mask) of this scene; instance ids made
        consecutive again when ``relabel``."""
        inst = self.instance[index]
        return PointScene(
            self.name, self.coord[index], self.color[index], self.semantic[index],
            relabel_instances(inst) if relabel else inst,
            {k: v[index] for k, v in self.extra.items()},
        )

    def copy(self) -> PointScene:
        return copy.deepcopy(self)


def relabel_instances(instance: np.ndarray) -> np.ndarray:
    """Make instance ids consecutive (0..I-1, sorted by old id); negatives become -100."""
    instance = np.asarray(instance, dtype=np.int64)
    out = np.full(instance.shape, IGNORE_INDEX, dtype=np.int64)
    valid = instance >= 0
    if valid.any():
        _, inv = np.unique(instance[valid], return_inverse=True)
        out[valid] = inv
    return out


def validate_scene(scene: PointScene, path: str | Path | None = None,
                   num_classes: int | None = None) -> PointScene:
    """Check shapes, dtypes, finiteness and ranges; cast to the documented dtypes.

    Raises:
        InputError: empty scene, NaN/Inf coordinates or colours, per-point arrays of
            different lengths, colours outside [-1, 1], labels outside the class range.
    """
    where = path if path is not None else scene.name
    coord = np.asarray(scene.coord)
    if coord.ndim != 2 or coord.shape[1] != 3:
        raise InputError(f"coordinates must have shape (N, 3), got {coord.shape}", where,
                         "store xyz as an [N, 3] array")
    n = coord.shape[0]
    if n == 0:
        raise InputError("the scene has no points", where, "check the export; empty scenes "
                         "cannot be segmented — drop it from the split")
    lengths = {"coord": n, "color": len(scene.color), "semantic": len(scene.semantic),
               "instance": len(scene.instance)}
    lengths.update({k: len(v) for k, v in scene.extra.items()})
    if len(set(lengths.values())) != 1:
        raise InputError(f"per-point arrays have different lengths {lengths}", where,
                         "re-export the scene so that every array has one entry per point")
    color = np.asarray(scene.color)
    if color.ndim != 2 or color.shape[1] != 3:
        raise InputError(f"colours must have shape (N, 3), got {color.shape}", where,
                         "store rgb as an [N, 3] array")
    for name, arr in (("coordinates", coord), ("colours", color)):
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise InputError(f"{int(bad.sum())} points have NaN/Inf {name} (first: point "
                             f"{first})", where, "remove or repair those points")
    if np.abs(color).max() > 1.0 + 1e-4:
        raise InputError(f"colours must lie in [-1, 1], got range [{color.min()}, "
                         f"{color.max()}]", where, "convert 0..255 rgb with rgb / 127.5 - 1")
    sem = np.asarray(scene.semantic).astype(np.int64)
    bad_sem = (sem < 0) & (sem != IGNORE_INDEX)
    if num_classes is not None:
        bad_sem |= sem >= num_classes
    if bad_sem.any():
        raise InputError(f"semantic labels must be 0..{(num_classes or '?')}-1 or -100, got "
                         f"{np.unique(sem[bad_sem])[:5]}", where, "map the labels first")
    return replace(scene, coord=coord.astype(np.float32), color=color.astype(np.float32),
                   semantic=sem, instance=np.asarray(scene.instance).astype(np.int64))


def _drop_stuff(instance: np.ndarray, semantic: np.ndarray, benchmark_only: bool) -> np.ndarray:
    """instance -> -100 on wall/floor (and on non-benchmark classes if asked), then relabel.

    An instance is dropped as a whole when the majority of its points is stuff."""
    inst = relabel_instances(instance)
    num = int(inst.max()) + 1 if (inst >= 0).any() else 0
    if num == 0:
        return inst
    valid = inst >= 0
    # majority semantic per instance (ignore label counted as its own bucket 20)
    sem = np.where(semantic < 0, 20, semantic)
    counts = np.zeros((num, 21), dtype=np.int64)
    np.add.at(counts, (inst[valid], sem[valid]), 1)
    major = counts.argmax(1)
    drop = np.isin(major, SCANNET_STUFF)
    if benchmark_only:
        drop |= major == 20
    inst[valid & drop[np.where(valid, inst, 0)]] = IGNORE_INDEX
    return relabel_instances(inst)


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError("file not found", path, "check the scene folder layout")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # corrupt / not an npy
        raise InputError(f"cannot read .npy ({e})", path, "re-export the file") from e


_NEEDS_LABELS = ("this command needs labelled scenes; pass the scene's label files, or use "
                 "instgs-pc predict, which needs none")


def _no_labels(n: int) -> np.ndarray:
    return np.full(n, IGNORE_INDEX, dtype=np.int64)


def _load_pointcept(folder: Path, benchmark_only: bool, require_labels: bool) -> PointScene:
    coord = _load_npy(folder / "coord.npy")
    color = _load_npy(folder / "color.npy").astype(np.float32)
    seg_path = folder / "segment20.npy"
    if seg_path.is_file() or require_labels:
        if not seg_path.is_file():
            raise InputError("label file not found", seg_path, _NEEDS_LABELS)
        seg = _load_npy(seg_path).astype(np.int64).reshape(-1)
        seg[seg < 0] = IGNORE_INDEX
    else:
        seg = _no_labels(len(coord))
    inst_path = folder / "instance.npy"
    inst = (_load_npy(inst_path).astype(np.int64).reshape(-1) if inst_path.is_file()
            else _no_labels(len(seg)))
    raw = PointScene(folder.name, coord, color / 127.5 - 1.0, seg, inst)
    _check_lengths(raw, folder)
    scene = validate_scene(raw, folder, num_classes=20)
    scene.instance = _drop_stuff(scene.instance, scene.semantic, benchmark_only)
    return scene


def _check_lengths(scene: PointScene, where: Path) -> None:
    lengths = {"coord": len(scene.coord), "color": len(scene.color),
               "semantic": len(scene.semantic), "instance": len(scene.instance)}
    if len(set(lengths.values())) != 1:
        raise InputError(f"per-point arrays have different lengths {lengths}", where,
                         "re-export the scene so that every array has one entry per point")


def _numpy_reconstruct():
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _hais_safe_globals() -> list:
    """What unpickling a tuple of numeric numpy arrays needs, and nothing else.

    ``torch.save`` of an ndarray pickles ``_reconstruct(ndarray, (0,), b"b")`` and then sets
    the array's state: shape, a ``numpy.dtype("f8", ...)`` (whose class, e.g.
    ``numpy.dtypes.Float64DType``, must be allowed to receive its state) and the raw bytes.
    Files written under numpy 1.x name ``numpy.core.multiarray._reconstruct``.
    """
    rec = _numpy_reconstruct()
    dt = np.dtypes
    return [rec, (rec, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype,
            dt.Float32DType, dt.Float64DType, dt.Int32DType, dt.Int64DType]


#: Globals allowed while reading a HAIS ``.pth`` (``torch.load(weights_only=True)``): numpy's
#: array reconstructor (under its numpy 2 and numpy 1 names), ``ndarray``, ``dtype`` and the
#: float32 / float64 / int32 / int64 dtype classes. HAIS's ``prepare_data_inst.py`` writes
#: float64 arrays; the other three are what converters write for coordinates and labels.
HAIS_PTH_SAFE_GLOBALS = _hais_safe_globals()

_HAIS_FIX = ("regenerate it with HAIS prepare_data_inst.py (a tuple of numpy arrays), or "
             "convert the scene to the Pointcept layout (coord.npy, color.npy, segment20.npy, "
             "instance.npy)")


def _read_hais_pth(pth: Path) -> tuple:
    """``torch.load`` a HAIS file without running code; InputError on anything else."""
    try:
        with torch.serialization.safe_globals(HAIS_PTH_SAFE_GLOBALS):
            data = torch.load(pth, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = str(e).strip().splitlines()
        detail = next((d for d in detail if "GLOBAL" in d or "Unsupported" in d or
                       "Can only build" in d), detail[-1] if detail else "")
        raise InputError("refused to load: the file holds Python objects other than numpy "
                         "arrays, and unpickling them could run code (" + detail.strip()[:200]
                         + ")", pth, _HAIS_FIX + "; never load .pth files from untrusted "
                         "sources") from e
    except Exception as e:  # truncated / corrupt / not a torch file
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot read HAIS .pth, truncated or corrupt ({msg})", pth,
                         _HAIS_FIX) from e
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 4):
        raise InputError("expected a tuple (coords, colors[, sem_labels, instance_labels]), "
                         f"got {type(data).__name__}"
                         + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else ""),
                         pth, _HAIS_FIX)
    out = []
    for i, d in enumerate(data):
        a = d.numpy() if isinstance(d, torch.Tensor) else d
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiub":
            raise InputError(f"element {i} is a {type(d).__name__}"
                             + (f" of dtype {a.dtype}" if isinstance(a, np.ndarray) else "")
                             + ", not a numeric array", pth, _HAIS_FIX)
        out.append(a)
    return tuple(out)


def _load_hais(pth: Path, benchmark_only: bool, require_labels: bool) -> PointScene:
    data = _read_hais_pth(pth)
    coord, color = data[:2]
    if len(data) == 4:
        sem, inst = (d.astype(np.int64).reshape(-1) for d in data[2:])
    elif require_labels:
        raise InputError("the file has no labels (HAIS test split: coords, colors only)", pth,
                         _NEEDS_LABELS)
    else:  # test split: no labels
        sem = inst = _no_labels(len(coord))
    sem = np.where(sem < 0, IGNORE_INDEX, sem)
    name = pth.name.split("_inst_nostuff")[0].removesuffix(".pth")
    raw = PointScene(name, coord, color, sem, inst)
    _check_lengths(raw, pth)
    scene = validate_scene(raw, pth, num_classes=20)
    scene.instance = _drop_stuff(scene.instance, scene.semantic, benchmark_only)
    return scene


def _mmdet3d_dir(path: Path) -> Path:
    sub = path / "scannet_train_instance_data"
    return sub if sub.is_dir() else path


def _load_mmdet3d(path: Path, scene: str | None, benchmark_only: bool,
                  require_labels: bool) -> PointScene:
    if path.is_file():
        folder, scene = path.parent, path.name.removesuffix("_vert_all.npy")
    else:
        folder = _mmdet3d_dir(path)
        if scene is None:
            names = sorted(p.name.removesuffix("_vert_all.npy")
                           for p in folder.glob("*_vert_all.npy"))
            if len(names) != 1:
                raise InputError(f"folder holds {len(names)} scenes {names[:5]}; which one?",
                                 folder, "pass scene='scene0000_00'")
            scene = names[0]
    vert_path = folder / f"{scene}_vert_all.npy"
    vert = _load_npy(vert_path)
    if vert.ndim != 2 or vert.shape[1] < 6:
        raise InputError(f"expected [N, 6] xyz+rgb, got {vert.shape}", vert_path,
                         "use MMDetection3D's *_vert_all.npy export")
    ins_path = folder / f"{scene}_ins_label_all.npy"
    sem_path = folder / f"{scene}_sem_label_all.npy"
    labelled = ins_path.is_file() or sem_path.is_file()
    if labelled or require_labels:
        for p in (ins_path, sem_path):
            if not p.is_file():
                raise InputError("label file not found", p, _NEEDS_LABELS)
        inst = _load_npy(ins_path).astype(np.int64).reshape(-1)
        nyu = _load_npy(sem_path).astype(np.int64).reshape(-1)
        for p, arr in ((ins_path, inst), (sem_path, nyu)):
            if len(arr) != len(vert):
                raise InputError(f"has {len(arr)} labels but {vert_path.name} has "
                                 f"{len(vert)} points", p,
                                 "use label and vertex files of the same export")
        try:
            sem = nyu40_to_scannet20(nyu)
        except InputError as e:
            raise InputError(str(e), sem_path) from e
        inst = np.where(inst > 0, inst, IGNORE_INDEX)
    else:
        sem = inst = _no_labels(len(vert))
    raw = PointScene(scene, vert[:, :3], vert[:, 3:6].astype(np.float32) / 127.5 - 1.0,
                     sem, inst)
    out = validate_scene(raw, vert_path, num_classes=20)
    out.instance = _drop_stuff(out.instance, out.semantic, benchmark_only)
    return out


def _detect(path: Path, scene: str | None) -> tuple[str, Path]:
    if path.is_file():
        if path.suffix == ".pth":
            return "hais", path
        if path.name.endswith("_vert_all.npy"):
            return "mmdet3d", path
        raise InputError("unrecognised scene file", path,
                         "pass a HAIS *_inst_nostuff.pth, a Pointcept scene folder, or the "
                         "MMDetection3D folder plus a scene name")
    if not path.is_dir():
        raise InputError("no such file or folder", path, "check the path")
    if (path / "coord.npy").is_file():
        return "pointcept", path
    if scene is not None:
        if (path / scene / "coord.npy").is_file():
            return "pointcept", path / scene
        hits = sorted(path.glob(f"{scene}*.pth"))
        if hits:
            return "hais", hits[0]
    mm = _mmdet3d_dir(path)
    if any(mm.glob("*_vert_all.npy")):
        return "mmdet3d", path
    raise InputError("no ScanNet scene found (looked for coord.npy, *_inst_nostuff.pth, "
                     "*_vert_all.npy)", path, "pass a scene folder/file or the right scene name")


def load_scannet_scene(path: str | Path, scene: str | None = None, *,
                       layout: str = "auto", benchmark_instances_only: bool = False,
                       require_labels: bool = True) -> PointScene:
    """Load one ScanNet scene from a Pointcept folder, a HAIS ``.pth`` or MMDetection3D files.

    Args:
        path: a Pointcept scene folder (``coord.npy`` ...), a HAIS ``*_inst_nostuff.pth``,
            an MMDetection3D ``*_vert_all.npy`` or its folder (or the folder above
            ``scannet_train_instance_data``), or a split folder plus ``scene``.
        scene: scene name, e.g. ``"scene0000_00"``, when ``path`` is a folder of scenes.
        layout: ``"auto"``, ``"pointcept"``, ``"hais"`` or ``"mmdet3d"``.
        benchmark_instances_only: also drop instances whose class is outside ScanNet20.
        require_labels: raise when the label files are missing (training, evaluation);
            ``False`` (prediction) reads points and colours only when there are no labels
            and fills ``semantic`` / ``instance`` with -100.

    Returns:
        PointScene with coord [N,3] float32 m, color [N,3] float32 in [-1,1], semantic [N]
        int64 (0..19 / -100), instance [N] int64 (0..I-1 / -100; wall, floor excluded).

    Raises:
        InputError: missing files, NaN/Inf coordinates, arrays of different lengths, an
            empty scene, unrecognised layout, a ``.pth`` holding anything but numeric numpy
            arrays (refused unread) — each naming the offending file.

    References:
        HAIS ``prepare_data_inst.py`` (label remap, colours, wall/floor exclusion);
        Pointcept ``preprocess_scannet.py``; MMDetection3D ``batch_load_scannet_data.py``.
    """
    path = Path(path)
    kind, target = _detect(path, scene) if layout == "auto" else (layout, path)
    if kind == "pointcept":
        if scene is not None and not (target / "coord.npy").is_file():
            target = target / scene
        out = _load_pointcept(target, benchmark_instances_only, require_labels)
    elif kind == "hais":
        if target.is_dir():
            hits = sorted(target.glob(f"{scene}*.pth")) if scene else []
            if not hits:
                raise InputError(f"no {scene}*.pth here", target, "pass the .pth file")
            target = hits[0]
        out = _load_hais(target, benchmark_instances_only, require_labels)
    elif kind == "mmdet3d":
        out = _load_mmdet3d(target, scene, benchmark_instances_only, require_labels)
    else:
        raise InputError(f"unknown layout {layout!r}", path,
                         "use 'auto', 'pointcept', 'hais' or 'mmdet3d'")
    log.debug("%s (%s, %s): %d points, %d instances", out.name, kind, target,
              out.num_points, out.num_instances)
    return out


def list_scannet_scenes(folder: str | Path) -> list[str]:
    """Scene names found in a Pointcept split folder, a HAIS folder or an MMDetection3D folder."""
    folder = Path(folder)
    names = {p.parent.name for p in folder.glob("*/coord.npy")}
    names |= {p.name.split("_inst_nostuff")[0] for p in folder.glob("*_inst_nostuff.pth")}
    names |= {p.name.removesuffix("_vert_all.npy")
              for p in _mmdet3d_dir(folder).glob("*_vert_all.npy")}
    return sorted(names)


Transform = Callable[[PointScene, np.random.Generator], PointScene]


class ScanNetDataset(torch.utils.data.Dataset):
    """Scenes (in memory or as paths loaded on access) with seedable augmentation.

    Args:
        scenes: list of :class:`PointScene`, or of paths / ``(path, scene_name)`` pairs for
            :func:`load_scannet_scene` (loaded lazily, on each access).
        transforms: a callable ``(scene, rng) -> scene`` such as
            :class:`instgs.pointcloud.data.transforms.Compose`; ``None`` = no augmentation.
        seed: base seed. Item ``i`` of epoch ``e`` uses ``np.random.default_rng((seed, e,
            i, worker_seed))``, so runs repeat exactly for a fixed seed and epoch, and
            DataLoader workers get different streams.

    ``__getitem__`` returns an augmented **copy**; the stored scenes are never modified.
    """

    def __init__(self, scenes: Sequence[PointScene | str | Path | tuple[str | Path, str]],
                 transforms: Transform | None = None, seed: int = 0):
        if len(scenes) == 0:
            raise InputError("no scenes given", None, "pass at least one scene or path")
        self.scenes = list(scenes)
        self.transforms = transforms
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation stream (call once per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.scenes)

    def scene(self, i: int) -> PointScene:
        """Un-augmented scene ``i`` (loaded if given as a path)."""
        s = self.scenes[i]
        if isinstance(s, PointScene):
            return s
        if isinstance(s, tuple):
            return load_scannet_scene(s[0], s[1])
        return load_scannet_scene(s)

    def sample(self, i: int, key: Sequence[int]) -> PointScene:
        """Scene ``i`` augmented with the stream ``np.random.default_rng((seed, *key, i,
        crc32(name)))``. The trainer passes ``key = (epoch, global position)`` so that the
        same global sample gets the same augmentation however many processes train.

        Returns:
            an augmented copy (the stored scene is never modified).
        """
        scene = self.scene(i).copy()
        if self.transforms is None:
            return scene
        rng = np.random.default_rng((self.seed, *[int(k) for k in key], i,
                                     zlib.crc32(scene.name.encode())))
        return self.transforms(scene, rng)

    def __getitem__(self, i: int) -> PointScene:
        scene = self.scene(i).copy()
        if self.transforms is None:
            return scene
        info = torch.utils.data.get_worker_info()
        worker = 0 if info is None else info.seed % (2**32)
        rng = np.random.default_rng((self.seed, self.epoch, i, worker,
                                     zlib.crc32(scene.name.encode())))
        return self.transforms(scene, rng)


def class_statistics(scenes: Sequence[PointScene], num_classes: int = 20,
                     ignore_classes: Sequence[int] = SCANNET_STUFF, radius: str = "mean"
                     ) -> dict[str, np.ndarray]:
    """Per-class mean instance size and radius, as HAIS set aggregation needs them.

    The class of an instance is the majority semantic label of its points (-100 ignored).
    HAIS ships ``class_numpoint_mean`` / ``class_radius_mean`` tables without the script
    that made them (pointcloud-methods.md §P0 0.5), so the radius definition is a choice:
    ``"mean"`` (default) = mean distance of the instance's points to its centroid,
    ``"rms"`` = root-mean-square distance, ``"max"`` = largest distance. On the 26
    benchmark-class instances of scene0000_00 HAIS's table is on average ~1.2x "mean" and
    ~0.7x "max" (sink 0.30 vs mean 0.30 / max 0.61; sofa 1.01 vs 1.02 / 1.83), see
    docs/pointcloud.md.

    Args:
        scenes: labelled scenes (training data, at the density used for inference).
        num_classes: number of semantic classes.
        ignore_classes: classes without instances; their entries are -1 (as in HAIS).
        radius: ``"mean"``, ``"rms"`` or ``"max"`` distance to the centroid (see above).

    Returns:
        dict with ``class_numpoint_mean`` [C] float64 (points, -1 = no instance),
        ``class_radius_mean`` [C] float64 (metres, -1 = none), ``class_count`` [C] int64.

    Raises:
        InputError: no scenes.
    """
    if len(scenes) == 0:
        raise InputError("no scenes given", None, "pass the training scenes")
    if radius not in ("mean", "rms", "max"):
        raise InputError(f"radius must be 'mean', 'rms' or 'max', got {radius!r}")
    npts = [[] for _ in range(num_classes)]
    radii = [[] for _ in range(num_classes)]
    for sc in scenes:
        valid = sc.instance >= 0
        if not valid.any():
            continue
        inst = sc.instance[valid]
        sem = sc.semantic[valid]
        xyz = sc.coord[valid].astype(np.float64)
        num = int(inst.max()) + 1
        cnt = np.bincount(inst, minlength=num)
        cen = np.zeros((num, 3))
        np.add.at(cen, inst, xyz)
        cen /= np.maximum(cnt, 1)[:, None]
        d = np.linalg.norm(xyz - cen[inst], axis=1)
        if radius == "max":
            rad = np.zeros(num)
            np.maximum.at(rad, inst, d)
        elif radius == "mean":
            rad = np.bincount(inst, weights=d, minlength=num) / np.maximum(cnt, 1)
        else:
            rad = np.sqrt(np.bincount(inst, weights=d * d, minlength=num) / np.maximum(cnt, 1))
        votes = np.zeros((num, num_classes + 1), dtype=np.int64)
        np.add.at(votes, (inst, np.where(sem < 0, num_classes, sem)), 1)
        votes[:, num_classes] = 0  # ignore -100 in the vote
        has = votes.sum(1) > 0
        cls = votes.argmax(1)
        for k in np.flatnonzero((cnt > 0) & has):
            c = int(cls[k])
            if c in ignore_classes:
                continue
            npts[c].append(cnt[k])
            radii[c].append(rad[k])
    mean_n = np.array([np.mean(v) if v else -1.0 for v in npts])
    mean_r = np.array([np.mean(v) if v else -1.0 for v in radii])
    return {"class_numpoint_mean": mean_n, "class_radius_mean": mean_r,
            "class_count": np.array([len(v) for v in npts], dtype=np.int64)}
