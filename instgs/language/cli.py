"""``instgs language RUN`` and ``instgs query RUN "text" [...]``."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro

from instgs.core.checks import InputError

from .associate import LanguageConfig

__all__ = ["LanguageCommand", "QueryCommand"]


@dataclass
class LanguageCommand:
    """Attach a CLIP feature to every 3D instance of a segmented run: match each instance's
    silhouette to the SAM masks of every training view (IoU x feature agreement) and pool the
    matched masks' CLIP features. Writes RUN/language.npz."""

    run_dir: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN")]
    """Run folder with ckpt/latest.pt and instances.npz (`instgs segment RUN`)."""
    config: Annotated[LanguageConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=LanguageConfig)
    """Association settings (defaults: InstanceGaussian ScanNet; OpenGaussian: --pooling mean
    --min-score 0.2 --silhouette-threshold 0.8)."""
    cluster_lang: bool = False
    """Also write RUN/cluster_lang.npz for the OpenGaussian / InstanceGaussian eval scripts."""
    device: Literal["cpu", "cuda"] = "cpu"
    """Where to decode the model."""
    threads: int | None = None
    """torch CPU threads (None = torch's default)."""

    def run(self) -> Path:
        """Associate and write ``language.npz`` (see :func:`instgs.language.run`)."""
        from .stage import run

        return run(self.run_dir, self.config, device=self.device,
                   cluster_lang=self.cluster_lang, threads=self.threads)


@dataclass
class QueryCommand:
    """Rank a run's instances by free text (or names of a precomputed text-feature table)
    and write the selection (instance ids, masks over anchors and Gaussians) to
    RUN/query_<texts>.json + .npz."""

    run_dir: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN")]
    """Run folder with language.npz (`instgs language RUN`)."""
    texts: Annotated[tuple[str, ...], tyro.conf.Positional, tyro.conf.arg(metavar="TEXT")]
    """One or more queries, e.g. "chair" "something to sit on"."""
    text_features: Path | None = None
    """JSON {name: [512 floats]} of precomputed text features (OpenGaussian's
    assets/text_features.json); works offline. Texts must be names in it."""
    clip_model: str = "ViT-B-16"
    """open_clip architecture (must be the one the mask features came from)."""
    clip_pretrained: str = "laion2b_s34b_b88k"
    """open_clip pretrained tag (downloaded on first use; needs internet)."""
    clip_checkpoint: Path | None = None
    """Local open_clip weights file for --clip-model (offline)."""
    relevancy: bool = False
    """Rank by LERF relevancy against canonical negatives instead of cosine."""
    negatives: tuple[str, ...] = ("object", "things", "stuff", "texture")
    """Canonical negatives for --relevancy."""
    top_k: int = 5
    """Instances printed and stored per text."""
    select: int = 1
    """Instances selected per text (best first)."""
    threshold: float | None = None
    """Also select every instance scoring >= threshold."""
    min_views: int = 1
    """Rank only instances matched in at least this many views."""
    include_parts: bool = False
    """Also rank fragments whose feature came only from the containment fallback of
    `instgs language` (parts inside one object's masks)."""

    def run(self) -> Path:
        """Query, print the rankings, write ``RUN/query_<slug>.json`` (+ .npz); return it.

        Raises:
            InputError: no language features, empty text, unknown name, no CLIP weights.
        """
        from .query import load_language, query_instances, save_query

        for t in self.texts:
            if not t.strip():
                raise InputError("empty query text", None,
                                 'pass a non-empty text, e.g. instgs query RUN "chair"')
        lang = load_language(self.run_dir)
        res = query_instances(lang, list(self.texts), text_features=self.text_features,
                              clip_model=self.clip_model, clip_pretrained=self.clip_pretrained,
                              clip_checkpoint=self.clip_checkpoint, negatives=self.negatives,
                              relevancy=self.relevancy, top_k=self.top_k, select=self.select,
                              threshold=self.threshold, min_views=self.min_views,
                              include_parts=self.include_parts)
        vc = lang.features.view_counts
        row_of = {int(i): r for r, i in enumerate(lang.features.instance_ids)}
        sizes = np.bincount(lang.anchor_labels[lang.anchor_labels >= 0],
                            minlength=len(vc))
        kind = "relevancy" if self.relevancy else "cosine"
        for m in res.matches:
            print(f'"{m.text}":')
            for rank, (i, s) in enumerate(zip(m.instance_ids, m.scores), 1):
                r = row_of[int(i)]
                print(f"  {rank:>2}. instance {int(i):>4}  {kind} {float(s):.4f}  "
                      f"views {int(vc[r])}  "
                      f"anchors {int(sizes[int(i)]) if int(i) < len(sizes) else 0}")
        path = save_query(self.run_dir, res)
        print(f"selected instances {res.selected_ids.tolist()} "
              f"({int(res.anchor_mask.sum())} anchors, {int(res.gaussian_mask.sum())} "
              f"Gaussians); wrote {path} and {path.with_suffix('.npz').name}")
        sys.stdout.flush()
        return path

