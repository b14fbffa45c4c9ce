"""The one place that makes spconv 2.x correct on a CPU-only PyTorch.

Two gaps were measured on this project's machine (spconv 2.3.8 CPU build, cumm 0.7.11,
torch 2.13.0+cpu, 2 cores); :func:`import_spconv` closes both and is idempotent.

1. **Backward needs a CUDA stream.** ``spconv.pytorch.ops`` (and ``cppcore``, ``hash``,
   ``utils``) call ``get_current_stream()``, which is
   ``torch.cuda.current_stream().cuda_stream``. On a CPU-only torch this raises
   ("Torch not compiled with CUDA enabled") in the backward pass of every sparse conv.
   spconv's CPU kernels ignore the stream, so we replace the function with one that
   returns ``0`` — only when ``torch.cuda.is_available()`` is false.

2. **A data race in the CPU scatter kernel.** spconv's CPU path is
   gather -> ``torch.mm`` -> ``SpconvOps.scatter_add_cpu`` per kernel offset. The
   ``SpconvOps.*_cpu`` kernels are OpenMP loops. spconv ships its own ``libgomp``, but
   ``LD_DEBUG=bindings`` shows its ``omp_*``/``GOMP_*`` symbols bind to **torch's**
   ``torch/lib/libgomp.so.1`` (torch loads it ``RTLD_GLOBAL`` via
   ``libtorch_global_deps.so``). So the kernels run with ``torch.get_num_threads()``
   threads and ``OMP_NUM_THREADS=1`` does **not** help once torch has set its own count.
   Measured (``tests/pointcloud/test_spconv_compat.py`` setup, 12^3 grid, 60% occupancy,
   8->16 channels, 20 seeds x {SubMConv3d, SparseConv3d}, compared with dense
   ``conv3d``): with 2 torch threads 37/40 cases had wrong forward or backward rows
   (max abs error ~10); with ``OMP_NUM_THREADS=1`` and 2 torch threads still 35/40;
   with ``torch.set_num_threads(1)`` 0/40. Forcing single threads only around
   ``scatter_add_cpu`` gave 0/40; only around ``gather_cpu`` 27/40; only around the
   indice-pair generators 33/40 — the race is in ``scatter_add_cpu``. We run every
   ``SpconvOps.*_cpu`` kernel with one OpenMP thread (``torch.set_num_threads(1)`` for
   the call, restored afterwards); ``torch.mm`` between them keeps all threads.

The fix is applied on the class ``spconv.core_cc.csrc.sparse.all.SpconvOps`` that every
spconv module references, so it holds for ``SubMConv3d``, ``SparseConv3d``,
``SparseInverseConv3d``, pooling and ``PointToVoxel`` alike, whichever module imported
spconv first. Always obtain spconv through :func:`import_spconv`.
"""

from __future__ import annotations

import functools
import threading
from types import ModuleType

import torch

__all__ = ["import_spconv", "single_thread_cpu_kernels", "spconv_available", "PATCHED_KERNELS"]

_LOCK = threading.Lock()
_PATCHED = False
#: Names of the ``SpconvOps`` CPU kernels that are forced single-threaded.
PATCHED_KERNELS: tuple[str, ...] = (
    "gather_cpu",
    "scatter_add_cpu",
    "generate_conv_inds_cpu",
    "generate_subm_conv_inds_cpu",
    "maxpool_forward_cpu",
    "maxpool_backward_cpu",
    "point2voxel_cpu",
)
_STREAM_MODULES = (
    "spconv.pytorch.cppcore",
    "spconv.pytorch.ops",
    "spconv.pytorch.hash",
    "spconv.pytorch.utils",
)


def _cpu_stream() -> int:
    """Stand-in for ``spconv.pytorch.cppcore.get_current_stream`` without CUDA: stream 0."""
    return 0


def single_thread_cpu_kernels(fn):
    """Wrap an OpenMP kernel so it runs with one thread (restores the count afterwards)."""
    if getattr(fn, "_instgs_single_thread", False):
        return fn

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        n = torch.get_num_threads()
        if n == 1:
            return fn(*args, **kwargs)
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(n)

    wrapper._instgs_single_thread = True  # type: ignore[attr-defined]
    return wrapper


def spconv_available() -> bool:
    """True if ``import spconv.pytorch`` works (without patching anything)."""
    try:
        import spconv.pytorch  # noqa: F401
    except Exception:  # pragma: no cover - depends on the environment
        return False
    return True


def import_spconv() -> ModuleType:
    """Import ``spconv.pytorch`` with the two CPU fixes applied (idempotent, thread-safe).

    Returns:
        The ``spconv.pytorch`` module (``SubMConv3d``, ``SparseConv3d``,
        ``SparseInverseConv3d``, ``SparseConvTensor``, ...).

    Raises:
        ImportError: spconv is not installed; the message says which wheel to install
            (``pip install spconv`` for CPU, ``spconv-cu1xx`` for CUDA).

    References:
        Measurements and rationale in this module's docstring and docs/pointcloud.md.
    """
    global _PATCHED
    try:
        import spconv.pytorch as sp
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "instgs.pointcloud needs spconv 2.x: `pip install spconv` (CPU build) or "
            "`pip install spconv-cu120` (match your CUDA) — " + str(e)
        ) from e
    if _PATCHED:
        return sp
    with _LOCK:
        if _PATCHED:
            return sp
        import importlib

        from spconv.core_cc.csrc.sparse.all import SpconvOps

        for name in PATCHED_KERNELS:
            fn = getattr(SpconvOps, name, None)
            if fn is not None:
                setattr(SpconvOps, name, staticmethod(single_thread_cpu_kernels(fn)))
        if not torch.cuda.is_available():
            for mod_name in _STREAM_MODULES:
                try:
                    mod = importlib.import_module(mod_name)
                except ImportError:  # pragma: no cover - module layout of other versions
                    continue
                if hasattr(mod, "get_current_stream"):
                    mod.get_current_stream = _cpu_stream
        _PATCHED = True
    return sp
