"""Reader and writer of the LangSplat ``language_features`` layout.

One image ``<stem>`` has two files in ``<scene>/language_features/``:

- ``<stem>_s.npy``: mask ids ``[4, H, W]``, levels in the order default (0), small (1),
  medium (2), large (3). Ids are cumulative across levels: level ``j`` numbers its masks
  from ``(number of masks in levels < j)`` upwards. ``-1`` = no mask of that level covers
  the pixel. LangSplat writes float32; other tools write int16 or int32; all are read.
- ``<stem>_f.npy``: ``[M, 512]`` L2-normalised CLIP image features, row ``i`` = mask id
  ``i`` (all levels concatenated in level order). float32 or float16. ``M = 0`` means the
  features were not computed (``instgs masks --mask-source felzenszwalb``).

References:
    LangSplat ``preprocess.py`` (Qin et al., CVPR 2024) writes this layout; OpenGaussian and
    InstanceGaussian read it with ``get_SAM_mask_and_feat`` (``utils/opengs_utlis.py``,
    ``utils/instancegs_utlis.py``). See ``docs/masks.md``.
"""

from __future__ import annotations

from pathlib import Path
import numpy as np

from instgs.core.artifacts import atomic_save_npy
from instgs.core.checks import InputError

__all__ = [
    "FEATURES_DIRNAME", "LEVEL_NAMES", "MaskLevel", "level_index", "feature_paths",
    "read_language_features", "read_level", "read_masks", "write_language_features",
    "list_feature_stems", "is_complete", "check_mask_size", "level_offsets",
    "resize_labels", "read_level_at", "read_label_maps",
]

FEATURES_DIRNAME = "language_features"
LEVEL_NAMES: tuple[str, str, str, str] = ("default", "small", "medium", "large")
MaskLevel: dict[str, int] = {"default": 0, "small": 1, "medium": 2, "large": 3}
"""Level name -> channel of ``_s.npy``. SAM's multimask outputs 0/1/2 are small/medium/large."""

_ALIASES: dict[str, int] = {**MaskLevel, "d": 0, "s": 1, "m": 2, "l": 3, "all": 0}
LevelLike = int | str


def level_index(level: LevelLike) -> int:
    """Channel index of a level given by name, alias or int.

    Args:
        level: ``"default" | "small" | "medium" | "large"``, the aliases ``"d" "s" "m" "l"``
            (``"all"`` = default), or an int/digit string ``0..3``.

    Returns:
        int in ``0..3``.

    Raises:
        InputError: unknown level (the message lists the valid names).
    """
    if isinstance(level, (int, np.integer)) and not isinstance(level, bool):
        if 0 <= int(level) <= 3:
            return int(level)
    elif isinstance(level, str):
        key = level.strip().lower()
        if key.isdigit() and 0 <= int(key) <= 3:
            return int(key)
        if key in _ALIASES:
            return _ALIASES[key]
    raise InputError(f"unknown mask level {level!r}", None,
                     f"use one of {list(MaskLevel)}, their aliases s/m/l, or 0..3")


def feature_paths(directory: str | Path, stem: str) -> tuple[Path, Path]:
    """``(<dir>/<stem>_s.npy, <dir>/<stem>_f.npy)``."""
    d = Path(directory)
    return d / f"{stem}_s.npy", d / f"{stem}_f.npy"


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError("file not found", path,
                         "run `instgs masks --data SCENE` to create the language features")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"not a readable .npy file ({e})", path,
                         "delete it and rerun `instgs masks` (it redoes missing images)") from e


def _ids_to_int64(seg: np.ndarray, path: Path) -> np.ndarray:
    if seg.ndim != 3 or seg.shape[0] != 4:
        raise InputError(f"mask ids must have shape [4, H, W], got {list(seg.shape)}", path,
                         "regenerate it with `instgs masks --overwrite`")
    if np.issubdtype(seg.dtype, np.floating):
        if not np.isfinite(seg).all() or (np.round(seg) != seg).any():
            raise InputError("float mask ids are not all integers", path,
                             "regenerate it with `instgs masks --overwrite`")
    elif not np.issubdtype(seg.dtype, np.integer):
        raise InputError(f"mask ids have dtype {seg.dtype}", path,
                         "expected float32, int16, int32 or int64 ids")
    out = seg.astype(np.int64)
    if out.size and out.min() < -1:
        raise InputError(f"mask ids below -1 (min {out.min()})", path,
                         "regenerate it with `instgs masks --overwrite`")
    return out


