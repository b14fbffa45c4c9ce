"""SAM automatic masks split into LangSplat's small / medium / large levels (stock package).

LangSplat needs a patched ``segment_anything`` fork whose generator returns four mask lists
(LangSplat issue #39: the stock package fails with "too many values to unpack"). Here the
stock :class:`segment_anything.SamAutomaticMaskGenerator` is subclassed instead: every
predicted mask is tagged with its multimask output index (0 = subpart -> small, 1 = part ->
medium, 2 = whole -> large) and the generator's filters run per level, exactly as the fork
does: predicted-IoU / stability / crop-edge filters per mask, box NMS within each crop and
across crops, then ``min_mask_region_area`` hole/island removal with a re-run box NMS.
The default level holds all three outputs together (the stock generator's behaviour).

References:
    Kirillov et al., Segment Anything, ICCV 2023 (``automatic_mask_generator.py``);
    LangSplat ``preprocess.py`` generator settings (points_per_side=32, pred_iou_thresh=0.7,
    box_nms_thresh=0.7, stability_score_thresh=0.85, crop_n_layers=1,
    crop_n_points_downscale_factor=1, min_mask_region_area=100).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instgs.core.checks import InputError

from .levels import PackedMasks, remove_small_regions

__all__ = ["SAM_CHECKPOINTS", "SamSettings", "default_cache_dir", "resolve_sam_checkpoint",
           "detect_sam_model_type", "build_sam", "load_sam", "SamLevelGenerator"]

SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
SAM_CHECKPOINTS: dict[str, str] = {
    "vit_h": "sam_vit_h_4b8939.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_b": "sam_vit_b_01ec64.pth",
}
_EMBED_DIM_TO_TYPE = {1280: "vit_h", 1024: "vit_l", 768: "vit_b"}
# (embed dim, depth, heads, global-attention blocks) of segment_anything/build_sam.py
_ARCH = {
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
}


@dataclass(frozen=True)
class SamSettings:
    """Automatic-mask-generator settings; defaults are LangSplat's ``preprocess.py``."""

    points_per_side: int = 32
    """Point-prompt grid per image side (LangSplat 32)."""
    points_per_batch: int = 64
    """Prompts decoded together; memory grows with this x image size (stock default 64)."""
    pred_iou_thresh: float = 0.7
    """Drop masks whose predicted IoU is not above this (LangSplat 0.7)."""
    stability_score_thresh: float = 0.85
    """Drop masks whose stability score is below this (LangSplat 0.85)."""
    box_nms_thresh: float = 0.7
    """Box IoU threshold of the NMS within a crop (LangSplat 0.7)."""
    crop_n_layers: int = 1
    """Extra crop layers (LangSplat 1: the image plus 2x2 crops)."""
    crop_nms_thresh: float = 0.7
    """Box IoU threshold of the NMS across crops (stock 0.7)."""
    crop_n_points_downscale_factor: int = 1
    """Points per side shrink by this per crop layer (LangSplat 1)."""
    min_mask_region_area: int = 100
    """Fill holes / drop islands smaller than this many pixels (LangSplat 100; 0 = off)."""


