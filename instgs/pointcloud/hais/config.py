"""HAIS hyper-parameters: paper / official-code defaults; presets are files.

The dataclass defaults are the paper + official code values. Named presets (the CPU-sized
``hais-tiny``, ``hais-paper``) are the files ``configs/pointcloud/hais-*.yaml``, read by
:func:`instgs.pointcloud.presets.hais_preset`; nothing here repeats their values.

Every value cites its source (pointcloud-methods.md §P0 = notes on Chen et al., "Hierarchical
Aggregation for 3D Instance Segmentation", ICCV 2021, and the official ``hustvl/HAIS`` code,
``config/hais_run1_scannet.yaml``). Schedule switches are *fractions* of the training budget
so that the code's epoch thresholds (500 epochs: proposals from 100, mask-IoU from 200, cosine
from 200) scale to any number of steps.

Point-count thresholds (``class_numpoint_mean``, ``min_points``, ``alpha``) refer to the
original ScanNet point density. When the input points are subsampled by a factor
``point_fraction = s`` (keep s of the points) they are rescaled: counts x s and alpha / sqrt(s),
which leaves ``r_size = alpha * sqrt(S)`` unchanged (§C.5). Voxel size does not change them:
clustering and evaluation always run on the points, not the voxels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from instgs.core.checks import InputError

__all__ = ["HAISConfig", "SCANNET_CLASS_NUMPOINT_MEAN", "SCANNET_CLASS_RADIUS_MEAN"]

#: HAIS code ``class_numpoint_mean`` (ScanNet20 order; -1 = stuff class, no instances).
SCANNET_CLASS_NUMPOINT_MEAN: tuple[float, ...] = (
    -1., -1., 3917., 12056., 2303., 8331., 3948., 3166., 5629., 11719., 1003., 3317., 4912.,
    10221., 3889., 4136., 2120., 945., 3967., 2589.)
#: HAIS code ``class_radius_mean`` = r_cls of Eq. 3 (metres).
SCANNET_CLASS_RADIUS_MEAN: tuple[float, ...] = (
    -1., -1., 0.7047687683952325, 1.1732690381942337, 0.39644035821116036, 1.011516629020215,
    0.7260155292902369, 0.8674973999335017, 0.8374931435447094, 1.0454153869133096,
    0.32879464797430913, 1.1954566226966346, 0.8628817944400078, 1.0416287916782507,
    0.6602697958671507, 0.8541363897836871, 0.38055290598206537, 0.3011878752684007,
    0.7420871812436316, 0.4474268644407741)


@dataclass
class HAISConfig:
    """All HAIS settings. Defaults = paper where it gives a value, else the official code."""

    # --- input / voxelisation -------------------------------------------------------------
    voxel_size: float = 0.02
    """Voxel edge in metres (paper + code ``scale: 50``)."""
    use_coords: bool = True
    """Append xyz (centred per scene, metres) to rgb as input features (code ``use_coords``)."""
    num_classes: int = 20
    """Semantic classes (ScanNet20)."""
    ignore_index: int = -100
    """Label of unannotated points (code)."""
    background_classes: tuple[int, ...] = (0, 1)
    """Classes without instances, excluded from grouping (code: wall, floor)."""

    # --- backbone (code, not paper) ---------------------------------------------------------
    width: int = 32
    """UNet base width m; level widths are [m, 2m, ..., levels*m] (code m=32; HAIS-S m=16)."""
    levels: int = 7
    """UNet levels (code: 7)."""
    block_reps: int = 2
    """Residual blocks per level (code: 2)."""

    # --- losses -----------------------------------------------------------------------------
    offset_weighted: bool = True
    """Weight the offset L1 by w = min(||dx_gt||, 1) (paper Eq. 1); the code has no weight."""
    offset_dir_weight: float = 0.0
    """Weight of PointGroup's direction (negative cosine) loss; HAIS uses none (0)."""
    loss_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    """Weights of (seg, shift, mask, score) (paper Eq. 6 and code: all 1)."""

    # --- point aggregation (Sec. 3.2) --------------------------------------------------------
    point_radius: float = 0.03
    """r_point in metres on shifted points (paper)."""

    # --- set aggregation (Sec. 3.3, Alg. 1) ---------------------------------------------------
    alpha: float = 0.01
    """alpha of r_size = alpha * sqrt(S_prim) (paper)."""
    fragment_ratio: float = 0.3
    """A cluster is a fragment if size < ratio * class_numpoint_mean (code)."""
    keep_fragment_ratio: float = 0.05
    """Fragments with size >= ratio * mean are also kept as proposals (code); clusters below
    it are dropped in training."""
    keep_fragments: bool = True
    """Keep mid-size fragments as extra proposals (code); False = paper's non-overlapping set."""
    class_numpoint_mean: tuple[float, ...] = SCANNET_CLASS_NUMPOINT_MEAN
    """Mean instance size per class, points at full density (code table; training
    re-estimates it from the training scenes, see ``class_statistics``)."""
    class_radius_mean: tuple[float, ...] = SCANNET_CLASS_RADIUS_MEAN
    """r_cls per class in metres (code table; re-estimated from the training scenes)."""
    point_fraction: float = 1.0
    """Fraction s of the original points that the input keeps (1 = full density); point-count
    thresholds are multiplied by s, alpha divided by sqrt(s)."""

    # --- intra-instance network (code, not paper) ---------------------------------------------
    intra_voxel_size: float = 0.02
    """Finest proposal voxel in metres (code ``score_scale: 50``)."""
    intra_fullscale: int = 20
    """Each proposal is rescaled to fit a grid of this many voxels (code ``score_fullscale``)."""
    intra_levels: int = 2
    """Levels of the proposal UNet, widths [m, 2m] (code ``UBlock([32, 64])``)."""
    intra_block_reps: int = 2
    """Residual blocks per level of the proposal UNet (code: 2)."""
    max_proposals: int = 200
    """Largest proposals kept per training batch (code ``max_proposal_num``)."""
    intra_backprop: bool = True
    """Let L_mask / L_score gradients flow into the backbone (paper: end-to-end, True). False
    detaches the point features fed to the intra-instance network (a CPU-overfit choice:
    the backbone then learns only from L_seg + L_shift)."""
    mask_filter_threshold: float = 0.5
    """Points with sigmoid(mask) < this are zeroed before the score max-pool (code)."""

    # --- schedule (fractions of the training steps; code epochs / 500) ------------------------
    prepare_fraction: float = 0.2
    """Only L_seg + L_shift before this fraction (code ``prepare_epochs: 100`` of 500)."""
    mask_iou_fraction: float = 0.4
    """From here IoU targets and score-feature masking use the predicted mask (code 200/500)."""

    # --- inference (Sec. 3.5 + code) ------------------------------------------------------
    mask_logit_threshold: float = -0.5
    """A proposal keeps the points whose mask logit > this (code ``test_mask_score_thre``)."""
    score_threshold: float = 0.09
    """Drop proposals with score <= this (code ``TEST_SCORE_THRESH``)."""
    min_points: int = 100
    """Drop final instances with fewer points (paper, full density)."""

    def __post_init__(self) -> None:
        if len(self.class_numpoint_mean) != self.num_classes or \
                len(self.class_radius_mean) != self.num_classes:
            raise InputError(
                f"class_numpoint_mean / class_radius_mean need {self.num_classes} entries, got "
                f"{len(self.class_numpoint_mean)} / {len(self.class_radius_mean)}", None,
                "give one value per class (-1 for classes without instances)")
        if not 0 < self.point_fraction <= 1:
            raise InputError(f"point_fraction must be in (0, 1], got {self.point_fraction}")
        if self.voxel_size <= 0 or self.intra_voxel_size <= 0 or self.point_radius <= 0:
            raise InputError("voxel_size, intra_voxel_size and point_radius must be > 0")
        if not 0 <= self.prepare_fraction <= 1 or not 0 <= self.mask_iou_fraction <= 1:
            raise InputError("prepare_fraction and mask_iou_fraction must lie in [0, 1]")
        self.class_numpoint_mean = tuple(float(v) for v in self.class_numpoint_mean)
        self.class_radius_mean = tuple(float(v) for v in self.class_radius_mean)
        self.background_classes = tuple(int(v) for v in self.background_classes)

    # --- rescaled thresholds ------------------------------------------------------------------
    @property
    def scaled_numpoint_mean(self) -> list[float]:
        """class_numpoint_mean x point_fraction (-1 stays -1)."""
        s = self.point_fraction
        return [v * s if v > 0 else -1.0 for v in self.class_numpoint_mean]

    @property
    def scaled_alpha(self) -> float:
        """alpha / sqrt(point_fraction), so alpha*sqrt(S) is density independent."""
        return self.alpha / math.sqrt(self.point_fraction)

    @property
    def scaled_min_points(self) -> int:
        """min_points x point_fraction (at least 1)."""
        return max(1, int(round(self.min_points * self.point_fraction)))

    def with_class_statistics(self, stats: dict) -> HAISConfig:
        """Copy with ``class_numpoint_mean`` / ``class_radius_mean`` from
        :func:`instgs.pointcloud.data.class_statistics`.

        Classes that have no instance in ``stats`` (value <= 0) but are not background keep
        the HAIS code table value (x the point fraction already baked into ``stats`` is not
        assumed: the table is at full density, so it is scaled by nothing here and by
        ``point_fraction`` when used).
        """
        npm = list(self.class_numpoint_mean)
        rad = list(self.class_radius_mean)
        s = self.point_fraction
        for c in range(self.num_classes):
            n = float(stats["class_numpoint_mean"][c])
            r = float(stats["class_radius_mean"][c])
            if c in self.background_classes:
                npm[c], rad[c] = -1.0, -1.0
            elif n > 0 and r > 0:
                npm[c], rad[c] = n / s, r  # stored at full density
        return replace(self, class_numpoint_mean=tuple(npm), class_radius_mean=tuple(rad))
