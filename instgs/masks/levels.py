"""Mask-set algorithms shared by the SAM and Felzenszwalb sources (numpy/torch, CPU).

- :class:`PackedMasks`: N binary masks stored bit-packed (``H*W/8`` bytes each), so one
  image's few hundred 1080p masks take tens of MB instead of hundreds.
- :func:`pairwise_intersections`: chunked ``[N, N]`` pixel intersections (fast path) with
  the loop twin :func:`pairwise_intersections_reference`.
- :func:`langsplat_mask_nms`: LangSplat's per-level mask de-duplication (``masks_update`` /
  ``mask_nms`` in ``preprocess.py``: IoU > 0.8 with a higher-scored mask, score = stability x
  predicted IoU <= 0.7, or a mask >= 85 % inside a mask it covers < 50 % of, are dropped),
  vectorised; :func:`langsplat_mask_nms_reference` is the pairwise-loop twin.
- :func:`remove_small_regions`: SAM's ``min_mask_region_area`` post-processing with scipy
  instead of OpenCV (8-connectivity, as ``cv2.connectedComponentsWithStats(..., 8)``).
- :func:`paint_level`, :func:`stack_levels`: label maps and the cumulative LangSplat ids.
- :func:`clip_crop`: LangSplat's CLIP input for one mask (outside zeroed, box crop, zero-pad
  to a centred square, resize to 224).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage

__all__ = ["PackedMasks", "pairwise_intersections", "pairwise_intersections_reference",
           "langsplat_mask_nms", "langsplat_mask_nms_reference", "remove_small_regions",
           "paint_level", "stack_levels", "clip_crop", "mask_box"]


@dataclass
class PackedMasks:
    """N binary masks of one ``height x width`` image, bit-packed row-major.

    Attributes:
        height, width: image size in pixels.
        bits: ``[N, ceil(H*W/8)]`` uint8 (``np.packbits`` of the flattened masks).
        areas: ``[N]`` int64 pixel counts.
        scores: ``[N]`` float64 ranking scores (SAM: stability x predicted IoU; 1 otherwise).
    """

    height: int
    width: int
    bits: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint8))
    areas: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))

    def __post_init__(self) -> None:
        nbytes = (self.height * self.width + 7) // 8
        if self.bits.size == 0:
            self.bits = np.zeros((0, nbytes), np.uint8)

    def __len__(self) -> int:
        return int(self.bits.shape[0])

    @classmethod
    def from_dense(cls, masks: np.ndarray, scores: np.ndarray | None = None) -> PackedMasks:
        """From ``[N, H, W]`` bool masks (and optional ``[N]`` scores, default 1)."""
        masks = np.asarray(masks, dtype=bool)
        n, h, w = masks.shape
        bits = np.packbits(masks.reshape(n, h * w), axis=1)
        areas = masks.reshape(n, -1).sum(1).astype(np.int64)
        sc = np.ones(n) if scores is None else np.asarray(scores, np.float64)
        return cls(h, w, bits, areas, sc)

    @classmethod
    def from_list(cls, height: int, width: int, masks: list[np.ndarray],
                  scores: list[float]) -> PackedMasks:
        """From a list of ``[H, W]`` bool masks, packing one at a time (no dense stack)."""
        out = cls(height, width)
        if masks:
            out.bits = np.stack([np.packbits(np.asarray(m, bool).reshape(-1)) for m in masks])
            out.areas = np.array([int(np.count_nonzero(m)) for m in masks], np.int64)
            out.scores = np.asarray(scores, np.float64)
        return out

    def mask(self, i: int) -> np.ndarray:
        """Mask ``i`` as ``[H, W]`` bool."""
        n = self.height * self.width
        return np.unpackbits(self.bits[i], count=n).astype(bool).reshape(self.height, self.width)

    def select(self, idx: np.ndarray) -> PackedMasks:
        """Masks ``idx`` (int indices or bool), in that order."""
        idx = np.asarray(idx)
        return PackedMasks(self.height, self.width, self.bits[idx], self.areas[idx],
                           self.scores[idx])

    def dense(self) -> np.ndarray:
        """All masks as ``[N, H, W]`` bool (tests and small images only)."""
        n = self.height * self.width
        flat = np.unpackbits(self.bits, axis=1, count=n).astype(bool)
        return flat.reshape(len(self), self.height, self.width)


def pairwise_intersections(masks: PackedMasks, chunk_pixels: int = 1 << 16) -> np.ndarray:
    """Pixel counts of every pairwise intersection, chunked over pixels.

    Args:
        masks: N packed masks.
        chunk_pixels: pixels per chunk (multiple of 8); peak extra memory is
            ``N * chunk_pixels * 4`` bytes.

    Returns:
        ``[N, N]`` int64, symmetric, diagonal = areas.
    """
    n = len(masks)
    out = torch.zeros((n, n), dtype=torch.float64)
    if n == 0:
        return out.numpy().astype(np.int64)
    step = max(1, chunk_pixels // 8)
    for b0 in range(0, masks.bits.shape[1], step):
        x = np.unpackbits(masks.bits[:, b0: b0 + step], axis=1)   # [N, 8*step] uint8
        xt = torch.from_numpy(x).to(torch.float32)
        out += (xt @ xt.T).to(torch.float64)   # exact: each chunk sum < 2**24
    return out.round().numpy().astype(np.int64)


def pairwise_intersections_reference(masks: np.ndarray) -> np.ndarray:
    """Loop twin of :func:`pairwise_intersections` on dense ``[N, H, W]`` bool masks."""
    n = masks.shape[0]
    out = np.zeros((n, n), np.int64)
    for i in range(n):
        for j in range(n):
            out[i, j] = int(np.logical_and(masks[i], masks[j]).sum())
    return out


def langsplat_mask_nms(inter: np.ndarray, areas: np.ndarray, scores: np.ndarray,
                       iou_thr: float = 0.8, score_thr: float = 0.7,
                       inner_thr: float = 0.5) -> np.ndarray:
    """LangSplat's per-level mask de-duplication on precomputed intersections (vectorised).

    Masks are ranked by ``scores`` (descending, stable). A mask is dropped if
    (a) its IoU with any higher-ranked mask exceeds ``iou_thr`` (suppressed masks still
    suppress: not greedy NMS), (b) its score is ``<= score_thr``, or (c) it lies ``>= 85 %``
    inside another mask that overlaps it by ``< 50 %`` of its own area and
    ``1 - r_in * r_out > 1 - inner_thr`` (the "inner" rule, either rank order). If (b) or
    (c) would drop every mask, the 3 best-scored masks pass that rule (LangSplat's fallback).

    Args:
        inter: ``[N, N]`` pairwise intersections (pixels).
        areas: ``[N]`` mask areas (pixels).
        scores: ``[N]`` ranking scores (SAM: stability_score x predicted_iou).
        iou_thr, score_thr, inner_thr: LangSplat's ``masks_update(iou_thr=0.8,
            score_thr=0.7, inner_thr=0.5)``.

    Returns:
        int64 indices of the kept masks, in ascending original order.

    References:
        LangSplat ``preprocess.py::mask_nms`` (Qin et al., CVPR 2024).
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    s = np.asarray(scores, np.float64)[order]
    a = np.asarray(areas, np.float64)[order]
    it = np.asarray(inter, np.float64)[np.ix_(order, order)]
    with np.errstate(divide="ignore", invalid="ignore"):
        union = a[:, None] + a[None, :] - it
        iou = np.where(union > 0, it / union, 0.0)
        r_row = np.where(a[:, None] > 0, it / a[:, None], 0.0)   # inter / area_i (row)
        r_col = np.where(a[None, :] > 0, it / a[None, :], 0.0)   # inter / area_j (col)
    upper = np.triu(np.ones((n, n), bool), k=1)
    iou_max = np.where(upper, iou, 0.0).max(0)
    inner_val = 1.0 - r_row * r_col
    # case 1 (i ranked above j): j >= 85 % inside i, i < 50 % inside j -> entry [i, j]
    case1 = upper & (r_row < 0.5) & (r_col >= 0.85)
    # case 2 (i ranked above j): i >= 85 % inside j, j < 50 % inside i -> entry [j, i]
    case2 = upper & (r_row >= 0.85) & (r_col < 0.5)
    inner = np.where(case1, inner_val, 0.0) + np.where(case2, inner_val, 0.0).T
    inner_u = np.where(np.triu(np.ones((n, n), bool), k=1), inner, 0.0).max(0)
    inner_l = np.where(np.tril(np.ones((n, n), bool), k=1), inner, 0.0).max(0)
    keep = iou_max <= iou_thr
    keep_conf = s > score_thr
    keep_u = inner_u <= 1 - inner_thr
    keep_l = inner_l <= 1 - inner_thr
    top = np.arange(min(3, n))   # s is sorted: the 3 best ranks
    for rule in (keep_conf, keep_u, keep_l):
        if not rule.any():
            rule[top] = True
    keep &= keep_conf & keep_u & keep_l
    return np.sort(order[keep]).astype(np.int64)


