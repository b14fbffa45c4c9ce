"""SemanticKITTI LiDAR scans (Behley et al., ICCV 2019) as :class:`PointScene` objects.

Layout (the official one): ``<root>/sequences/<SS>/velodyne/<FFFFFF>.bin`` (float32
``x, y, z, remission`` per point) and ``<root>/sequences/<SS>/labels/<FFFFFF>.label``
(uint32 per point: lower 16 bits = SemanticKITTI class id, upper 16 bits = instance id).

Conventions of the returned scene: coordinates in metres in the sensor frame; the single
remission channel (0..1) becomes a grey colour ``2 r - 1`` in all three channels (the
networks take rgb in [-1, 1]); semantic = the 19 training classes of ``semantic-kitti.yaml``
(``learning_map`` minus 1; unlabelled / outlier / other-structure / other-object -> -100,
moving classes -> their static class); instance ids only on the 8 "thing" classes (car ..
motorcyclist, :data:`instgs.pointcloud.data.labels.LABEL_SPACES` ``"semantickitti"``),
one per (class, instance id) pair with instance id > 0, made consecutive.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from instgs.core.checks import InputError
from instgs.pointcloud.data.labels import IGNORE_INDEX
from instgs.pointcloud.data.scannet import PointScene, relabel_instances, validate_scene

__all__ = ["SEMANTICKITTI_LEARNING_MAP", "load_semantickitti_scan", "list_semantickitti_scans",
           "is_semantickitti"]

#: SemanticKITTI raw id -> training class 0..18 (``semantic-kitti.yaml`` learning_map - 1).
SEMANTICKITTI_LEARNING_MAP = {
    10: 0, 252: 0, 11: 1, 15: 2, 18: 3, 258: 3, 13: 4, 16: 4, 20: 4, 256: 4, 257: 4, 259: 4,
    30: 5, 254: 5, 31: 6, 253: 6, 32: 7, 255: 7, 40: 8, 60: 8, 44: 9, 48: 10, 49: 11,
    50: 12, 51: 13, 70: 14, 71: 15, 72: 16, 80: 17, 81: 18,
}
_LUT = np.full(1 << 16, IGNORE_INDEX, dtype=np.int64)
for _k, _v in SEMANTICKITTI_LEARNING_MAP.items():
    _LUT[_k] = _v
_THINGS = 8


def is_semantickitti(path: str | Path) -> bool:
    """True for a ``.bin`` scan or a folder holding ``sequences/*/velodyne``."""
    p = Path(path)
    return (p.suffix == ".bin" and p.parent.name == "velodyne") or \
        any(p.glob("sequences/*/velodyne")) or p.name == "velodyne" or \
        (p / "velodyne").is_dir()


def list_semantickitti_scans(root: str | Path) -> list[str]:
    """Scan names ``"<SS>/<FFFFFF>"`` under ``root`` (sorted)."""
    root = Path(root)
    return sorted(f"{p.parent.parent.name}/{p.stem}"
                  for p in root.glob("sequences/*/velodyne/*.bin"))


def _scan_path(path: Path, scene: str | None) -> Path:
    if path.suffix == ".bin":
        return path
    if scene is None:
        names = list_semantickitti_scans(path)
        if len(names) != 1:
            raise InputError(f"{len(names)} scans here; name one", path,
                             "pass --scenes SS/FFFFFF (e.g. 00/000000)")
        scene = names[0]
    if "/" not in scene:
        raise InputError(f"SemanticKITTI scans are named SEQ/FRAME, got {scene!r}", path,
                         "e.g. --scenes 00/000000")
    seq, frame = scene.split("/", 1)
    return path / "sequences" / seq / "velodyne" / f"{frame}.bin"


def load_semantickitti_scan(path: str | Path, scene: str | None = None, *,
                            require_labels: bool = True) -> PointScene:
    """Read one SemanticKITTI scan.

    Args:
        path: the ``.bin`` file, or the dataset root (with ``scene`` = ``"SS/FFFFFF"``; a
            root with a single scan needs no ``scene``).
        scene: scan name ``"<sequence>/<frame>"``.
        require_labels: refuse a scan without its ``.label`` file (train / eval).

    Returns:
        :class:`PointScene` named ``"<SS>_<FFFFFF>"`` (coord [N,3] float32 m; color [N,3]
        grey remission in [-1, 1]; semantic [N] int64 0..18 / -100; instance [N] int64).

    Raises:
        InputError: missing or truncated files (size not a multiple of 16 / 4 bytes),
            label count different from the point count, NaN coordinates, empty scan.
    """
    path = Path(path)
    scan = _scan_path(path, scene)
    if not scan.is_file():
        raise InputError("scan not found", scan, "pass a SemanticKITTI velodyne .bin file")
    raw = scan.read_bytes()
    if len(raw) % 16:
        raise InputError(f"{len(raw)} bytes is not a whole number of (x, y, z, remission) "
                         "float32 records", scan, "re-download the scan")
    pts = np.frombuffer(raw, dtype=np.float32).reshape(-1, 4)
    n = pts.shape[0]
    lab_path = scan.parent.parent / "labels" / f"{scan.stem}.label"
    sem = np.full(n, IGNORE_INDEX, dtype=np.int64)
    inst = np.full(n, IGNORE_INDEX, dtype=np.int64)
    if lab_path.is_file():
        lab = np.fromfile(lab_path, dtype=np.uint32)
        if lab.shape[0] != n:
            raise InputError(f"{lab.shape[0]} labels for {n} points", lab_path,
                             "use the .label file of this scan")
        sem = _LUT[(lab & 0xFFFF).astype(np.int64)]
        ids = (lab >> 16).astype(np.int64)
        thing = (sem >= 0) & (sem < _THINGS) & (ids > 0)
        inst = relabel_instances(np.where(thing, sem * (1 << 16) + ids, -1))
    elif require_labels:
        raise InputError("label file not found", lab_path,
                         "this command needs labelled scans; instgs-pc predict needs none")
    rem = np.clip(pts[:, 3].astype(np.float64), 0.0, 1.0)
    color = np.repeat((2 * rem - 1)[:, None], 3, axis=1)
    name = f"{scan.parent.parent.name}_{scan.stem}"
    sc = PointScene(name, pts[:, :3].copy(), color.astype(np.float32), sem, inst)
    return validate_scene(sc, scan, num_classes=len(set(SEMANTICKITTI_LEARNING_MAP.values())))
