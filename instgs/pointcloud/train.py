"""Generic trainer for the point-cloud networks: Adam, constant-then-cosine schedule, atomic
checkpoints, ``--resume``, tqdm progress.

A network plugs in through two callables: ``collate(scenes) -> batch`` and
``model.loss(batch, progress) -> (loss, logs)`` where ``progress = step / steps`` in [0, 1]
drives phase switches (e.g. HAIS's backbone warm-up before proposals).

Schedule (HAIS official code, ``cosine_lr_after_step``): constant ``lr`` until
``cosine_after * steps``, then cosine decay to ``min_lr`` at ``steps`` (the paper only says
"cosine anneal"; pointcloud-methods.md §P0 0.6).

Checkpoints go through :mod:`instgs.run.checkpoint` (kind ``"pointcloud"``): written
atomically with tensors and plain containers only, read back with
``torch.load(weights_only=True)``, so a planted ``last.pt`` cannot run code on ``--resume``,
``eval`` or ``predict``; a truncated file, a Gaussian-pipeline (``"scaffold"``) checkpoint or
a dict without the network entries is refused with an ``InputError`` naming the file.

Threads: ``num_threads=1`` is the default on purpose. On this project's shared 2-core
machine (load average ~9) one HAIS-tiny step on scene0000_00 took 45 s with
``torch.set_num_threads(2)`` and 2.1 s with 1 thread: OpenMP workers spin-wait when the
cores are oversubscribed. Use 2+ threads only on an idle machine.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instgs.core.artifacts import atomic_write_text, config_to_dict
from instgs.core.checks import InputError
from instgs.run import checkpoint as _ckpt

__all__ = ["TrainConfig", "train", "lr_at", "load_checkpoint", "save_checkpoint",
           "latest_checkpoint", "CHECKPOINT_KIND"]

log = logging.getLogger(__name__)

#: ``instgs_format`` tag of the checkpoints written by ``instgs-pc train``.
CHECKPOINT_KIND = "pointcloud"
_FIX = "pass a ckpt/*.pt written by instgs-pc train"


@dataclass
class TrainConfig:
    """Optimisation settings shared by every point-cloud network."""

    steps: int = 400
    """Optimizer steps (HAIS paper: 120k at batch 4; overfit runs: a few hundred)."""
    lr: float = 1e-3
    """Adam learning rate (HAIS paper and code: 0.001)."""
    min_lr: float = 1e-6
    """Final learning rate of the cosine decay (HAIS code)."""
    cosine_after: float = 0.4
    """Fraction of steps with constant lr before the cosine decay (HAIS code: 200/500)."""
    weight_decay: float = 0.0
    """Adam weight decay (HAIS code: 0)."""
    batch_size: int = 1
    """Scenes per step (HAIS paper: 4)."""
    ckpt_every: int = 50
    """Write ``ckpt/last.pt`` every this many steps (and at the end)."""
    log_every: int = 10
    """Append a line to ``log.jsonl`` every this many steps."""
    seed: int = 0
    """Seed of the scene order, augmentation and initialisation."""
    num_threads: int = 1
    """``torch.set_num_threads`` during training (see module docstring)."""


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate at ``step`` (0-based): constant, then cosine to ``min_lr``."""
    start = int(cfg.cosine_after * cfg.steps)
    if step < start or cfg.steps <= start:
        return cfg.lr
    t = (step - start) / max(1, cfg.steps - start)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """``out_dir/ckpt/last.pt`` if it exists."""
    p = Path(out_dir) / "ckpt" / "last.pt"
    return p if p.is_file() else None


def load_checkpoint(path: str | Path, *, fix: str = _FIX) -> dict[str, Any]:
    """Load a checkpoint written by :func:`train` (CPU tensors), without running code.

    Args:
        path: the ``.pt`` file.
        fix: the sentence telling the user how to get a good file (used in every error).

    Returns:
        The checkpoint dict (``model``, ``optimizer``, ``step``, ``network``, ...).

    Raises:
        InputError: missing file; a pickle that would build other Python objects (refused,
            never executed); a truncated or corrupt file; a checkpoint of another kind (the
            Gaussian pipeline's ``"scaffold"``); a dict without ``model`` / ``network``.
    """
    ck = _ckpt.load_checkpoint(path, kind=CHECKPOINT_KIND, fix=fix,
                               required=("model", "network"))
    return ck.data


def save_checkpoint(data: dict[str, Any], path: str | Path) -> str:
    """Atomically write a point-cloud checkpoint (tagged ``"pointcloud"``); returns its
    SHA-256. ``data`` may hold tensors and plain containers only."""
    return _ckpt.save_checkpoint(data, path, kind=CHECKPOINT_KIND)


