"""Label spaces of the 3D-input track: NYU40 -> ScanNet20, S3DIS-13, ignore index.

Follows the ScanNet v2 benchmark (``scannetv2-labels.combined.tsv``; ``VALID_CLASS_IDS`` of
the official ``evaluate_semantic_instance.py``) and the HAIS / PointGroup preprocessing
(``prepare_data_inst.py``: the 20 NYU40 ids map to 0..19, everything else to -100).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instgs.core.checks import InputError

__all__ = [
    "IGNORE_INDEX",
    "NYU40_NAMES",
    "SCANNET20_NYU40_IDS",
    "SCANNET20_NAMES",
    "SCANNET_STUFF",
    "SCANNET_INSTANCE_CLASSES",
    "S3DIS_NAMES",
    "nyu40_to_scannet20",
    "scannet20_to_nyu40",
    "read_scannet_label_map",
    "LabelSpace",
    "LABEL_SPACES",
    "label_space",
    "SEMANTICKITTI_NAMES",
]

#: Label value for "no label / do not train / do not evaluate" (HAIS, PyTorch ``ignore_index``).
IGNORE_INDEX = -100

#: NYU40 ids of the 20 ScanNet benchmark classes, in ScanNet20 order (index = class id).
SCANNET20_NYU40_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
SCANNET20_NAMES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window",
    "bookshelf", "picture", "counter", "desk", "curtain", "refrigerator",
    "shower curtain", "toilet", "sink", "bathtub", "otherfurniture",
)
#: ScanNet20 indices of the two "stuff" classes that carry no instances (wall, floor).
SCANNET_STUFF = (0, 1)
#: ScanNet20 indices of the 18 instance classes evaluated by the benchmark.
SCANNET_INSTANCE_CLASSES = tuple(range(2, 20))

NYU40_NAMES = (
    "unannotated", "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door",
    "window", "bookshelf", "picture", "counter", "blinds", "desk", "shelves", "curtain",
    "dresser", "pillow", "mirror", "floor mat", "clothes", "ceiling", "books",
    "refridgerator", "television", "paper", "towel", "shower curtain", "box", "whiteboard",
    "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure",
    "otherfurniture", "otherprop",
)

#: The 13 S3DIS classes in the order of the Stanford release / PointGroup / HAIS.
S3DIS_NAMES = (
    "ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair",
    "sofa", "bookcase", "board", "clutter",
)

_LUT = np.full(256, IGNORE_INDEX, dtype=np.int64)
_LUT[list(SCANNET20_NYU40_IDS)] = np.arange(20)


def nyu40_to_scannet20(nyu40: np.ndarray) -> np.ndarray:
    """Map NYU40 ids to ScanNet20 class indices.

    Args:
        nyu40: [N] integer NYU40 ids (0 = unannotated, 1..40).

    Returns:
        [N] int64 in 0..19, ``IGNORE_INDEX`` (-100) for unannotated and the 20 NYU40
        classes outside the benchmark (e.g. 13 blinds, 22 ceiling, 40 otherprop).

    Raises:
        InputError: ids outside 0..255 (not NYU40 labels at all).
    """
    a = np.asarray(nyu40)
    if a.size and (a.min() < 0 or a.max() > 255):
        raise InputError(f"NYU40 ids must lie in 0..40, got range [{a.min()}, {a.max()}]",
                         None, "pass raw NYU40 ids (the *_sem_label_all.npy values)")
    return _LUT[a.astype(np.int64)]


def scannet20_to_nyu40(idx: np.ndarray) -> np.ndarray:
    """Inverse of :func:`nyu40_to_scannet20`: [N] ScanNet20 indices -> NYU40 ids (0 for -100)."""
    ids = np.asarray(SCANNET20_NYU40_IDS + (0,), dtype=np.int64)
    a = np.asarray(idx, dtype=np.int64)
    return ids[np.where(a < 0, 20, a)]


def read_scannet_label_map(tsv: str | Path, to: str = "nyu40id") -> dict[str, int]:
    """Read ``scannetv2-labels.combined.tsv``: raw category name -> ``to`` column (int).

    Raises:
        InputError: the file is missing or lacks the ``raw_category`` / ``to`` columns.
    """
    tsv = Path(tsv)
    if not tsv.is_file():
        raise InputError("label map not found", tsv,
                         "point to meta_data/scannetv2-labels.combined.tsv of ScanNet")
    with open(tsv, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or "raw_category" not in rows[0] or to not in rows[0]:
        raise InputError(f"expected columns raw_category and {to}", tsv,
                         "use the official tab-separated ScanNet label map")
    return {r["raw_category"]: int(r[to]) for r in rows if r[to].strip()}


#: The 19 SemanticKITTI training classes (``learning_map`` of ``semantic-kitti.yaml`` minus 1;
#: the 8 "things" first).
SEMANTICKITTI_NAMES = (
    "car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "bicyclist",
    "motorcyclist", "road", "parking", "sidewalk", "other-ground", "building", "fence",
    "vegetation", "trunk", "terrain", "pole", "traffic-sign",
)


@dataclass(frozen=True)
class LabelSpace:
    """A dataset's classes as the networks and evaluators see them.

    Attributes:
        name: key in :data:`LABEL_SPACES`.
        class_names: names of the semantic classes 0..C-1.
        instance_classes: classes whose instances are predicted and evaluated.
        background_classes: classes without instances (excluded from grouping).
    """

    name: str
    class_names: tuple[str, ...]
    instance_classes: tuple[int, ...]
    background_classes: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        """C, the number of semantic classes."""
        return len(self.class_names)


#: Known label spaces: ScanNet20 (18 instance classes, wall / floor background) and
#: SemanticKITTI (19 classes; the 8 "thing" classes carry instances, the 11 others not).
LABEL_SPACES = {
    "scannet20": LabelSpace("scannet20", SCANNET20_NAMES, SCANNET_INSTANCE_CLASSES,
                            SCANNET_STUFF),
    "semantickitti": LabelSpace("semantickitti", SEMANTICKITTI_NAMES, tuple(range(8)),
                                tuple(range(8, 19))),
}


def label_space(name: str) -> LabelSpace:
    """The :class:`LabelSpace` called ``name``.

    Raises:
        InputError: unknown name (lists the known ones).
    """
    if name not in LABEL_SPACES:
        raise InputError(f"unknown label space {name!r}", None,
                         f"use one of {sorted(LABEL_SPACES)}")
    return LABEL_SPACES[name]