def langsplat_mask_nms_reference(masks: np.ndarray, scores: np.ndarray, iou_thr: float = 0.8,
                                 score_thr: float = 0.7, inner_thr: float = 0.5) -> np.ndarray:
    """Pairwise-loop twin of :func:`langsplat_mask_nms` on dense ``[N, H, W]`` masks."""
    n = len(scores)
    if n == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    s = np.asarray(scores, np.float64)[order]
    m = masks[order]
    area = m.reshape(n, -1).sum(1).astype(np.float64)
    iou = np.zeros((n, n))
    inner = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            inter = float(np.logical_and(m[i], m[j]).sum())
            union = float(np.logical_or(m[i], m[j]).sum())
            iou[i, j] = inter / union if union > 0 else 0.0
            ri = inter / area[i] if area[i] > 0 else 0.0
            rj = inter / area[j] if area[j] > 0 else 0.0
            if ri < 0.5 and rj >= 0.85:
                inner[i, j] = 1 - rj * ri
            if ri >= 0.85 and rj < 0.5:
                inner[j, i] = 1 - rj * ri
    keep = np.triu(iou, 1).max(0) <= iou_thr
    keep_conf = s > score_thr
    keep_u = np.triu(inner, 1).max(0) <= 1 - inner_thr
    keep_l = np.tril(inner, 1).max(0) <= 1 - inner_thr
    for rule in (keep_conf, keep_u, keep_l):
        if not rule.any():
            rule[: min(3, n)] = True
    keep = keep & keep_conf & keep_u & keep_l
    return np.sort(order[keep]).astype(np.int64)


