"""What an artifact was made from, and the check that refuses one made from something else.

Every artifact a stage writes records a *source*::

    {"checkpoint_step": 5000, "checkpoint_sha256": "…", "config_sha256": "…"}

(``instances.npz`` and ``language.npz`` in their ``meta``, eval JSONs at the top level).
A stage that reads an artifact compares its source with the run's current checkpoint
(:func:`check_source`): after retraining, a stale ``instances.npz`` is refused with the
command that remakes it, instead of being silently mixed with the new model.

``config_sha256`` hashes ``config.json`` without the settings that may change between a
run and its resumption (:data:`RUNTIME_FIELDS`: step budget, threads, progress bars, ...).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from instgs.core.artifacts import read_json, write_json
from instgs.core.checks import InputError

from .checkpoint import file_sha256
from .layout import RunPaths

__all__ = ["RUNTIME_FIELDS", "config_sha256", "write_checkpoint_info", "current_source",
           "check_source"]

log = logging.getLogger(__name__)

RUNTIME_FIELDS = frozenset({"resume", "overwrite", "steps", "max_minutes", "save_every",
                            "eval_every", "threads", "progress", "device", "backend",
                            "run_dir"})
"""TrainConfig fields that do not define the model (a resumed run may change them)."""

_hash_cache: dict[tuple[str, int, int], str] = {}


def config_sha256(cfg: dict) -> str:
    """SHA-256 of a config's plain data (sorted JSON) without :data:`RUNTIME_FIELDS`."""
    core = {k: v for k, v in cfg.items() if k not in RUNTIME_FIELDS}
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()


def _cached_sha256(path: Path) -> str:
    st = os.stat(path)
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        _hash_cache[key] = file_sha256(path)
    return _hash_cache[key]


def write_checkpoint_info(run_dir: str | Path, step: int, sha256: str, cfg_sha256: str) -> Path:
    """Write ``ckpt/latest.json`` (step, SHA-256, config hash) after a checkpoint is saved."""
    paths = RunPaths(Path(run_dir))
    ckpt = paths.checkpoint
    st = os.stat(ckpt)
    _hash_cache[(str(ckpt.resolve()), st.st_size, st.st_mtime_ns)] = sha256
    return write_json(paths.checkpoint_info, {"step": int(step), "sha256": sha256,
                                              "config_sha256": cfg_sha256})


def current_source(run_dir: str | Path) -> dict[str, Any]:
    """The source record of the run's current checkpoint.

    Returns:
        ``{"checkpoint_step": int | None, "checkpoint_sha256": str, "config_sha256": str |
        None}``; the step and config hash come from ``ckpt/latest.json`` when it describes
        the checkpoint on disk (the hash is always recomputed from the file).

    Raises:
        InputError: no checkpoint in the run.
    """
    paths = RunPaths(Path(run_dir))
    if not paths.checkpoint.is_file():
        raise InputError("no checkpoint in this run", paths.checkpoint,
                         "train the run first (`instgs train`)")
    sha = _cached_sha256(paths.checkpoint)
    step = cfg_sha = None
    if paths.checkpoint_info.is_file():
        try:
            info = read_json(paths.checkpoint_info)
        except InputError:
            info = {}
        if info.get("sha256") == sha:
            step, cfg_sha = info.get("step"), info.get("config_sha256")
    if cfg_sha is None and paths.config.is_file():
        try:
            cfg_sha = config_sha256(read_json(paths.config))
        except InputError:
            cfg_sha = None
    return {"checkpoint_step": step, "checkpoint_sha256": sha, "config_sha256": cfg_sha}


def check_source(recorded: dict | None, current: dict, artifact: str | Path, fix: str) -> None:
    """Refuse an artifact made from another checkpoint than the run's current one.

    Args:
        recorded: the artifact's source record (None: written by an older instgs, accepted
            with a warning).
        current: :func:`current_source` of the run.
        artifact: the artifact's path (named in the message).
        fix: the command that remakes it.

    Raises:
        InputError: the checkpoint hashes differ.
    """
    if not recorded:
        log.warning("%s records no source checkpoint (written by an older instgs); it is used "
                    "as is", artifact)
        return
    if recorded.get("checkpoint_sha256") != current.get("checkpoint_sha256"):
        def desc(s: dict) -> str:
            step = s.get("checkpoint_step")
            return (f"step {step}, " if step is not None else "") + \
                f"sha256 {str(s.get('checkpoint_sha256'))[:12]}"
        raise InputError(f"made from another checkpoint ({desc(recorded)}) than the run's "
                         f"current one ({desc(current)}): the run was retrained since",
                         artifact, f"remake it: {fix}")
