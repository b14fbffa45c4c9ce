"""Generic trainer for the point-cloud networks: Adam / AdamW, the papers' learning-rate
schedules, atomic checkpoints, ``--resume``, tqdm progress, and multi-process training with
``torch.distributed`` (DDP).

A network plugs in through two callables: ``collate(scenes) -> batch`` and
``model.loss(batch, progress) -> (loss, logs)`` where ``progress = step / steps`` in [0, 1]
drives phase switches (e.g. HAIS's backbone warm-up before proposals).

Schedules (``TrainConfig.schedule``): ``cosine`` (HAIS code ``cosine_lr_after_step``:
constant ``lr`` until ``cosine_after * steps``, then cosine to ``min_lr``), ``poly``
(3D-QueryIS: ``lr (1 - t)^poly_power``), ``step`` (SSEN: x ``step_gamma`` every
``step_every`` steps; MPNet: x 0.5 every 3e5), ``constant``.

Sampling. Scenes are drawn with ``torch.utils.data.DistributedSampler`` (shuffled per
epoch with ``seed + epoch``; one replica without DDP). Sample ``k`` of a rank in epoch ``e``
is global position ``k * world + rank`` of that epoch's permutation, and a dataset with a
``sample(i, key)`` method (``ScanNetDataset``) augments it with ``key = (e, position)``. So,
when the number of scenes is a multiple of the global batch, one process with batch
``B * W`` and ``W`` processes with batch ``B`` see the same scenes with the same
augmentation at every step; and a resumed run continues the stream where it stopped.

DDP (``torchrun --nproc_per_node N -m instgs.pointcloud.cli train ...``): every process
builds the model with the same seed, wraps it in ``DistributedDataParallel`` (gloo on CPU;
``find_unused_parameters`` because phases leave heads idle), gradients are averaged, rank 0
writes checkpoints and ``log.jsonl`` (the logged ``loss`` is the mean over ranks).
``sync_bn`` makes BatchNorm use the statistics of the global batch
(:class:`DistBatchNorm1d`; torch's ``SyncBatchNorm`` is GPU-only). ``--resume`` makes every
rank load ``last.pt``.

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
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from instgs.core.artifacts import atomic_write_text, config_to_dict
from instgs.core.checks import InputError
from instgs.pointcloud.distributed import (
    DistContext,
    LossModule,
    all_reduce_mean,
    convert_batchnorm,
    init_distributed,
)
from instgs.run import checkpoint as _ckpt

__all__ = ["TrainConfig", "train", "lr_at", "load_checkpoint", "save_checkpoint",
           "latest_checkpoint", "CHECKPOINT_KIND", "SampleStream"]

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
    """Peak learning rate (HAIS paper and code: 0.001)."""
    min_lr: float = 1e-6
    """Final learning rate of the cosine decay (HAIS code)."""
    cosine_after: float = 0.4
    """Fraction of steps with constant lr before the cosine decay (HAIS code: 200/500)."""
    schedule: Literal["cosine", "poly", "step", "constant"] = "cosine"
    """Learning-rate schedule: cosine (HAIS), poly (3D-QueryIS), step (SSEN, MPNet)."""
    poly_power: float = 0.9
    """Exponent of the poly schedule (3D-QueryIS gives none; 0.9 is the common value)."""
    step_every: int = 10000
    """Steps between decays of the step schedule (SSEN: 10k; MPNet: 3e5)."""
    step_gamma: float = 0.8
    """Factor of each decay of the step schedule (SSEN: 0.8; MPNet: 0.5)."""
    optimizer: Literal["adam", "adamw"] = "adam"
    """Adam (HAIS, SSEN, MPNet) or AdamW (3D-QueryIS)."""
    weight_decay: float = 0.0
    """Weight decay (HAIS code: 0; SSEN code: 0)."""
    grad_clip: float = 0.0
    """Clip the gradient norm to this (0 = off; SSEN code: 0.5)."""
    batch_size: int = 1
    """Scenes (MPNet: blocks) per step and process; the global batch is x world size."""
    ckpt_every: int = 50
    """Write ``ckpt/last.pt`` every this many steps (and at the end)."""
    log_every: int = 10
    """Append a line to ``log.jsonl`` every this many steps."""
    seed: int = 0
    """Seed of the scene order, augmentation and initialisation."""
    num_threads: int = 1
    """``torch.set_num_threads`` during training (see module docstring)."""
    sync_bn: bool = False
    """Under DDP, BatchNorm over the global batch (needs the same BatchNorm calls on every
    rank; off = each process normalises its own batch)."""
    dist_backend: Literal["auto", "gloo", "nccl"] = "auto"
    """torch.distributed backend under torchrun (auto: nccl with CUDA, else gloo)."""


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate at ``step`` (0-based) under ``cfg.schedule``.

    Args:
        step: optimizer step, 0-based.
        cfg: the :class:`TrainConfig`.

    Returns:
        The learning rate (float). ``cosine``: ``lr`` until ``cosine_after * steps``, then
        ``min_lr + (lr - min_lr) (1 + cos(pi t)) / 2``; ``poly``: ``max(min_lr, lr (1 -
        step/steps)^poly_power)``; ``step``: ``lr * step_gamma^(step // step_every)``.
    """
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "poly":
        t = min(step / max(1, cfg.steps), 1.0)
        return max(cfg.min_lr, cfg.lr * (1 - t) ** cfg.poly_power)
    if cfg.schedule == "step":
        return cfg.lr * cfg.step_gamma ** (step // max(1, cfg.step_every))
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


class SampleStream:
    """Which scenes (and augmentation keys) a rank trains on at each step.

    Args:
        n: number of scenes. batch_size: samples per step on this rank.
        rank, world: this process and the number of processes. seed: sampler seed.

    ``batch(step)`` -> list of ``(scene index, (epoch, global position))``; deterministic
    in ``step``, so resuming at a step continues the same stream.
    """

    def __init__(self, n: int, batch_size: int, rank: int = 0, world: int = 1, seed: int = 0):
        from torch.utils.data import DistributedSampler

        self.sampler = DistributedSampler(range(n), num_replicas=world, rank=rank,
                                          shuffle=True, seed=seed, drop_last=False)
        self.batch_size, self.rank, self.world = batch_size, rank, world
        self._epoch: int | None = None
        self._order: list[int] = []

    def _indices(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._epoch, self._order = epoch, list(self.sampler)
        return self._order

    def batch(self, step: int) -> list[tuple[int, tuple[int, int]]]:
        per_epoch = self.sampler.num_samples
        out = []
        for j in range(self.batch_size):
            c = step * self.batch_size + j
            epoch, k = divmod(c, per_epoch)
            out.append((int(self._indices(epoch)[k]), (epoch, k * self.world + self.rank)))
        return out


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


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _get(dataset: Sequence, i: int, key: tuple[int, int]) -> Any:
    return dataset.sample(i, key) if hasattr(dataset, "sample") else dataset[i]


@dataclass
class _Run:
    """What one training loop needs besides the config."""

    model: torch.nn.Module
    step_fn: Callable[[Any, float], tuple[torch.Tensor, dict[str, float]]]
    opt: torch.optim.Optimizer
    ctx: DistContext
    out_dir: Path
    meta: dict[str, Any]

    def save(self, step: int, cfg: TrainConfig, final: bool) -> Path:
        path = self.out_dir / "ckpt" / "last.pt"
        if not self.ctx.is_main:
            return path
        ck = {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
              "step": step, "torch_rng": torch.get_rng_state(),
              "train_config": config_to_dict(cfg), "world_size": self.ctx.world, **self.meta}
        save_checkpoint(ck, path)
        if final:
            path = self.out_dir / "ckpt" / f"step_{step:06d}.pt"
            save_checkpoint(ck, path)
        log.debug("checkpoint %s (step %d)", path, step)
        return path


def _setup(model: torch.nn.Module, cfg: TrainConfig, out_dir: Path, resume: bool,
           meta: dict[str, Any] | None) -> tuple[_Run, int]:
    ctx = init_distributed(cfg.dist_backend)
    if ctx.world > 1 and cfg.sync_bn:
        convert_batchnorm(model)
    opt = _optimizer(model, cfg)
    start = 0
    if resume:
        last = latest_checkpoint(out_dir)
        if last is None:
            raise InputError("nothing to resume", out_dir / "ckpt" / "last.pt",
                             "train without --resume first")
        start = _resume(last, model, opt)
    step_fn: Callable = model.loss
    if ctx.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        step_fn = DistributedDataParallel(LossModule(model), find_unused_parameters=True)
    meta = dict(meta or {})
    meta.setdefault("network", type(model).__name__.lower())
    return _Run(model, step_fn, opt, ctx, out_dir, meta), start


def _log_step(run: _Run, path: Path, step: int, lr: float, t0: float, loss: torch.Tensor,
              logs: dict[str, float]) -> None:
    mean_loss = all_reduce_mean(float(loss.detach()), run.ctx)
    if run.ctx.is_main:
        rec = {"step": step + 1, "lr": lr, "time_s": round(time.perf_counter() - t0, 2),
               **{k: round(v, 5) for k, v in logs.items()}, "loss": round(mean_loss, 6)}
        with open(path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")


def train(model: torch.nn.Module, dataset: Sequence, collate: Callable[[list], Any],
          cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False,
          meta: dict[str, Any] | None = None, progress_bar: bool = True) -> Path:
    """Train ``model`` on ``dataset`` and write checkpoints to ``out_dir/ckpt``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process runs this function: see the
    module docstring (DDP, sampling, rank-0 checkpoints and logs).

    Args:
        model: module with ``loss(batch, progress) -> (scalar tensor, dict[str, float])``.
        dataset: indexable scenes (``ScanNetDataset``: ``sample(i, key)`` is used).
        collate: list of dataset items -> batch for ``model.loss``.
        cfg: :class:`TrainConfig`.
        out_dir: run folder; gets ``ckpt/last.pt``, ``ckpt/step_XXXXXX.pt`` (final),
            ``log.jsonl`` (one JSON object per logged step), ``train_done.json``.
        resume: continue from ``out_dir/ckpt/last.pt`` (model, optimizer, step, RNG).
        meta: extra plain data stored in every checkpoint (network name, configs, class
            statistics) so that ``eval`` / ``predict`` can rebuild the model.
        progress_bar: show a tqdm bar (rank 0 only).

    Returns:
        Path of the final checkpoint.

    Raises:
        InputError: empty dataset, non-positive steps, or ``resume`` without a checkpoint.
        FloatingPointError: a non-finite loss.
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
    run, start = _setup(model, cfg, out_dir, resume, meta)
    stream = SampleStream(len(dataset), cfg.batch_size, run.ctx.rank, run.ctx.world, cfg.seed)
    log_path = out_dir / "log.jsonl"
    if run.ctx.is_main and not resume and log_path.exists():
        log_path.unlink()
    model.train()
    t0 = time.perf_counter()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train",
               disable=not (progress_bar and run.ctx.is_main), mininterval=5.0)
    try:
        for step in bar:
            batch = collate([_get(dataset, i, key) for i, key in stream.batch(step)])
            lr = lr_at(step, cfg)
            for g in run.opt.param_groups:
                g["lr"] = lr
            loss, logs = run.step_fn(batch, step / cfg.steps)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at step {step}: {logs}")
            run.opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            run.opt.step()
            bar.set_postfix(loss=f"{logs.get('loss', float(loss.detach())):.3f}", refresh=False)
            if (step + 1) % cfg.log_every == 0 or step == start or step + 1 == cfg.steps:
                _log_step(run, log_path, step, lr, t0, loss, logs)
            if (step + 1) % cfg.ckpt_every == 0 and step + 1 < cfg.steps:
                run.save(step + 1, cfg, final=False)
        path = run.save(cfg.steps, cfg, final=True)
    finally:
        bar.close()
        torch.set_num_threads(prev_threads)
    if run.ctx.is_main:
        atomic_write_text(out_dir / "train_done.json", json.dumps(
            {"steps": cfg.steps, "wall_s": time.perf_counter() - t0,
             "world_size": run.ctx.world}) + "\n")
    run.ctx.barrier()
    run.ctx.close()
    return path


def environment_world_size() -> int:
    """``WORLD_SIZE`` set by torchrun (1 when absent)."""
    return int(os.environ.get("WORLD_SIZE", "1"))
