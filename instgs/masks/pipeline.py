"""Streaming per-image mask + CLIP-feature extraction into the LangSplat layout.

One image at a time: read -> resize -> masks per level -> LangSplat de-duplication ->
label maps -> one CLIP feature per mask -> atomic write of ``<stem>_f.npy`` then
``<stem>_s.npy``. Nothing accumulates across images, so memory does not grow with the
number of images; a finished image (both files present) is skipped on a rerun.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable

import numpy as np

from instgs.core.checks import InputError

from .io import check_mask_size, feature_paths, is_complete, write_language_features
from .levels import (
    PackedMasks,
    clip_crop,
    langsplat_mask_nms,
    paint_level,
    pairwise_intersections,
    stack_levels,
)

__all__ = ["IMAGE_EXTENSIONS", "find_image_dir", "list_images", "load_image", "output_size",
           "LevelMasks", "MaskExtractor", "run_masks"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def find_image_dir(data: str | Path, images_dir: str | Path | None = None) -> Path:
    """The image folder of a scene: ``images_dir`` (relative to ``data`` or absolute), else
    ``images/``, ``color/`` (ScanNet layout) or the ``images_<d>`` with the smallest ``d``.

    Raises:
        InputError: the scene or the folder does not exist.
    """
    data = Path(data)
    if not data.is_dir():
        raise InputError("scene folder not found", data, "pass --data SCENE_FOLDER")
    if images_dir is not None:
        p = Path(images_dir)
        p = p if p.is_absolute() else data / p
        if not p.is_dir():
            raise InputError("image folder not found", p, "check --images-dir")
        return p
    for name in ("images", "color"):
        if (data / name).is_dir():
            return data / name
    scaled = sorted((int(m.group(1)), p) for p in data.iterdir()
                    if p.is_dir() and (m := re.fullmatch(r"images_(\d+)", p.name)))
    if scaled:
        return scaled[0][1]
    raise InputError("no image folder (images/, color/ or images_<d>/) in the scene", data,
                     "pass --images-dir FOLDER")


def list_images(folder: Path) -> list[Path]:
    """Sorted image files in ``folder`` (by name); raises InputError on none or stem clashes."""
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                   and not p.name.startswith("."))
    if not files:
        raise InputError("no images found", folder,
                         f"put {', '.join(IMAGE_EXTENSIONS)} files there or pass --images-dir")
    seen: dict[str, Path] = {}
    for p in files:
        if p.stem in seen:
            raise InputError(f"two images share the stem {p.stem!r} ({seen[p.stem].name}, "
                             f"{p.name}); output files are named by stem", folder,
                             "rename or remove one of them")
        seen[p.stem] = p
    return files


def output_size(height: int, width: int, resolution: int = -1) -> tuple[int, int]:
    """Processing size ``(H, W)`` in pixels, LangSplat's ``--resolution`` rule.

    ``-1``: downscale so the height is at most 1080 (LangSplat default); ``0``: keep the
    image size; ``N > 0``: width ``N`` (aspect kept). Sizes are ``int(size / scale)``.
    """
    if resolution == 0:
        return height, width
    scale = (height / 1080 if height > 1080 else 1.0) if resolution < 0 else width / resolution
    return max(1, int(height / scale)), max(1, int(width / scale))


def load_image(path: str | Path, resolution: int = -1) -> np.ndarray:
    """Read an image as ``[H, W, 3]`` uint8 RGB at the processing size (bilinear).

    Raises:
        InputError: the file is missing or cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise InputError(f"cannot read the image ({e})", path,
                         "replace or delete the file, or point --images-dir elsewhere") from e
    h, w = output_size(rgb.height, rgb.width, resolution)
    if (h, w) != (rgb.height, rgb.width):
        rgb = rgb.resize((w, h), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


@dataclass
class LevelMasks:
    """One level of one image: label map + a way to get each label's full mask.

    Attributes:
        labels: ``[H, W]`` int32 local ids ``0..K-1`` (every id present), -1 = none.
        mask_of: ``i -> [H, W]`` bool full mask of label ``i`` (SAM: the whole predicted
            mask, also where a smaller mask is painted over it, as LangSplat crops it).
    """

    labels: np.ndarray
    mask_of: Callable[[int], np.ndarray]

    @property
    def count(self) -> int:
        return int(self.labels.max()) + 1 if (self.labels >= 0).any() else 0


def _sam_level(masks: PackedMasks, iou_thr: float, score_thr: float,
               inner_thr: float) -> LevelMasks:
    if len(masks):
        keep = langsplat_mask_nms(pairwise_intersections(masks), masks.areas, masks.scores,
                                  iou_thr, score_thr, inner_thr)
        masks = masks.select(keep)
    labels, kept = paint_level(masks)
    return LevelMasks(labels, lambda i, m=masks, k=kept: m.mask(int(k[i])))


class MaskExtractor:
    """Masks (+ optional CLIP features) of one image in the LangSplat layout.

    Args:
        source: ``"sam"`` or ``"felzenszwalb"``.
        sam_generator: a :class:`~instgs.masks.sam.SamLevelGenerator` (source ``"sam"``).
        felzenszwalb: :class:`~instgs.masks.felzenszwalb.FelzenszwalbSettings` or None.
        clip: ``(model, preprocess)`` from :func:`instgs.clip.load_clip`, or None
            for no features (``_f.npy`` gets 0 rows).
        nms: LangSplat de-duplication ``(iou_thr, score_thr, inner_thr)``.
        clip_batch: mask crops per CLIP forward pass.
    """

    def __init__(self, source: str, sam_generator: Any = None, felzenszwalb: Any = None,
                 clip: tuple[Any, Any] | None = None,
                 nms: tuple[float, float, float] = (0.8, 0.7, 0.5), clip_batch: int = 32):
        if source not in ("sam", "felzenszwalb"):
            raise InputError(f"unknown mask source {source!r}", None, "use sam or felzenszwalb")
        if source == "sam" and sam_generator is None:
            raise ValueError("source 'sam' needs a sam_generator")
        self.source, self.sam_generator, self.felzenszwalb = source, sam_generator, felzenszwalb
        self.clip, self.nms, self.clip_batch = clip, nms, clip_batch

    def levels(self, image: np.ndarray) -> list[LevelMasks]:
        """The four levels (default, small, medium, large) of ``image`` ``[H, W, 3]`` uint8."""
        if self.source == "sam":
            return [_sam_level(pm, *self.nms) for pm in self.sam_generator.generate(image)]
        from .felzenszwalb import felzenszwalb_levels

        return [LevelMasks(lab, lambda i, lab=lab: lab == i)
                for lab in felzenszwalb_levels(image, self.felzenszwalb)]

    def features(self, image: np.ndarray, levels: list[LevelMasks]) -> np.ndarray:
        """``[M, D]`` float32 L2-normalised CLIP features in id order (``[0, 512]`` without
        CLIP)."""
        if self.clip is None:
            return np.zeros((0, 512), np.float32)
        from instgs.clip import encode_images

        model, preprocess = self.clip
        rows = []
        for lev in levels:
            for b0 in range(0, lev.count, self.clip_batch):
                crops = [clip_crop(image, lev.mask_of(i))
                         for i in range(b0, min(lev.count, b0 + self.clip_batch))]
                rows.append(encode_images(model, preprocess, crops).numpy())
        if not rows:
            dim = int(getattr(model, "embed_dim", 512) or 512)
            return np.zeros((0, dim), np.float32)
        return np.concatenate(rows).astype(np.float32)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(seg [4, H, W] int32 cumulative ids, feats [M, D] float32)`` of one image."""
        levels = self.levels(image)
        seg = stack_levels([lev.labels for lev in levels])
        feats = self.features(image, levels)
        return seg, feats


def _check_existing(out_dir: Path, stem: str, hw: tuple[int, int], image_path: Path) -> None:
    s_path = feature_paths(out_dir, stem)[0]
    try:
        arr = np.load(s_path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"existing mask file is unreadable ({e})", s_path,
                         "delete it or rerun with --overwrite") from e
    if arr.ndim != 3 or arr.shape[0] != 4:
        raise InputError(f"existing mask file has shape {list(arr.shape)}, not [4, H, W]",
                         s_path, "delete it or rerun with --overwrite")
    if tuple(arr.shape[1:]) != hw:
        check_mask_size(arr.shape[1:], hw, s_path, image_path)   # raises if not a rescale
        raise InputError(f"existing masks are {arr.shape[1]}x{arr.shape[2]} but this run "
                         f"makes {hw[0]}x{hw[1]} for {image_path}", s_path,
                         "rerun with the --resolution used before, or --overwrite")


def run_masks(images: Iterable[Path], out_dir: str | Path, extractor: MaskExtractor,
              resolution: int = -1, overwrite: bool = False, ids_dtype: str = "int16",
              features_dtype: str = "float32", progress: bool = True) -> dict[str, int]:
    """Process images one by one into ``out_dir`` (skipping finished ones).

    Args:
        images: image paths (output files are named by stem).
        out_dir: the ``language_features`` folder.
        extractor: a :class:`MaskExtractor`.
        resolution: see :func:`output_size`.
        overwrite: redo images whose files exist.
        ids_dtype, features_dtype: see :func:`~instgs.masks.io.write_language_features`.
        progress: show a tqdm bar.

    Returns:
        ``{"done": n_written, "skipped": n_skipped, "total": n}``.

    Raises:
        InputError: an unreadable image, or an existing mask file whose size disagrees with
            its image (named in the message).
    """
    from PIL import Image
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".*_[sf].npy.*.tmp"):   # left by a killed run (never renamed)
        stale.unlink(missing_ok=True)
    images = list(images)
    done = skipped = 0
    bar = tqdm(images, desc="instgs masks", unit="img", disable=not progress, dynamic_ncols=True)
    for path in bar:
        stem = Path(path).stem
        if is_complete(out_dir, stem) and not overwrite:
            try:
                with Image.open(path) as im:
                    size = (im.height, im.width)
            except (OSError, ValueError) as e:
                raise InputError(f"cannot read the image ({e})", path,
                                 "replace or delete the file") from e
            _check_existing(out_dir, stem, output_size(*size, resolution), Path(path))
            skipped += 1
            continue
        image = load_image(path, resolution)
        seg, feats = extractor(image)
        write_language_features(out_dir, stem, seg, feats, ids_dtype, features_dtype)
        done += 1
        bar.set_postfix(masks=int(seg.max()) + 1, refresh=False)
    return {"done": done, "skipped": skipped, "total": len(images)}