def default_cache_dir() -> Path:
    """``$INSTGS_CACHE/sam`` or ``~/.cache/instgs/sam``."""
    root = os.environ.get("INSTGS_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "instgs") / "sam"


def _reachable(host: str, timeout: float = 3.0) -> bool:
    import socket

    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_sam_checkpoint(model_type: str, checkpoint: str | Path | None = None,
                           cache_dir: str | Path | None = None, download: bool = True) -> Path:
    """Path of the SAM weights: the given file, the cached official file, or a fresh download.

    Args:
        model_type: ``"vit_h" | "vit_l" | "vit_b"``.
        checkpoint: explicit weights file; must exist.
        cache_dir: where official checkpoints are cached (default :func:`default_cache_dir`).
        download: allow downloading the official checkpoint when it is not cached.

    Returns:
        Path of an existing file.

    Raises:
        InputError: unknown type; missing file; not cached and cannot be downloaded (the
            message gives the URL and where to put the file).
    """
    if model_type not in SAM_CHECKPOINTS:
        raise InputError(f"unknown SAM model type {model_type!r}", None,
                         f"use one of {list(SAM_CHECKPOINTS)}")
    if checkpoint is not None:
        p = Path(checkpoint).expanduser()
        if not p.is_file():
            raise InputError("SAM checkpoint not found", p,
                             f"download {SAM_URL}{SAM_CHECKPOINTS[model_type]} to that path")
        return p
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / SAM_CHECKPOINTS[model_type]
    if target.is_file():
        return target
    url = SAM_URL + SAM_CHECKPOINTS[model_type]
    fix = (f"download {url} on a connected machine and put it at {target} (or pass "
           f"--sam-checkpoint PATH); without SAM weights use --mask-source felzenszwalb")
    if not download or not _reachable("dl.fbaipublicfiles.com"):
        raise InputError(f"SAM {model_type} weights are not cached and cannot be downloaded "
                         "(no internet connection)", target, fix)
    from instgs.core.artifacts import atomic_path

    try:
        with atomic_path(target) as tmp:
            torch.hub.download_url_to_file(url, str(tmp), progress=True)
    except (OSError, RuntimeError) as e:
        raise InputError(f"download of {url} failed ({e})", target, fix) from e
    return target


def detect_sam_model_type(state_dict: dict[str, Any]) -> str | None:
    """``"vit_h" | "vit_l" | "vit_b"`` from the image encoder's patch-embedding width, or None."""
    w = state_dict.get("image_encoder.patch_embed.proj.weight")
    if not isinstance(w, torch.Tensor) or w.ndim != 4:
        return None
    return _EMBED_DIM_TO_TYPE.get(int(w.shape[0]))


def _import_segment_anything() -> Any:
    from instgs._compat import import_optional

    return import_optional("segment_anything", "segment-anything")


def build_sam(model_type: str, image_size: int = 1024) -> torch.nn.Module:
    """SAM with random weights, as ``segment_anything.build_sam`` but any input size.

    The official checkpoints need ``image_size=1024``; a smaller size (multiple of 16) keeps
    the real architecture (same widths, depths, heads, windowed + global attention) and
    makes randomly initialised end-to-end tests cheap on CPU.
    """
    _import_segment_anything()
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    if model_type not in _ARCH:
        raise InputError(f"unknown SAM model type {model_type!r}", None,
                         f"use one of {list(SAM_CHECKPOINTS)}")
    if image_size % 16 or image_size < 64:
        raise InputError(f"SAM image size must be a multiple of 16 and >= 64, got {image_size}")
    dim, depth, heads, global_idx = _ARCH[model_type]
    prompt_dim, patch = 256, 16
    emb = image_size // patch
    from functools import partial

    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=depth, embed_dim=dim, img_size=image_size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=heads,
            patch_size=patch, qkv_bias=True, use_rel_pos=True, global_attn_indexes=global_idx,
            window_size=14, out_chans=prompt_dim),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim, image_embedding_size=(emb, emb),
            input_image_size=(image_size, image_size), mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=prompt_dim, mlp_dim=2048,
                                          num_heads=8),
            transformer_dim=prompt_dim, iou_head_depth=3, iou_head_hidden_dim=256),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])
    return sam.eval()


def load_sam(model_type: str = "vit_h", checkpoint: str | Path | None = None,
             device: str | torch.device = "cpu", allow_random_init: bool = False,
             cache_dir: str | Path | None = None, download: bool = True,
             image_size: int = 1024) -> torch.nn.Module:
    """Build a stock ``segment_anything`` SAM and load its weights (strictly).

    Args:
        model_type: ``"vit_h"`` (LangSplat), ``"vit_l"`` or ``"vit_b"``.
        checkpoint: weights file; None = the official checkpoint from the cache / download.
        device: torch device.
        allow_random_init: with ``checkpoint=None``, skip the weights and return a randomly
            initialised model (tests only).
        cache_dir, download: see :func:`resolve_sam_checkpoint`.
        image_size: encoder input side (1024 for the official weights; smaller only with
            ``allow_random_init``, see :func:`build_sam`).

    Returns:
        ``segment_anything.modeling.Sam`` in eval mode on ``device``.

    Raises:
        InputError: checkpoint missing / unreadable / not SAM / of another model type (the
            message names the file and the type it holds).
    """
    if model_type not in SAM_CHECKPOINTS:
        raise InputError(f"unknown SAM model type {model_type!r}", None,
                         f"use one of {list(SAM_CHECKPOINTS)}")
    if checkpoint is None and allow_random_init:
        return build_sam(model_type, image_size).to(device).eval()
    path = resolve_sam_checkpoint(model_type, checkpoint, cache_dir, download)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt/foreign file
        raise InputError(f"not a readable PyTorch checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200]})", path,
                         f"download {SAM_URL}{SAM_CHECKPOINTS[model_type]} again") from e
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise InputError("the file does not hold a state dict", path,
                         f"pass an official SAM checkpoint ({SAM_URL}...)")
    found = detect_sam_model_type(state)
    if found is None:
        raise InputError("not a SAM checkpoint (no image_encoder.patch_embed.proj.weight)", path,
                         f"pass an official SAM checkpoint such as {SAM_CHECKPOINTS[model_type]}")
    if found != model_type:
        raise InputError(f"this is a SAM {found} checkpoint but --sam-model-type is {model_type}",
                         path, f"use --sam-model-type {found} or a {model_type} checkpoint "
                         f"({SAM_CHECKPOINTS[model_type]})")
    sam = build_sam(model_type, image_size)
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise InputError(f"weights do not fit SAM {model_type} "
                         f"({str(e).splitlines()[0][:300]})", path,
                         "pass an unmodified official checkpoint "
                         f"{SAM_CHECKPOINTS[model_type]}") from e
    return sam.to(device).eval()


