"""SAM-style hierarchical masks of a synthetic view (LangSplat layout) with oracle features.

Levels: 0 = default (the medium masks), 1 = small, 2 = medium, 3 = large; see the package
docstring of :mod:`instgs.data.synthetic` for the parts and id rules.
"""

from __future__ import annotations

import math

import numpy as np

from .classes import CLASSES, FEATURE_DIM, text_feature

LEVEL_NAMES = ("default", "small", "medium", "large")
MERGE_ADJACENCY_PX = 2


def _segments_by_area(keys: np.ndarray) -> list[tuple[int, int]]:
    """[(key, pixels)] of keys >= 0, area descending then key ascending."""
    ids, cnt = np.unique(keys[keys >= 0], return_counts=True)
    order = np.lexsort((ids, -cnt))
    return [(int(ids[k]), int(cnt[k])) for k in order]


def _erode_one(keys: np.ndarray, key: int) -> None:
    """Set to -1 (in place) pixels of ``key`` whose 4-neighbour carries another value."""
    m = keys == key
    b = np.zeros_like(m)
    b[:, 1:] |= m[:, 1:] & ~m[:, :-1]
    b[:, :-1] |= m[:, :-1] & ~m[:, 1:]
    b[1:, :] |= m[1:, :] & ~m[:-1, :]
    b[:-1, :] |= m[:-1, :] & ~m[1:, :]
    keys[b] = -1


