"""``torch.distributed`` plumbing of the point-cloud trainer (DDP on CPU with gloo).

* :func:`init_distributed` joins the process group that ``torchrun`` describes in the
  environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``); without it the
  run is a single process and nothing is initialised.
* :class:`LossModule` lets ``DistributedDataParallel`` wrap a network whose training entry
  point is ``loss(batch, progress)`` (DDP hooks the module's ``forward``).
* :class:`DistBatchNorm1d` / :func:`convert_batchnorm`: BatchNorm over the global batch,
  differentiable through ``torch.distributed.nn.functional.all_reduce``. torch's own
  ``SyncBatchNorm`` refuses CPU tensors; this one runs on gloo. Every rank must call the
  same BatchNorm layers in the same order (true for the backbone of every network; HAIS's
  proposal network runs only when a rank has proposals, so keep ``sync_bn`` off there).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from instgs.core.checks import InputError

__all__ = ["DistContext", "init_distributed", "LossModule", "DistBatchNorm1d",
           "convert_batchnorm", "all_reduce_mean"]

log = logging.getLogger(__name__)


@dataclass
class DistContext:
    """This process's place in the run: ``rank`` in 0..world-1, ``world`` processes,
    ``owns_group`` = this module initialised the process group (and tears it down)."""

    rank: int = 0
    world: int = 1
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the one writing checkpoints and logs)."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (no-op for one process)."""
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group if this context created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(backend: str = "auto") -> DistContext:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1.

    Args:
        backend: ``"auto"`` (NCCL when CUDA is available, else gloo), ``"gloo"`` or
            ``"nccl"``.

    Returns:
        :class:`DistContext` (rank 0 of 1 without torchrun).

    Raises:
        InputError: ``nccl`` without CUDA, or an unknown backend.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if backend not in ("auto", "gloo", "nccl"):
        raise InputError(f"unknown backend {backend!r}", None, "use auto, gloo or nccl")
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl" and not torch.cuda.is_available():
        raise InputError("the nccl backend needs CUDA GPUs", None,
                         "use --train.dist-backend gloo on a CPU")
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
        owns = True
    ctx = DistContext(dist.get_rank(), dist.get_world_size(), owns)
    log.info("DDP: rank %d of %d (%s)", ctx.rank, ctx.world, dist.get_backend())
    return ctx


class LossModule(nn.Module):
    """``forward(batch, progress) = net.loss(batch, progress)`` so that
    ``DistributedDataParallel(LossModule(net))`` synchronises the gradients of ``loss``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, batch: Any, progress: float) -> tuple[torch.Tensor, dict[str, float]]:
        return self.net.loss(batch, progress)


def all_reduce_mean(value: float, ctx: DistContext) -> float:
    """Mean of a float over the ranks (the value itself for one process)."""
    if ctx.world <= 1:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world


class DistBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics are those of the global batch.

    Training under a process group of size > 1: per channel, the sum and the count of
    this rank are summed over the ranks (differentiable all-reduce) to give the global
    ``mean``; a second all-reduce sums ``(x - mean)^2`` to give the biased ``var`` that
    BatchNorm normalises with; the running statistics get the unbiased ``var * n / (n - 1)``.
    Otherwise plain BatchNorm1d.
    Input [V, C] float; output [V, C].
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        n = torch.full((1,), float(x.shape[0]), dtype=x.dtype)
        first = all_reduce(torch.cat([x.sum(0), n]))
        total = first[-1]
        mean = first[:-1] / total
        var = all_reduce(((x - mean) ** 2).sum(0)) / total  # two passes: no cancellation
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                unbiased = var * total / (total - 1).clamp_min(1.0)
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * unbiased)
                self.num_batches_tracked += 1
        y = (x - mean) / torch.sqrt(var + self.eps)
        if self.affine:
            y = y * self.weight + self.bias
        return y


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Turn every ``nn.BatchNorm1d`` inside ``module`` into a :class:`DistBatchNorm1d`
    in place (same parameters and buffers; state-dict keys unchanged). Returns ``module``."""
    for m in module.modules():
        if type(m) is nn.BatchNorm1d:
            m.__class__ = DistBatchNorm1d
    return module
