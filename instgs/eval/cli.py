"""``instgs eval scannet``: score a run (or predictions made elsewhere) on a ScanNet scene.

    instgs eval scannet RUN --gt SCENE_DIR [--text-features text_features.json]
    instgs eval scannet --pred-labels cluster_result.pt --lang cluster_lang.npz \\
        --gt ../shared/data/scannet-scene0000-mmdet3d --scene scene0000_00 \\
        --text-features ../shared/data/opengaussian-clip-text-features/assets/text_features.json

    instgs eval masks RUN [--gt-masks DIR] [--views test|train|all]

Prints a table and writes JSON (percentages) atomically; see docs/evaluation.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from collections.abc import Sequence

import tyro

from instgs.core.checks import InputError

from .stage import run_scannet

__all__ = ["EvalScannetCommand", "EvalMasksCommand", "EvalCommand"]


@dataclass
class EvalScannetCommand:
    """Score class-agnostic instances (published best-IoU protocol + one-to-one AP variant)
    and, with per-instance CLIP features and text features, 19/15/10-class text queries."""

    run_dir: Annotated[Path | None, tyro.conf.Positional, tyro.conf.arg(metavar="RUN")] = None
    """Run folder (instances.npz; language.npz if present). Omit when --pred-labels is given."""
    gt: Path | None = None
    """GT: a rendered scene folder (gt/instance_per_vertex.npy) or the MMDetection3D ScanNet
    root (scannet_train_instance_data/)."""
    scene: str | None = None
    """Scene name, e.g. scene0000_00 (needed for multi-scene GT roots)."""
    pred_labels: Path | None = None
    """One instance id per vertex (.npy or .pt), instead of a run."""
    lang: Path | None = None
    """cluster_lang.npz (leaf_feat, occu_count, leaf_ind) made elsewhere."""
    text_features: Path | None = None
    """JSON {NYU40 name: [512 floats]} standing in for a CLIP text encoder."""
    out: Path | None = None
    """JSON output (default: RUN/eval_scannet.json, or eval_scannet_<scene>.json here)."""
    min_views: int = 2
    """Instances matched in fewer views get a zero feature (-> 'wall'), as released."""

    def run(self) -> Path:
        """Evaluate, print the table, write the JSON; return its path (see
        :func:`instgs.eval.run_scannet`)."""
        return run_scannet(self.run_dir, self.gt, scene=self.scene,
                           pred_labels=self.pred_labels, lang=self.lang,
                           text_features=self.text_features, out=self.out,
                           min_views=self.min_views)


@dataclass
class EvalMasksCommand:
    """Score a segmented run in 2D: render each held-out view's instance map (top contributor
    per pixel) and compare it with the view's GT instance mask: mIoU, PQ, F1@50 per view and
    averaged."""

    run_dir: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN")]
    """Segmented run folder (instances.npz)."""
    gt_masks: Path | None = None
    """GT instance masks, <image stem>.png|.npy, 0 = not annotated (default: the scene's
    gt/instance)."""
    views: Literal["test", "train", "all"] = "test"
    """Which views to score (test falls back to train when there is none)."""
    out: Path | None = None
    """JSON output (default: RUN/eval_masks.json)."""
    backend: Literal["auto", "cpu", "gsplat", "torch"] = "auto"
    """Rasterizer backend."""

    def run(self) -> Path:
        """Evaluate, print the table, write the JSON (:func:`instgs.eval.masks2d.run_masks`)."""
        from .masks2d import run_masks

        return run_masks(self.run_dir, self.gt_masks, self.views, self.out, self.backend)


@dataclass
class EvalCommand:
    """``instgs eval BENCHMARK ...``: dispatch to a benchmark's command (only ``scannet``)."""

    @staticmethod
    def parse_cli(args: Sequence[str], prog: str = "instgs eval"):
        """Parse ``scannet ARGS...`` into an :class:`EvalScannetCommand`."""
        from instgs._cli import UsageError, tyro_parse

        args = list(args)
        benchmarks = {"scannet": EvalScannetCommand, "masks": EvalMasksCommand}
        if not args or args[0] in ("-h", "--help"):
            print(f"usage: {prog} {{{','.join(benchmarks)}}} [ARGS...]\n\n"
                  "  scannet   ScanNet class-agnostic instance + text-query evaluation\n"
                  "  masks     2D instance masks of held-out views (mIoU, PQ, F1)")
            raise SystemExit(0 if args else 2)
        if args[0] not in benchmarks:
            raise UsageError(f"unknown benchmark {args[0]!r}; choose one of {list(benchmarks)}")
        return tyro_parse(benchmarks[args[0]], args[1:], f"{prog} {args[0]}",
                          description=benchmarks[args[0]].__doc__)

    def run(self) -> Path:  # pragma: no cover - parse_cli returns the benchmark command
        raise InputError("choose a benchmark",
                         fix="run `instgs eval scannet ...` or `instgs eval masks ...`")