class SamLevelGenerator:
    """Per-level SAM automatic mask generation on the stock package.

    Args:
        sam: a loaded SAM model (:func:`load_sam`).
        settings: generator settings (LangSplat's by default).
    """

    def __init__(self, sam: torch.nn.Module, settings: SamSettings | None = None):
        self.settings = settings or SamSettings()
        self._gen = _make_generator(sam, self.settings)

    @torch.no_grad()
    def generate(self, image: np.ndarray) -> list[PackedMasks]:
        """Masks of one image for the four levels.

        Args:
            image: ``[H, W, 3]`` uint8 RGB.

        Returns:
            4 :class:`PackedMasks` (default, small, medium, large), each with
            ``scores = stability_score * predicted_iou`` (LangSplat's de-duplication score).
        """
        return self._gen.generate_levels(image)


def _make_generator(sam: torch.nn.Module, s: SamSettings) -> Any:
    """A stock ``SamAutomaticMaskGenerator`` subclass with per-level outputs (see the module
    docstring); the small-region removal runs per level with ``s.min_mask_region_area``."""
    sa = _import_segment_anything()
    from segment_anything.utils import amg

    class _LevelGenerator(sa.SamAutomaticMaskGenerator):
        """Stock generator + a ``level`` tag per mask (0/1/2 = multimask output index)."""

        def _process_batch(self, points, im_size, crop_box, orig_size):  # noqa: ANN001
            return _process_batch_with_levels(self, points, im_size, crop_box, orig_size)

        def _crop_masks(self, image, crop_box, layer_idx, orig_size):  # noqa: ANN001
            x0, y0, x1, y1 = crop_box
            cropped = image[y0:y1, x0:x1, :]
            self.predictor.set_image(cropped)
            scale = np.array(cropped.shape[:2])[None, ::-1]
            points_for_image = self.point_grids[layer_idx] * scale
            data = amg.MaskData()
            for (points,) in amg.batch_iterator(self.points_per_batch, points_for_image):
                data.cat(self._process_batch(points, cropped.shape[:2], crop_box, orig_size))
            self.predictor.reset_image()
            return data

        def generate_levels(self, image: np.ndarray) -> list[PackedMasks]:
            return _generate_levels(self, image)

        def _postprocess(self, data, h: int, w: int) -> PackedMasks:  # noqa: ANN001
            """Small-region removal (SAM ``postprocess_small_regions``) -> packed masks."""
            return _postprocess_level(self, data, h, w, s.min_mask_region_area)

    return _LevelGenerator(
        sam, points_per_side=s.points_per_side, points_per_batch=s.points_per_batch,
        pred_iou_thresh=s.pred_iou_thresh, stability_score_thresh=s.stability_score_thresh,
        box_nms_thresh=s.box_nms_thresh, crop_n_layers=s.crop_n_layers,
        crop_nms_thresh=s.crop_nms_thresh,
        crop_n_points_downscale_factor=s.crop_n_points_downscale_factor,
        min_mask_region_area=0, output_mode="binary_mask")


def _process_batch_with_levels(gen: Any, points: np.ndarray, im_size: tuple[int, ...],
                               crop_box: list[int], orig_size: tuple[int, ...]) -> Any:
    """The stock ``_process_batch`` of ``gen`` (a ``_LevelGenerator``) with a ``level`` tag
    (multimask output index) per mask; returns the batch's ``amg.MaskData``."""
    from segment_anything.utils import amg

    orig_h, orig_w = orig_size
    pts = gen.predictor.transform.apply_coords(points, im_size)
    in_points = torch.as_tensor(pts, device=gen.predictor.device)
    in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
    masks, iou_preds, _ = gen.predictor.predict_torch(
        in_points[:, None, :], in_labels[:, None], multimask_output=True,
        return_logits=True)
    n_out = masks.shape[1]
    data = amg.MaskData(
        masks=masks.flatten(0, 1), iou_preds=iou_preds.flatten(0, 1),
        points=torch.as_tensor(points.repeat(n_out, axis=0)),
        level=torch.arange(n_out).repeat(masks.shape[0]))
    del masks
    if gen.pred_iou_thresh > 0.0:
        data.filter(data["iou_preds"] > gen.pred_iou_thresh)
    data["stability_score"] = amg.calculate_stability_score(
        data["masks"], gen.predictor.model.mask_threshold, gen.stability_score_offset)
    if gen.stability_score_thresh > 0.0:
        data.filter(data["stability_score"] >= gen.stability_score_thresh)
    data["masks"] = data["masks"] > gen.predictor.model.mask_threshold
    data["boxes"] = amg.batched_mask_to_box(data["masks"])
    keep = ~amg.is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, orig_w, orig_h])
    if not torch.all(keep):
        data.filter(keep)
    data["masks"] = amg.uncrop_masks(data["masks"], crop_box, orig_h, orig_w)
    data["rles"] = amg.mask_to_rle_pytorch(data["masks"])
    del data["masks"]
    return data


