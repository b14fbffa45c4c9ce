"""The run layer: one home for a run folder and everything in it.

Every stage (train, segment, language, eval, export, the viewer) reads and writes a run
through this package; nothing else spells an artifact path. See :mod:`instgs.run.layout`
for the folder layout, :mod:`instgs.run.checkpoint` for safe checkpoints,
:mod:`instgs.core.lock` for the one-writer rule and :mod:`instgs.run.provenance` for the
records that keep a stage from mixing artifacts of different checkpoints.
"""

from __future__ import annotations

from .artifacts import (InstanceLabels, LanguageFeatures, expand_to_gaussians, labels_digest,
                        load_instances, load_language, load_metrics, load_npz, save_eval,
                        save_instances, save_language, save_metrics)
from .checkpoint import Checkpoint, check_plain, file_sha256, load_checkpoint, save_checkpoint
from .layout import RunPaths
from .loaded import (LoadedRun, appearance_index, check_resumable, load_run,
                     load_run_checkpoint, read_run_config, save_run_checkpoint, scaffold_from,
                     source_of, write_run_config)
from instgs.core.lock import FolderLock

from .provenance import check_source, config_sha256, current_source

__all__ = ["RunPaths", "LoadedRun", "load_run", "read_run_config", "write_run_config",
           "appearance_index", "load_run_checkpoint", "save_run_checkpoint", "scaffold_from",
           "check_resumable", "source_of", "Checkpoint", "save_checkpoint", "load_checkpoint",
           "check_plain", "file_sha256", "FolderLock", "config_sha256", "current_source",
           "check_source",
           "InstanceLabels", "LanguageFeatures", "expand_to_gaussians", "labels_digest",
           "save_instances", "load_instances", "save_language", "load_language",
           "save_metrics", "load_metrics", "save_eval", "load_npz"]
