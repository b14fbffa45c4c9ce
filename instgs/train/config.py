"""Training configuration (dataclasses; tyro builds the CLI).

Defaults follow the released InstanceGaussian / Scaffold-GS code (reference-implementations.md
§1.3 and §3). Every iteration count refers to the 30k schedule and is scaled by ``--steps``.
The named presets are files in ``configs/train/`` (:func:`train_preset`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from instgs.model.scaffold import ScaffoldConfig
from instgs.train.densify import DensifyConfig
from instgs.losses import LossConfig

__all__ = ["OptimConfig", "ScheduleConfig", "TrainConfig", "REFERENCE_STEPS", "train_preset",
           "train_presets", "default_run_dir"]

REFERENCE_STEPS = 30_000
"""Length of the published schedule; ``--steps`` scales every boundary relative to it."""


@dataclass(frozen=True)
class OptimConfig:
    """Adam learning rates (Scaffold-GS / InstanceGaussian). ``*_final`` values are reached by
    exponential decay at the end of training."""

    offset_lr: float = 0.01
    """Offsets, multiplied by the scene extent (Scaffold-GS ``spatial_lr_scale``)."""
    offset_lr_final: float = 0.0001
    feature_lr: float = 0.0075
    scaling_lr: float = 0.007
    ins_feat_lr: float = 0.001
    ins_feat_lr_joint: float = 0.0001
    """Instance-feature learning rate in the joint phase (InstanceGaussian: 1e-4 after 20k)."""
    mlp_opacity_lr: float = 0.002
    mlp_opacity_lr_final: float = 0.00002
    mlp_cov_lr: float = 0.004
    mlp_cov_lr_final: float = 0.004
    mlp_color_lr: float = 0.008
    mlp_color_lr_final: float = 0.00005
    appearance_lr: float = 0.05
    appearance_lr_final: float = 0.0005


@dataclass(frozen=True)
class ScheduleConfig:
    """The progressive schedule (seed 004 §3.2): appearance only until ``semantic_start``,
    appearance and semantics separately (feature loss on detached geometry) until
    ``joint_start``, then jointly."""

    semantic_start: int = 10_000
    joint_start: int = 20_000


@dataclass(frozen=True)
class TrainConfig:
    """``instgs train``: fit a Semantic-Scaffold-GS scene to posed images (+ SAM masks)."""

    data: Path = Path("demo_scene")
    """Scene folder (COLMAP, transforms.json, LLFF, OpenGaussian-ScanNet layout)."""
    format: Literal["auto", "colmap", "nerf", "llff", "scannet"] = "auto"
    """Scene layout; ``auto`` detects it from the files present."""
    downscale: int = 1
    """Image downscale factor (uses ``images_<d>`` folders when they exist)."""
    images_dir: str | None = None
    """Image folder relative to the scene (default: the layout's own)."""
    test_every: int = 8
    """Hold out every n-th image (LLFF convention) for evaluation."""
    max_images: int | None = None
    """Use at most this many images (debugging)."""
    run_dir: Path | None = None
    """Output folder (default ``runs/<scene name>``)."""
    steps: int = REFERENCE_STEPS
    """Training steps; every schedule boundary (stages, densification, learning-rate decay)
    is scaled by ``steps / 30000``."""
    max_minutes: float | None = None
    """Stop after this much wall time, then evaluate and save."""
    resume: bool = False
    """Continue the run in ``run_dir`` from its checkpoint; the settings default to the
    run's own, and only the runtime ones (steps, time budget, threads, ...) may change."""
    overwrite: bool = False
    """Start over in a ``run_dir`` that already holds a trained run (its instances and
    language features become stale); without it such a folder is refused."""
    save_every: int = 2000
    """Atomic checkpoint every n steps (and at the end)."""
    eval_every: int = 0
    """Evaluate on held-out views every n steps (0: only at the end)."""
    seed: int = 0
    backend: Literal["auto", "cpu", "gsplat", "torch"] = "auto"
    """Rasterizer: ``gsplat`` (CUDA), ``cpu`` (instgs C++ kernel), ``torch`` (reference)."""
    device: str = "auto"
    """``auto`` = CUDA if available (with gsplat), else CPU."""
    threads: int | None = None
    """CPU threads for torch and the C++ kernel (default: torch's)."""
    random_background: bool = True
    """Composite renders on a random colour each step (InstanceGaussian default)."""
    semantics: Literal["auto", "on", "off"] = "auto"
    """Train instance features: ``auto`` = when ``language_features/`` masks exist."""
    masks_dir: str = "language_features"
    """Folder (relative to the scene) with the LangSplat-layout masks, e.g.
    ``language_features_clean`` for the ScanNet tool's noiseless masks."""
    sam_level: Literal["default", "small", "medium", "large"] = "large"
    """SAM level used for the instance losses (InstanceGaussian: large; OpenGaussian's ScanNet
    script: default)."""
    render_mapped_features: bool = True
    """Render instance features as ``(normalize(f)+1)/2`` (released code) rather than raw."""
    random_init_points: int = 50_000
    """Initial points sampled around the cameras' focus when the scene has no point cloud."""
    progress: bool = True
    model: ScaffoldConfig = field(default_factory=ScaffoldConfig)
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def scale(self, it: int) -> int:
        """An iteration of the 30k schedule mapped onto ``steps``."""
        return int(round(it * self.steps / REFERENCE_STEPS))


def default_run_dir(data: str | Path) -> Path:
    """``runs/<scene folder name>``: where a run goes when ``--run-dir`` is not given."""
    return Path("runs") / Path(data).resolve().name


def train_presets() -> dict[str, str]:
    """Preset name -> description, from the files in ``configs/train/`` (the one source of
    truth: :mod:`instgs.core.configs`)."""
    from instgs.core.configs import list_presets, preset_description

    return {name: preset_description(p) for name, p in list_presets("train").items()}


def train_preset(name: str) -> TrainConfig:
    """The :class:`TrainConfig` of preset ``name`` (``configs/train/<name>.yaml``).

    Raises:
        InputError: unknown preset (lists the known ones) or a malformed file.
    """
    from instgs.core.configs import load_preset

    return load_preset("train", name, TrainConfig)
