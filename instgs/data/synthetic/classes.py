"""Class names, NYU40 ids and the oracle text features of the synthetic scene."""

from __future__ import annotations

import hashlib

import numpy as np

FEATURE_DIM = 512
# class name -> NYU40 id (gt/nyu40_per_vertex.npy holds these ids). A ball and a can have
# no NYU40 class of their own; ScanNet's label map sends such props to otherprop (40) and
# trash cans to otherfurniture (39), which keeps the two classes distinct.
CLASSES = {"floor": 2, "table": 7, "box": 29, "ball": 40, "can": 39}
NYU40_NAMES = {2: "floor", 7: "table", 29: "box", 39: "otherfurniture", 40: "otherprop"}
#: the NYU40 class set of the synthetic scene, for ``instgs.eval.text_query_scores``
CLASS_IDS = tuple(sorted(CLASSES.values()))
# names without an instance in the scene, for negative text queries
DISTRACTOR_CLASSES = ("wall", "chair", "lamp", "book", "cup", "plant")


def text_feature(name: str, dim: int = FEATURE_DIM) -> np.ndarray:
    """Deterministic random unit vector [dim] float64 for a class name (the oracle "CLIP"
    text embedding of the synthetic scene; seeded by the SHA-256 of the name only)."""
    digest = hashlib.sha256(f"instgs-synthetic:{name}".encode()).digest()
    seed = int.from_bytes(digest[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return v / np.linalg.norm(v)


def text_feature_table() -> dict[str, list[float]]:
    """The ``text_features.json`` table: class name -> 512 floats (unit norm, float32 values).

    Holds the scene's class names (floor, table, box, ball, can), the distractors of
    :data:`DISTRACTOR_CLASSES` and, as aliases, the NYU40 names of the ids the per-vertex
    GT uses where they differ ("otherprop" = the "ball" vector, "otherfurniture" = the "can"
    vector), so evaluators that name classes by NYU40 id find every class.
    """
    names = list(CLASSES) + list(DISTRACTOR_CLASSES)
    table = {n: [float(x) for x in text_feature(n).astype(np.float32)] for n in names}
    for name, nyu in CLASSES.items():
        table.setdefault(NYU40_NAMES[nyu], table[name])
    return table