def _noisy_feature(vec: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    f = vec + (rng.normal(0.0, sigma, vec.shape) if sigma > 0 else 0.0)
    return f / np.linalg.norm(f)


def build_masks(inst: np.ndarray, med: np.ndarray, small: np.ndarray, cls_of_inst: dict,
                rng: np.random.Generator, *, min_px: int, feature_cos: float,
                mask_noise: float = 0.0) -> tuple[tuple, tuple]:
    """Hierarchical masks of one view in the LangSplat layout, plus the clean GT set.

    Args:
        inst: [H, W] int GT instance ids, 0 = background.
        med, small: [H, W] int part ids (see the module docstring), -1 = background.
        cls_of_inst: instance id -> class name (a key of :data:`CLASSES`).
        rng: draws the feature noise and the mask errors.
        min_px: masks with fewer pixels are dropped.
        feature_cos: expected cosine of a row to its class's text vector (1 = noiseless).
        mask_noise: probability that a mask's boundary is eroded by 1 px (per mask and
            level) and that one object mask of the large level is merged into the
            neighbour it touches most (per view). 0 = exact masks.

    Returns:
        ((seg [4, H, W] int16, feats [M, 512] float16, meta), (clean_seg, clean_feats,
        clean_meta)); meta = {"levels": [[mask id, nyu40, [instance ids], tag, pixels]...]}.
    """
    H, W = inst.shape
    sigma = math.sqrt(max(1.0 / feature_cos ** 2 - 1.0, 0.0) / FEATURE_DIM)
    text = {c: text_feature(c) for c in set(cls_of_inst.values())}
    ii = inst.astype(np.int64)
    large_k = np.where(ii > 0, ii * 16, -1)
    med_k = np.where(ii > 0, ii * 16 + med, -1)
    small_k = np.where(ii > 0, ii * 16 + small, -1)
    levels = {1: (small_k.copy(), _level_info(small_k, "part", cls_of_inst)),
              2: (med_k.copy(), _level_info(med_k, "part", cls_of_inst)),
              3: (large_k.copy(), _level_info(large_k, "gt", cls_of_inst))}
    errors = _add_mask_errors(levels, rng, mask_noise)
    seg, feats, meta = _pack_levels(levels, text, rng, sigma, min_px, (H, W))
    clean, cfeats, cmeta = _clean_masks(large_k, cls_of_inst, text, min_px)
    return (seg, feats, dict(levels=meta, errors=errors)), (clean, cfeats, dict(levels=cmeta))


def _level_info(keys: np.ndarray, tag: str, cls_of_inst: dict) -> dict[int, dict]:
    """{key: {inst: [instance id], cls, tag}} for every mask key >= 0 in ``keys``
    (key = instance id * 16 + part id)."""
    return {k: dict(inst=[k // 16], cls=cls_of_inst[k // 16], tag=tag)
            for k in np.unique(keys[keys >= 0]).tolist()}


def _add_mask_errors(levels: dict, rng: np.random.Generator, mask_noise: float) -> dict:
    """Apply the ``mask_noise`` errors in place to ``levels`` (level -> (keys, info)): with
    probability ``mask_noise`` merge one object of the large level into its neighbour, then
    erode each mask of levels 1..3 by 1 px with probability ``mask_noise``.

    Returns:
        {"merge": None or [source instance, target instance], "eroded": count}.
    """
    errors = {"merge": None, "eroded": 0}
    if mask_noise > 0:
        L, linf = levels[3]
        if rng.uniform() < mask_noise:
            merged = _merge_one_object(L, linf, rng)
            if merged is not None:
                errors["merge"] = merged
        for lvl in (1, 2, 3):
            keys, _ = levels[lvl]
            for k, _a in _segments_by_area(keys):
                if rng.uniform() < mask_noise:
                    _erode_one(keys, k)
                    errors["eroded"] += 1
    return errors


def _merge_one_object(L: np.ndarray, linf: dict, rng: np.random.Generator) -> list | None:
    """Merge one random object mask of ``L`` (in place) into the neighbour it touches most.

    Returns:
        [source instance, target instance], or None when no object touches another mask.
    """
    segs = _segments_by_area(L)
    cands = []
    from scipy import ndimage

    for k, _ in segs:
        if linf[k]["cls"] in ("floor", "table"):
            continue
        m = L == k
        ring = ndimage.binary_dilation(m, iterations=MERGE_ADJACENCY_PX) & ~m
        nb = L[ring]
        nb = nb[nb >= 0]
        if len(nb):
            vals, c = np.unique(nb, return_counts=True)
            cands.append((k, int(vals[np.argmax(c)])))
    if not cands:
        return None
    s, t = cands[int(rng.integers(len(cands)))]
    area = {k: a for k, a in segs}
    big = s if area[s] > area[t] else t
    L[L == s] = t
    linf[t] = dict(inst=sorted(set(linf[t]["inst"]) | set(linf[s]["inst"])),
                   cls=linf[big]["cls"], tag="merge")
    del linf[s]
    return [s // 16, t // 16]


def _pack_levels(levels: dict, text: dict, rng: np.random.Generator, sigma: float,
                 min_px: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, list]:
    """(seg [4, H, W] int16, feats [M, 512] float16, meta levels) of the noisy set: ids
    cumulative over the levels 0 (= medium), 1, 2, 3, sorted by area within a level."""
    seg = np.full((4, *shape), -1, np.int16)
    rows, meta = [], []
    offset = 0
    level_rows: dict[int, list] = {}
    for lvl, src in ((0, 2), (1, 1), (2, 2), (3, 3)):
        keys, linf = levels[src]
        segs = [(k, a) for k, a in _segments_by_area(keys) if a >= min_px]
        lut = {k: offset + j for j, (k, _) in enumerate(segs)}
        m = np.full(keys.shape, -1, np.int64)
        for k, idx in lut.items():
            m[keys == k] = idx
        seg[lvl] = m.astype(np.int16)
        lm = [[offset + j, CLASSES[linf[k]["cls"]], linf[k]["inst"], linf[k]["tag"], a]
              for j, (k, a) in enumerate(segs)]
        if lvl == 2:      # medium reuses the rows drawn for default (same masks), as the tool
            r = level_rows[0]
        else:
            r = [_noisy_feature(text[linf[k]["cls"]], rng, sigma) for k, _ in segs]
        level_rows[lvl] = r
        rows.extend(r)
        meta.append(lm)
        offset += len(segs)
    if offset > np.iinfo(np.int16).max:  # pragma: no cover - needs > 32k masks per view
        raise RuntimeError("too many masks for int16 ids")
    feats = (np.stack(rows) if rows else np.zeros((0, FEATURE_DIM))).astype(np.float16)
    return seg, feats, meta


def _clean_masks(large_k: np.ndarray, cls_of_inst: dict, text: dict, min_px: int
                 ) -> tuple[np.ndarray, np.ndarray, list]:
    """The clean set: all four levels = GT instance masks >= ``min_px``, noiseless rows (as
    the tool). Returns (seg [4, H, W] int16, feats [4 N, 512] float16, meta levels)."""
    gsegs = [(k, a) for k, a in _segments_by_area(large_k) if a >= min_px]
    n = len(gsegs)
    clean = np.full((4, *large_k.shape), -1, np.int16)
    base = np.full(large_k.shape, -1, np.int64)
    for j, (k, _) in enumerate(gsegs):
        base[large_k == k] = j
    crow, cmeta = [], []
    for lvl in range(4):
        clean[lvl][base >= 0] = (base[base >= 0] + lvl * n).astype(np.int16)
        cmeta.append([[lvl * n + j, CLASSES[cls_of_inst[k // 16]], [k // 16], "gt", a]
                      for j, (k, a) in enumerate(gsegs)])
        crow.extend(text[cls_of_inst[k // 16]] for k, _ in gsegs)
    cfeats = (np.stack(crow) if crow else np.zeros((0, FEATURE_DIM))).astype(np.float16)
    return clean, cfeats, cmeta
