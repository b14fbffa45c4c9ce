"""Settings every sparse-convolution network of the track shares (SSEN, 3D-QueryIS).

HAIS keeps its own :class:`instgs.pointcloud.hais.HAISConfig` (older, same field names).
Presets are the files ``configs/pointcloud/*.yaml``; the defaults here are the papers'.
"""

from __future__ import annotations

from dataclasses import dataclass

from instgs.core.checks import InputError

__all__ = ["LabelSpaceFields", "SparseNetConfig"]


class LabelSpaceFields:
    """What a network config derives from its ``label_space`` and ``min_points`` fields
    (shared by :class:`SparseNetConfig` and
    :class:`instgs.pointcloud.mpnet.config.MPNetConfig`)."""

    label_space: str
    min_points: int

    @property
    def classes(self):
        """The :class:`instgs.pointcloud.data.labels.LabelSpace` of ``label_space``."""
        from instgs.pointcloud.data.labels import label_space

        return label_space(self.label_space)

    @property
    def num_classes(self) -> int:
        """Semantic classes C of the label space."""
        return self.classes.num_classes

    @property
    def background_classes(self) -> tuple[int, ...]:
        """Classes without instances (ScanNet: wall, floor)."""
        return self.classes.background_classes

    @property
    def scaled_min_points(self) -> int:
        """Minimum instance size used by evaluation (= ``min_points``)."""
        return self.min_points


@dataclass
class SparseNetConfig(LabelSpaceFields):
    """Input, label space and backbone of a sparse-conv network (PointGroup-style UNet)."""

    label_space: str = "scannet20"
    """Classes: ``scannet20`` (18 instance classes; wall, floor background) or
    ``semantickitti`` (8 thing classes)."""
    voxel_size: float = 0.02
    """Voxel edge in metres (SSEN paper and HAIS: 2 cm; 3D-QueryIS: not given)."""
    use_coords: bool = True
    """Append xyz minus the scene mean (metres) to rgb as input features (SSEN paper f = 6;
    its code uses colours only)."""
    width: int = 32
    """UNet base width m; level widths [m, 2m, ..., levels*m]."""
    levels: int = 7
    """UNet levels (7 in the PointGroup / HAIS / SoftGroup family)."""
    block_reps: int = 2
    """Residual blocks per level."""
    min_points: int = 100
    """Predicted instances with fewer points are dropped; also the evaluation's minimum
    region size (ScanNet benchmark: 100 points)."""

    def __post_init__(self) -> None:
        from instgs.pointcloud.data.labels import label_space

        label_space(self.label_space)
        if self.voxel_size <= 0:
            raise InputError(f"voxel_size must be > 0, got {self.voxel_size}")
        if self.width <= 0 or self.levels <= 0 or self.block_reps <= 0:
            raise InputError("width, levels and block_reps must be positive")
        if self.min_points < 1:
            raise InputError(f"min_points must be >= 1, got {self.min_points}")