def _generate_levels(gen: Any, image: np.ndarray) -> list[PackedMasks]:
    """``gen.generate_levels``: per crop, box NMS within each level (default = all levels),
    then NMS across crops and the small-region post-processing, per level."""
    from segment_anything.utils import amg
    from torchvision.ops.boxes import batched_nms, box_area

    h, w = image.shape[:2]
    crop_boxes, layer_idxs = amg.generate_crop_boxes(
        (h, w), gen.crop_n_layers, gen.crop_overlap_ratio)
    acc = [amg.MaskData() for _ in range(4)]
    for crop_box, layer_idx in zip(crop_boxes, layer_idxs):
        data = gen._crop_masks(image, crop_box, layer_idx, (h, w))
        if "rles" not in data._stats or len(data["rles"]) == 0:
            continue
        for j in range(4):
            sub = amg.MaskData(**dict(data.items()))
            if j > 0:
                sub.filter(data["level"] == j - 1)
            if len(sub["rles"]) == 0:
                continue
            keep = batched_nms(sub["boxes"].float(), sub["iou_preds"],
                               torch.zeros(len(sub["boxes"])),
                               iou_threshold=gen.box_nms_thresh)
            sub.filter(keep)
            sub["boxes"] = amg.uncrop_boxes_xyxy(sub["boxes"], crop_box)
            sub["points"] = amg.uncrop_points(sub["points"], crop_box)
            sub["crop_boxes"] = torch.tensor([crop_box for _ in range(len(sub["rles"]))])
            acc[j].cat(sub)
    out = []
    for data in acc:
        if "rles" not in data._stats or len(data["rles"]) == 0:
            out.append(PackedMasks(h, w))
            continue
        if len(crop_boxes) > 1:
            scores = 1 / box_area(data["crop_boxes"])
            keep = batched_nms(data["boxes"].float(), scores.to(data["boxes"].device),
                               torch.zeros(len(data["boxes"])),
                               iou_threshold=gen.crop_nms_thresh)
            data.filter(keep)
        out.append(gen._postprocess(data, h, w))
    return out


def _postprocess_level(gen: Any, data: Any, h: int, w: int, min_area: int) -> PackedMasks:
    """Small-region removal (SAM ``postprocess_small_regions``) of one level's
    ``amg.MaskData`` with ``min_area`` pixels, then a re-run box NMS -> packed masks."""
    from segment_anything.utils import amg
    from torchvision.ops.boxes import batched_nms

    masks, unchanged, boxes = [], [], []
    for rle in data["rles"]:
        m = amg.rle_to_mask(rle)
        changed = False
        if min_area > 0:
            m, c1 = remove_small_regions(m, min_area, "holes")
            m, c2 = remove_small_regions(m, min_area, "islands")
            changed = c1 or c2
        masks.append(np.packbits(m.reshape(-1)))
        unchanged.append(0.0 if changed else 1.0)
        boxes.append(amg.batched_mask_to_box(torch.from_numpy(m)[None])[0])
    scores = (data["stability_score"] * data["iou_preds"]).double().cpu().numpy()
    areas = np.array([int(np.unpackbits(b).sum()) for b in masks], np.int64)
    keep = np.arange(len(masks))
    if min_area > 0 and len(masks):
        nms_thresh = max(gen.box_nms_thresh, gen.crop_nms_thresh)
        keep = batched_nms(torch.stack(boxes).float(), torch.tensor(unchanged),
                           torch.zeros(len(boxes)), iou_threshold=nms_thresh).numpy()
    keep = keep[areas[keep] > 0]
    pm = PackedMasks(h, w)
    if len(keep):
        pm = PackedMasks(h, w, np.stack([masks[i] for i in keep]), areas[keep],
                         scores[keep])
    return pm
