"""S3DIS rooms in the Stanford release layout, and the Area-5 / 6-fold splits.

Layout (``Stanford3dDataset_v1.2_Aligned_Version``)::

    <root>/Area_5/office_1/Annotations/chair_1.txt   # "x y z r g b" per line
    <root>/Area_5/office_1/Annotations/wall_3.txt
    ...

A room is the concatenation of its ``Annotations/*.txt`` files (as in the PointGroup / HAIS
/ Pointcept preprocessing): each file is one instance whose class is the name before the
last ``_``; ``stairs`` (only in Area 2) is mapped to ``clutter``. All 13 classes have
instances (no stuff in S3DIS evaluation).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from instgs.core.checks import InputError
from instgs.pointcloud.data.labels import S3DIS_NAMES
from instgs.pointcloud.data.scannet import PointScene, validate_scene

__all__ = ["load_s3dis_room", "s3dis_rooms", "s3dis_split", "S3DIS_AREAS"]

S3DIS_AREAS = tuple(f"Area_{k}" for k in range(1, 7))
_CLASS = {n: k for k, n in enumerate(S3DIS_NAMES)}
_CLASS["stairs"] = _CLASS["clutter"]
_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _read_txt(path: Path) -> np.ndarray:
    try:
        arr = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError:
        # a few release files hold stray bytes inside numbers (e.g. Area_5/hallway_6):
        # keep the numeric tokens of each line
        rows = []
        with open(path, errors="replace") as fh:
            for line in fh:
                vals = [float(t) for t in _NUM.findall(line)]
                if len(vals) >= 6:
                    rows.append(vals[:6])
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    if arr.shape[0] and arr.shape[1] < 6:
        raise InputError(f"expected 6 columns 'x y z r g b', got {arr.shape[1]}", path,
                         "use the Stanford3dDataset_v1.2 annotation files")
    return arr[:, :6]


def load_s3dis_room(path: str | Path) -> PointScene:
    """Load one S3DIS room from its folder (with ``Annotations/``).

    Args:
        path: room folder, e.g. ``<root>/Area_5/office_1``.

    Returns:
        PointScene named ``"Area_5/office_1"``: coord [N,3] float32 m, color [N,3] in
        [-1, 1] (``rgb / 127.5 - 1``), semantic [N] in 0..12 (``S3DIS_NAMES`` order),
        instance [N] consecutive 0..I-1 (one per annotation file, in sorted file order).

    Raises:
        InputError: no ``Annotations`` folder or files, an unknown class name, NaN
            coordinates, malformed lines, an empty room.

    References:
        Armeni et al., CVPR 2016; PointGroup / HAIS S3DIS preparation.
    """
    room = Path(path)
    ann = room / "Annotations"
    if not ann.is_dir():
        raise InputError("no Annotations/ folder", room,
                         "point to a room folder of Stanford3dDataset_v1.2(_Aligned_Version)")
    files = sorted(ann.glob("*.txt"))
    if not files:
        raise InputError("Annotations/ holds no .txt files", ann, "check the download")
    xyz, rgb, sem, ins = [], [], [], []
    for k, f in enumerate(files):
        cls = f.stem.rsplit("_", 1)[0]
        if cls not in _CLASS:
            raise InputError(f"unknown S3DIS class {cls!r}", f,
                             f"name annotation files <class>_<n>.txt with class in "
                             f"{S3DIS_NAMES}")
        a = _read_txt(f)
        xyz.append(a[:, :3])
        rgb.append(a[:, 3:6])
        sem.append(np.full(len(a), _CLASS[cls], dtype=np.int64))
        ins.append(np.full(len(a), k, dtype=np.int64))
    coord = np.concatenate(xyz)
    color = np.concatenate(rgb)
    if coord.size and not np.isfinite(color).all():
        raise InputError("colours contain NaN/Inf", ann, "repair the annotation files")
    if color.size and (color.min() < 0 or color.max() > 255):
        raise InputError("rgb must lie in 0..255", ann, "use the Stanford annotation files")
    scene = PointScene(f"{room.parent.name}/{room.name}", coord,
                       (color / 127.5 - 1.0).astype(np.float32),
                       np.concatenate(sem), np.concatenate(ins))
    scene = validate_scene(scene, ann, num_classes=len(S3DIS_NAMES))
    # empty annotation files leave gaps in the instance ids
    from instgs.pointcloud.data.scannet import relabel_instances

    scene.instance = relabel_instances(scene.instance)
    return scene


def s3dis_rooms(root: str | Path, area: str | int) -> list[Path]:
    """Room folders of one area (sorted), e.g. ``s3dis_rooms(root, 5)``."""
    name = area if isinstance(area, str) else f"Area_{area}"
    d = Path(root) / name
    if not d.is_dir():
        raise InputError(f"{name} not found", Path(root), "point to the folder holding Area_1..6")
    return sorted(p for p in d.iterdir() if (p / "Annotations").is_dir())


def s3dis_split(root: str | Path, test_area: int = 5) -> tuple[list[Path], list[Path]]:
    """``(train_rooms, test_rooms)``: Area ``test_area`` for testing, the other areas for
    training (Area-5 protocol; loop ``test_area`` over 1..6 for 6-fold cross-validation).
    Areas missing under ``root`` are skipped in the training list.

    Raises:
        InputError: ``test_area`` not in 1..6 or its folder missing.
    """
    if test_area not in range(1, 7):
        raise InputError(f"test_area must be 1..6, got {test_area}")
    test = s3dis_rooms(root, test_area)
    train = [r for k in range(1, 7) if k != test_area and (Path(root) / f"Area_{k}").is_dir()
             for r in s3dis_rooms(root, k)]
    return train, test