_EIGHT = np.ones((3, 3), bool)


def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str
                         ) -> tuple[np.ndarray, bool]:
    """Fill holes (``mode="holes"``) or drop islands (``"islands"``) smaller than a threshold.

    Same contract as ``segment_anything.utils.amg.remove_small_regions`` (8-connected
    components; if every island is small, the largest is kept) without OpenCV.

    Args:
        mask: ``[H, W]`` bool.
        area_thresh: regions with fewer pixels than this are changed.
        mode: ``"holes"`` or ``"islands"``.

    Returns:
        ``(mask [H, W] bool, changed)``.
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    holes = mode == "holes"
    working = np.logical_xor(holes, mask)
    regions, n = ndimage.label(working, structure=_EIGHT)
    if n == 0:
        return mask, False
    sizes = np.bincount(regions.ravel(), minlength=n + 1)[1:]
    small = np.nonzero(sizes < area_thresh)[0] + 1
    if small.size == 0:
        return mask, False
    if holes:
        return np.logical_or(mask, np.isin(regions, small)), True
    big = np.setdiff1d(np.arange(1, n + 1), small)
    if big.size == 0:
        big = np.array([int(np.argmax(sizes)) + 1])
    return np.isin(regions, big), True


def paint_level(masks: PackedMasks) -> tuple[np.ndarray, np.ndarray]:
    """Label map of one level: masks painted largest first, so smaller masks stay on top.

    Masks left without a visible pixel are dropped and the rest renumbered, so every id
    ``0..K-1`` appears in the map (readers that take ``max id + 1`` as the mask count, as
    OpenGaussian/InstanceGaussian do, stay correct). LangSplat paints in generator order and
    asserts the last mask is visible; this is the documented instgs deviation.

    Args:
        masks: N packed masks.

    Returns:
        labels: ``[H, W]`` int32, -1 = none, ``0..K-1``.
        kept: ``[K]`` int64 index into ``masks`` of each label id.
    """
    h, w = masks.height, masks.width
    labels = np.full(h * w, -1, np.int32)
    order = np.argsort(-masks.areas, kind="stable")
    for rank, i in enumerate(order):
        flat = np.unpackbits(masks.bits[i], count=h * w).astype(bool)
        labels[flat] = rank
    present = np.zeros(len(order), bool)
    vis = labels[labels >= 0]
    present[np.unique(vis)] = True
    remap = np.full(len(order) + 1, -1, np.int32)   # index -1 -> -1
    remap[:-1][present] = np.arange(int(present.sum()), dtype=np.int32)
    labels = remap[labels]
    return labels.reshape(h, w), order[present].astype(np.int64)


def stack_levels(levels: list[np.ndarray]) -> np.ndarray:
    """Four local-id label maps -> ``[4, H, W]`` int32 cumulative LangSplat ids.

    Args:
        levels: 4 maps ``[H, W]`` (default, small, medium, large), local ids ``0..K_j-1``,
            -1 = none; every id must appear (as :func:`paint_level` guarantees).

    Returns:
        ``[4, H, W]`` int32; level ``j`` ids shifted by ``K_0 + ... + K_{j-1}``.
    """
    if len(levels) != 4:
        raise ValueError(f"need 4 levels, got {len(levels)}")
    out = np.full((4, *levels[0].shape), -1, np.int32)
    offset = 0
    for j, lab in enumerate(levels):
        valid = lab >= 0
        out[j][valid] = lab[valid] + offset
        offset += int(lab.max()) + 1 if valid.any() else 0
    return out


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Inclusive-exclusive box ``(x0, y0, x1, y1)`` of a non-empty ``[H, W]`` mask, pixels."""
    rows = np.flatnonzero(mask.any(1))
    cols = np.flatnonzero(mask.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def clip_crop(image: np.ndarray, mask: np.ndarray, size: int = 224) -> np.ndarray:
    """LangSplat's CLIP input for one mask.

    Pixels outside the mask are set to 0, the image is cropped to the mask's box, zero-padded
    to a centred square and resized (bilinear) to ``size x size``.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        mask: ``[H, W]`` bool, non-empty.
        size: output side in pixels (224 for CLIP ViT-B).

    Returns:
        ``[size, size, 3]`` uint8.

    References:
        LangSplat ``preprocess.py::get_seg_img`` / ``pad_img`` (its box is SAM's XYWH, which
        drops the last mask row/column; here the box includes it).
    """
    from PIL import Image

    x0, y0, x1, y1 = mask_box(mask)
    crop = image[y0:y1, x0:x1] * mask[y0:y1, x0:x1, None]
    h, w = crop.shape[:2]
    side = max(h, w)
    pad = np.zeros((side, side, 3), np.uint8)
    oy, ox = (side - h) // 2, (side - w) // 2
    pad[oy: oy + h, ox: ox + w] = crop
    return np.asarray(Image.fromarray(pad).resize((size, size), Image.BILINEAR))