def _resume(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> int:
    """Restore model, optimizer and torch RNG from ``path``; return the step."""
    fix = "resume from a last.pt written by instgs-pc train with the same settings, or " \
          "train into a new --out folder"
    ck = load_checkpoint(path, fix=fix)
    missing = [k for k in ("optimizer", "step", "torch_rng") if k not in ck]
    if missing:
        raise InputError(f"cannot resume: the checkpoint lacks {missing}", path, fix)
    try:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["torch_rng"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise InputError(f"the checkpoint does not fit the network being trained ({first})",
                         path, fix) from e
    step = int(ck["step"])
    log.info("resuming from %s at step %d", path, step)
    return step


def train(model: torch.nn.Module, dataset: Sequence, collate: Callable[[list], Any],
          cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False,
          meta: dict[str, Any] | None = None, progress_bar: bool = True) -> Path:
    """Train ``model`` on ``dataset`` and write checkpoints to ``out_dir/ckpt``.

    Args:
        model: module with ``loss(batch, progress) -> (scalar tensor, dict[str, float])``.
        dataset: indexable scenes (e.g. ``ScanNetDataset``; ``set_epoch`` is called if present).
        collate: list of dataset items -> batch for ``model.loss``.
        cfg: :class:`TrainConfig`.
        out_dir: run folder; gets ``ckpt/last.pt``, ``ckpt/step_XXXXXX.pt`` (final),
            ``log.jsonl`` (one JSON object per logged step).
        resume: continue from ``out_dir/ckpt/last.pt`` (model, optimizer, step, RNG).
        meta: extra plain data stored in every checkpoint (network name, configs, class
            statistics) so that ``eval`` / ``predict`` can rebuild the model.
        progress_bar: show a tqdm bar.

    Returns:
        Path of the final checkpoint.

    Raises:
        InputError: empty dataset, non-positive steps, or ``resume`` without a checkpoint.
    """
    from tqdm import tqdm

    if len(dataset) == 0:
        raise InputError("empty training set", None, "pass at least one scene")
    if cfg.steps <= 0 or cfg.batch_size <= 0:
        raise InputError(f"steps ({cfg.steps}) and batch_size ({cfg.batch_size}) must be > 0")
    out_dir = Path(out_dir)
    (out_dir / "ckpt").mkdir(parents=True, exist_ok=True)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = 0
    if resume:
        last = latest_checkpoint(out_dir)
        if last is None:
            raise InputError("nothing to resume", out_dir / "ckpt" / "last.pt",
                             "train without --resume first")
        start = _resume(last, model, opt)
    meta = dict(meta or {})
    meta.setdefault("network", type(model).__name__.lower())
    rng = np.random.default_rng((cfg.seed, start))
    log_path = out_dir / "log.jsonl"
    if not resume and log_path.exists():
        log_path.unlink()

    def save(step: int, final: bool) -> Path:
        ck = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
              "torch_rng": torch.get_rng_state(), "train_config": config_to_dict(cfg), **meta}
        path = out_dir / "ckpt" / "last.pt"
        save_checkpoint(ck, path)
        if final:
            path = out_dir / "ckpt" / f"step_{step:06d}.pt"
            save_checkpoint(ck, path)
        log.debug("checkpoint %s (step %d)", path, step)
        return path

    model.train()
    n = len(dataset)
    t0 = time.perf_counter()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress_bar,
               desc="train", mininterval=5.0)
    path = None
    try:
        for step in bar:
            epoch = step * cfg.batch_size // n
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            ids = rng.integers(0, n, size=cfg.batch_size)
            batch = collate([dataset[int(i)] for i in ids])
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            loss, logs = model.loss(batch, step / cfg.steps)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at step {step}: {logs}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{logs.get('loss', float(loss.detach())):.3f}", refresh=False)
            if (step + 1) % cfg.log_every == 0 or step == start or step + 1 == cfg.steps:
                rec = {"step": step + 1, "lr": lr, "time_s": round(time.perf_counter() - t0, 2),
                       **{k: round(v, 5) for k, v in logs.items()}}
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
            if (step + 1) % cfg.ckpt_every == 0 and step + 1 < cfg.steps:
                save(step + 1, final=False)
        path = save(cfg.steps, final=True)
    finally:
        bar.close()
        torch.set_num_threads(prev_threads)
    atomic_write_text(out_dir / "train_done.json",
                      json.dumps({"steps": cfg.steps, "wall_s": time.perf_counter() - t0}) + "\n")
    return path