def level_offsets(seg: np.ndarray) -> np.ndarray:
    """First id of each level: ``[4]`` int64, offset[j] = 1 + max id of levels < j (0 for j=0).

    This is the running maximum, so an empty level (all -1) does not shift the next one.
    OpenGaussian/InstanceGaussian subtract ``max(level j-1) + 1`` instead, which equals this
    whenever level ``j-1`` is non-empty (always the case for files written by instgs unless a
    level has no mask at all).
    """
    offsets = np.zeros(4, dtype=np.int64)
    running = -1
    for j in range(4):
        offsets[j] = running + 1
        if seg[j].size:
            running = max(running, int(seg[j].max()))
    return offsets


def read_language_features(directory: str | Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one image's mask ids and per-mask CLIP features.

    Args:
        directory: the ``language_features`` folder.
        stem: image file name without extension (``"frame_00001"``).

    Returns:
        seg: ``[4, H, W]`` int64 cumulative ids, -1 = none.
        feats: ``[M, 512]`` float32 (as stored, L2-normalised by the writer); ``M = 0`` when
            the features were not computed.

    Raises:
        InputError: a file is missing, unreadable, of the wrong shape/dtype, or the number of
            feature rows is smaller than ``max id + 1``.
    """
    s_path, f_path = feature_paths(directory, stem)
    seg = _ids_to_int64(_load(s_path), s_path)
    feats = _load(f_path)
    if feats.ndim != 2:
        raise InputError(f"features must have shape [M, D], got {list(feats.shape)}", f_path,
                         "regenerate it with `instgs masks --overwrite`")
    if not np.issubdtype(feats.dtype, np.floating):
        raise InputError(f"features have dtype {feats.dtype}", f_path,
                         "expected float32 or float16")
    num_ids = int(seg.max()) + 1 if seg.size else 0
    if feats.shape[0] != 0 and feats.shape[0] < num_ids:
        raise InputError(f"{feats.shape[0]} feature rows but mask ids go up to {num_ids - 1}",
                         f_path, f"regenerate {stem} with `instgs masks --overwrite`")
    return seg, feats.astype(np.float32, copy=False)


def read_level(directory: str | Path, stem: str, level: LevelLike,
               image_size: tuple[int, int] | None = None,
               image_path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One level's label map with local ids and that level's feature rows.

    Semantics of OpenGaussian/InstanceGaussian ``get_SAM_mask_and_feat`` without their
    off-by-one encoding: there, ids are shifted so 0 = invalid and one-hot masks start at 1;
    here ``labels`` keeps ``-1`` = no mask and ``0..K-1`` index ``feats`` rows directly.

    Args:
        directory: the ``language_features`` folder.
        stem: image stem.
        level: ``"default" | "small" | "medium" | "large"`` (or alias / 0..3). InstanceGaussian
            trains on ``"large"``; OpenGaussian's ScanNet script on ``0`` (default).
        image_size: optional ``(H, W)`` of the image these masks belong to; masks must be that
            image at one scale factor (``round(H*s), round(W*s)``, ±1 px), as LangSplat writes
            them at the preprocessing resolution.
        image_path: named in the error message when ``image_size`` disagrees.

    Returns:
        labels: ``[H, W]`` int64, -1 = none, else ``0..K-1``.
        feats: ``[K, 512]`` float32 rows of this level (``[0, D]`` if features were not
            computed). ``K = max local id + 1``.

    Raises:
        InputError: unknown level, unreadable files, or a size disagreeing with the image.
    """
    j = level_index(level)
    seg, feats = read_language_features(directory, stem)
    if image_size is not None:
        check_mask_size(seg.shape[1:], image_size, feature_paths(directory, stem)[0],
                        image_path)
    offsets = level_offsets(seg)
    labels = seg[j].copy()
    labels[labels >= 0] -= offsets[j]
    if (labels < -1).any():
        raise InputError(f"level {LEVEL_NAMES[j]} has ids below the level's first id "
                         f"{offsets[j]} (ids are not cumulative across levels)",
                         feature_paths(directory, stem)[0],
                         "regenerate it with `instgs masks --overwrite`")
    k = int(labels.max()) + 1 if labels.size else 0
    rows = feats[offsets[j]: offsets[j] + k] if feats.shape[0] else feats[:0]
    return labels, rows


def resize_labels(labels: np.ndarray, height: int, width: int, path: str | Path) -> np.ndarray:
    """Nearest-neighbour resize of a label map to ``height x width``.

    Integer factors use strided slicing like InstanceGaussian's ``loadCam``; other sizes pick
    the source pixel ``floor(i * src / dst)``.

    Args:
        labels: [h, w] int label map. height, width: target size, pixels.
        path: the mask file (named in the error).

    Returns:
        [height, width] int64.

    Raises:
        InputError: the aspect ratios differ by more than 2 %.
    """
    labels = np.asarray(labels)
    lh, lw = labels.shape
    if (lh, lw) == (height, width):
        return labels.astype(np.int64)
    if abs(lh / lw - height / width) > 0.02:
        raise InputError(f"mask map is {lw}x{lh} but the image is {width}x{height} (aspect "
                         "ratios differ)", path, "regenerate the masks with `instgs masks "
                         "--overwrite`")
    if lh % height == 0 and lw % width == 0 and lh // height == lw // width:
        r = lh // height
        return np.ascontiguousarray(labels[::r, ::r]).astype(np.int64)
    # float32 like the torch code this replaced (bit-identical picks)
    ys = np.minimum(((np.arange(height) * lh).astype(np.float32) / np.float32(height))
                    .astype(np.int64), lh - 1)
    xs = np.minimum(((np.arange(width) * lw).astype(np.float32) / np.float32(width))
                    .astype(np.int64), lw - 1)
    return np.ascontiguousarray(labels[ys][:, xs]).astype(np.int64)


def read_level_at(directory: str | Path, stem: str, level: LevelLike, height: int,
                  width: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_level` resized to the training resolution (see :func:`resize_labels`).

    Returns:
        labels [height, width] int64 (-1 = none), feats [K, D] float32.

    Raises:
        InputError: as :func:`read_level` and :func:`resize_labels`.
    """
    labels, feats = read_level(directory, stem, level)
    return resize_labels(labels, height, width, feature_paths(directory, stem)[0]), feats


def read_label_maps(directory: str | Path, stems: dict[int, str], level: LevelLike,
                    height: int, width: int) -> dict[int, np.ndarray]:
    """The label maps of several views at one resolution.

    Args:
        directory: the ``language_features`` folder.
        stems: view index -> image stem.
        level: SAM level name (``default``/``small``/``medium``/``large``).
        height, width: the cameras' image size, pixels.

    Returns:
        view index -> [height, width] int64 local mask ids, -1 = no mask.

    Raises:
        InputError: a missing or unreadable mask file, or one whose aspect ratio disagrees
            with the image.
    """
    return {i: read_level_at(directory, stem, level, height, width)[0]
            for i, stem in stems.items()}


def read_masks(scene_dir: str | Path, stem: str, level: LevelLike) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_level` on ``<scene_dir>/language_features`` (docs/design.md contract)."""
    return read_level(Path(scene_dir) / FEATURES_DIRNAME, stem, level)


def check_mask_size(mask_hw: tuple[int, int], image_hw: tuple[int, int],
                    mask_path: str | Path | None = None,
                    image_path: str | Path | None = None) -> float:
    """Check that a ``[H, W]`` mask map is its image at one scale factor.

    Args:
        mask_hw: ``(H, W)`` of the mask map, pixels.
        image_hw: ``(H, W)`` of the image, pixels.
        mask_path: named first in the error.
        image_path: named in the error.

    Returns:
        The scale factor ``mask / image`` (1.0 for equal sizes).

    Raises:
        InputError: the sizes do not agree (different aspect ratio beyond rounding).
    """
    mh, mw = int(mask_hw[0]), int(mask_hw[1])
    ih, iw = int(image_hw[0]), int(image_hw[1])
    s = mh / ih if ih else 0.0
    if not (mh > 0 and mw > 0 and abs(iw * s - mw) <= 1.0 + 1e-6
            and abs(mw / iw * ih - mh) <= 1.0 + 1e-6):
        raise InputError(
            f"mask size {mh}x{mw} (HxW) disagrees with image "
            f"{image_path if image_path is not None else ''} of size {ih}x{iw}", mask_path,
            "regenerate the masks for this image with `instgs masks --overwrite` (or remove "
            "the stale file)")
    return s


def write_language_features(directory: str | Path, stem: str, seg: np.ndarray,
                            feats: np.ndarray, ids_dtype: str = "int16",
                            features_dtype: str = "float32") -> tuple[Path, Path]:
    """Write one image's ids and features atomically (``_f.npy`` first, then ``_s.npy``).

    ``_s.npy`` is written last, so its presence marks a finished image
    (:func:`is_complete`); a killed process leaves either nothing or a lone ``_f.npy``.

    Args:
        directory: the ``language_features`` folder (created if missing).
        stem: image stem.
        seg: ``[4, H, W]`` integer cumulative ids, -1 = none.
        feats: ``[M, D]`` float features with ``M = max id + 1``, or ``M = 0`` (no features).
        ids_dtype: ``"int16"`` (default; switches to int32 above 32767 ids), ``"int32"`` or
            ``"float32"`` (what LangSplat writes).
        features_dtype: ``"float32"`` or ``"float16"``.

    Returns:
        ``(s_path, f_path)``.

    Raises:
        ShapeError/InputError: shapes or ids inconsistent.
    """
    from instgs.core.checks import ShapeError

    seg = np.asarray(seg)
    feats = np.asarray(feats)
    if seg.ndim != 3 or seg.shape[0] != 4:
        raise ShapeError(f"seg must have shape (4, H, W), got {tuple(seg.shape)}")
    if feats.ndim != 2:
        raise ShapeError(f"feats must have shape (M, D), got {tuple(feats.shape)}")
    num_ids = int(seg.max()) + 1 if seg.size else 0
    if feats.shape[0] not in (0, num_ids):
        raise ShapeError(f"feats must have {num_ids} rows (max id + 1) or 0, got {feats.shape[0]}")
    if ids_dtype not in ("int16", "int32", "float32"):
        raise InputError(f"unknown ids_dtype {ids_dtype!r}", None, "use int16, int32 or float32")
    if features_dtype not in ("float32", "float16"):
        raise InputError(f"unknown features_dtype {features_dtype!r}", None,
                         "use float32 or float16")
    dt = np.dtype(ids_dtype)
    if dt == np.int16 and num_ids > np.iinfo(np.int16).max:
        dt = np.dtype(np.int32)
    s_path, f_path = feature_paths(directory, stem)
    atomic_save_npy(f_path, np.ascontiguousarray(feats, dtype=features_dtype))
    atomic_save_npy(s_path, np.ascontiguousarray(seg, dtype=dt))
    return s_path, f_path


def is_complete(directory: str | Path, stem: str) -> bool:
    """True when both ``<stem>_s.npy`` and ``<stem>_f.npy`` exist (the writer's finish mark)."""
    s_path, f_path = feature_paths(directory, stem)
    return s_path.is_file() and f_path.is_file()


def list_feature_stems(directory: str | Path) -> list[str]:
    """Sorted stems that have both ``_s.npy`` and ``_f.npy`` in ``directory`` ([] if absent)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    stems = [p.name[: -len("_s.npy")] for p in d.glob("*_s.npy") if not p.name.startswith(".")]
    return sorted(s for s in stems if (d / f"{s}_f.npy").is_file())
