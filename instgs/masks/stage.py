"""The masks stage: a scene folder in, its ``language_features/`` out (LangSplat layout).

``instgs.masks.run(data, cfg) -> Path`` is what ``instgs masks`` does, as a function.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from instgs.core.checks import InputError

__all__ = ["MasksConfig", "run"]


@dataclass(frozen=True)
class MasksConfig:
    """Settings of ``instgs masks`` (defaults: LangSplat's preprocessing)."""

    images_dir: str | None = None
    """Image folder, relative to --data or absolute."""
    output_dir: Path | None = None
    """Output folder (default: <data>/language_features)."""
    mask_source: Literal["sam", "felzenszwalb"] = "sam"
    """sam: Segment Anything (needs weights); felzenszwalb: lower-quality colour-segment
    fallback without weights (no CLIP features unless --features clip)."""
    features: Literal["auto", "clip", "none"] = "auto"
    """auto: CLIP for sam, none for felzenszwalb."""
    resolution: int = -1
    """-1: downscale so height <= 1080 (LangSplat); 0: full size; N>0: width N px."""
    overwrite: bool = False
    """Redo images whose files already exist."""
    device: str = "auto"
    """Torch device: auto (cuda if available), cpu, cuda, cuda:1, ..."""
    ids_dtype: Literal["int16", "int32", "float32"] = "int16"
    """dtype of _s.npy (LangSplat writes float32; every reader accepts all three)."""
    features_dtype: Literal["float32", "float16"] = "float32"
    """dtype of _f.npy."""

    # SAM
    sam_model_type: Literal["vit_h", "vit_l", "vit_b"] = "vit_h"
    """SAM backbone (LangSplat: vit_h)."""
    sam_checkpoint: Path | None = None
    """SAM weights file; default: the official file in --cache-dir (downloaded if online)."""
    cache_dir: Path | None = None
    """Cache for official SAM checkpoints (default $INSTGS_CACHE/sam or ~/.cache/instgs/sam)."""
    points_per_side: int = 32
    """SAM point grid per side (LangSplat 32)."""
    points_per_batch: int = 64
    """SAM prompts per decoder batch (lower = less memory)."""
    pred_iou_thresh: float = 0.7
    """SAM predicted-IoU filter (LangSplat 0.7)."""
    stability_score_thresh: float = 0.85
    """SAM stability filter (LangSplat 0.85)."""
    box_nms_thresh: float = 0.7
    """SAM box NMS within a crop (LangSplat 0.7)."""
    crop_n_layers: int = 1
    """SAM crop layers (LangSplat 1)."""
    min_mask_region_area: int = 100
    """Fill holes / drop islands below this many pixels (LangSplat 100)."""
    dedup_iou_thresh: float = 0.8
    """LangSplat per-level de-duplication: IoU threshold."""
    dedup_score_thresh: float = 0.7
    """LangSplat de-duplication: drop masks with stability x predicted IoU <= this."""
    dedup_inner_thresh: float = 0.5
    """LangSplat de-duplication: nested-mask threshold."""
    sam_image_size: int = 1024
    """SAM encoder input side; the official weights need 1024 (smaller only for tests
    with random weights)."""

    # Felzenszwalb
    felzenszwalb_scales: tuple[float, float, float] = (100.0, 300.0, 1000.0)
    """Felzenszwalb scale for small / medium / large."""
    felzenszwalb_min_size: int = 50
    """Felzenszwalb minimum segment size (working-resolution pixels)."""
    felzenszwalb_working_side: int = 512
    """Long side at which Felzenszwalb runs (labels are upsampled)."""

    # CLIP
    clip_model: str = "ViT-B-16"
    """open_clip architecture."""
    clip_pretrained: str = "laion2b_s34b_b88k"
    """open_clip pretrained tag."""
    clip_checkpoint: Path | None = None
    """Local open_clip weights for --clip-model (offline use)."""
    clip_batch: int = 32
    """Mask crops per CLIP forward pass."""

    progress: bool = True
    """Show a progress bar."""
    random_weights_for_testing: bool = False
    """Use randomly initialised SAM/CLIP when no weights are given (tests only; the output is
    meaningless)."""

    def resolved_device(self) -> str:
        """``device`` with ``auto`` resolved (cuda if available)."""
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def build_extractor(self):  # noqa: ANN201 - MaskExtractor (lazy import)
        """The :class:`~instgs.masks.pipeline.MaskExtractor` for these settings."""
        from .felzenszwalb import FelzenszwalbSettings
        from .pipeline import MaskExtractor

        device = self.resolved_device()
        use_clip = self.features == "clip" or (self.features == "auto"
                                               and self.mask_source == "sam")
        clip = None
        if use_clip:
            from instgs.clip import load_clip

            m, preprocess, _ = load_clip(self.clip_model, self.clip_pretrained, device=device,
                                         checkpoint=self.clip_checkpoint,
                                         allow_random_init=self.random_weights_for_testing)
            clip = (m, preprocess)
        sam_gen = None
        if self.mask_source == "sam":
            from .sam import SamLevelGenerator, SamSettings, load_sam

            sam = load_sam(self.sam_model_type, self.sam_checkpoint, device=device,
                           allow_random_init=self.random_weights_for_testing,
                           cache_dir=self.cache_dir, image_size=self.sam_image_size)
            sam_gen = SamLevelGenerator(sam, SamSettings(
                points_per_side=self.points_per_side, points_per_batch=self.points_per_batch,
                pred_iou_thresh=self.pred_iou_thresh,
                stability_score_thresh=self.stability_score_thresh,
                box_nms_thresh=self.box_nms_thresh, crop_n_layers=self.crop_n_layers,
                min_mask_region_area=self.min_mask_region_area))
        fz = FelzenszwalbSettings(scales=tuple(self.felzenszwalb_scales),
                                  min_size=self.felzenszwalb_min_size,
                                  working_side=self.felzenszwalb_working_side)
        return MaskExtractor(self.mask_source, sam_gen, fz, clip,
                             (self.dedup_iou_thresh, self.dedup_score_thresh,
                              self.dedup_inner_thresh), self.clip_batch)



def run(data: str | Path, cfg: MasksConfig | None = None) -> Path:
    """``instgs masks``: write ``<data>/language_features/<stem>_s.npy`` ([4, H, W] mask ids;
    levels default, small, medium, large; ids cumulative across levels; -1 = none) and
    ``<stem>_f.npy`` ([M, 512] L2-normalised CLIP features) for every image, one image at a
    time, under the output folder's lock. A rerun skips finished images (docs/masks.md).

    Args:
        data: scene folder.
        cfg: :class:`MasksConfig` (default: LangSplat's SAM settings).

    Returns:
        The output folder.

    Raises:
        InputError: missing scene / images, unreadable image, missing or wrong weights,
            existing files made with other settings or of another size, the folder in use
            by another ``instgs masks`` (each message names the file and the fix).
    """
    from instgs.core.artifacts import config_to_dict, read_json, write_json
    from instgs.core.lock import FolderLock

    from .io import FEATURES_DIRNAME
    from .pipeline import find_image_dir, list_images, run_masks

    cfg = cfg or MasksConfig()
    if cfg.resolution < -1:
        raise InputError(f"--resolution must be -1, 0 or a width > 0, got {cfg.resolution}")
    images = list_images(find_image_dir(data, cfg.images_dir))
    out = Path(cfg.output_dir) if cfg.output_dir else Path(data) / FEATURES_DIRNAME
    settings = config_to_dict(cfg)
    for k in ("images_dir", "output_dir", "overwrite", "device", "progress",
              "cache_dir", "points_per_batch", "clip_batch"):
        settings.pop(k, None)
    with FolderLock(out, "instgs masks"):
        cfg_path = out / "instgs_masks.json"
        if cfg_path.is_file() and not cfg.overwrite:
            old = read_json(cfg_path).get("settings", {})
            diff = sorted(k for k in settings if k in old and old[k] != settings[k])
            if diff:
                raise InputError(f"the existing masks were made with other settings ({diff})",
                                 cfg_path, "rerun with the same settings, --overwrite, or "
                                 "another --output-dir")
        extractor = cfg.build_extractor()
        write_json(cfg_path, {"tool": "instgs masks", "settings": settings})
        run_masks(images, out, extractor, cfg.resolution, cfg.overwrite, cfg.ids_dtype,
                  cfg.features_dtype, cfg.progress)
    return out
