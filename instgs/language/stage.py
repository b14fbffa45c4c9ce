"""The language stage: a segmented run in, ``language.npz`` out (hloc style).

``instgs.language.run(run_dir, cfg)`` is what ``instgs language RUN`` does, as a function:
load the run and its (fresh) instances through :mod:`instgs.run`, associate
(:func:`instgs.language.associate.associate`), write ``language.npz`` with its ``source``
record under the run's lock, and optionally the ``cluster_lang.npz`` of the released
OpenGaussian / InstanceGaussian eval scripts.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from instgs.core.artifacts import update_manifest
from instgs.run import FolderLock, LanguageFeatures, load_instances, load_run, save_language

from .associate import LanguageConfig, associate, export_cluster_lang

__all__ = ["run"]

log = logging.getLogger(__name__)


def run(run_dir: str | Path, cfg: LanguageConfig | None = None, *, device: str = "cpu",
        cluster_lang: bool = False, threads: int | None = None) -> Path:
    """``instgs language RUN``: one CLIP feature per instance, written to ``language.npz``.

    Args:
        run_dir: a segmented run (``instgs segment RUN``).
        cfg: association settings (default: InstanceGaussian ScanNet, visible silhouettes).
        device: where the model decodes (``cpu`` / ``cuda``).
        cluster_lang: also write ``cluster_lang.npz`` for the released eval scripts.
        threads: torch CPU threads (None = torch's default).

    Returns:
        The written ``language.npz``.

    Raises:
        InputError: no / unsafe / corrupt checkpoint, no or stale instances, no masks,
            appearance-only run, or the run in use by another writer.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    cfg = cfg or LanguageConfig()
    run_dir = Path(run_dir)
    with FolderLock(run_dir, "instgs language"):
        inst = load_instances(run_dir)
        loaded = load_run(run_dir, device=device)
        lang = associate(loaded, inst.anchor_labels, cfg, num_instances=inst.num_instances)
        path = save_language(run_dir, lang)
        _summary(lang, cfg, path)
        if cluster_lang:
            p2 = export_cluster_lang(lang, inst.anchor_labels, loaded.paths.cluster_lang)
            log.info("  wrote %s", p2)
        update_manifest(run_dir, "language", config=cfg,
                        matched_instances=lang.meta["matched_instances"],
                        seconds=lang.meta["seconds"])
    return path


def _summary(lang: LanguageFeatures, cfg: LanguageConfig, path: Path) -> None:
    m = lang.meta
    k = len(lang.instance_ids)
    log.info("instgs language: %d instances, %d views, level %s, silhouette %s, pooling %s: "
             "%d instances matched (%d IoU matches; %d instances by containment, left out of "
             "queries unless --include-parts) in %.1fs", k, len(m["views"]), m["sam_level"],
             cfg.silhouette, cfg.pooling, m["matched_instances"], m["num_matches"],
             m.get("containment_fallback_instances", 0), m["seconds"])
    if k:
        vc = lang.view_counts
        log.info("  views per instance: median %d, max %d; >= 2 views: %d",
                 int(np.median(vc)), int(vc.max()), int((vc >= 2).sum()))
    if not m["clip_features_available"]:
        log.warning("  warning: the masks carry no CLIP features (Felzenszwalb masks); the "
                    "instance features are zero. Recompute them with `instgs masks "
                    "--mask-source sam` for text queries.")
    log.info("  wrote %s", path)
