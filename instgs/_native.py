"""Lazy loader for instgs' native C++ CPU kernels (sources under ``<repo>/cuda``).

The extension is compiled on first use with :func:`torch.utils.cpp_extension.load` (ninja)
and cached in ``~/.cache/instgs/`` (``$INSTGS_CACHE_DIR`` or ``$XDG_CACHE_HOME/instgs`` if
set) under a name keyed by a hash of the sources, the compiler flags and the torch/Python
versions, so edits trigger a rebuild and unchanged sources load in well under a second.
In the spirit of gsplat's ``_make_lazy_cuda_func``, importing this module never compiles and
never raises; :func:`has_cpu_ops` reports availability and :func:`cpu_ops` raises
:class:`NativeOpsUnavailableError` with the compiler's message when the build fails.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import sys
import threading
from pathlib import Path
from types import ModuleType

__all__ = ["has_cpu_ops", "cpu_ops", "NativeOpsUnavailableError", "native_source_dir",
           "cache_dir"]

_SOURCES = ("bindings.cpp", "rasterize/rasterize_cpu.cpp", "projection/projection_cpu.cpp")
_HEADERS = ("rasterize/rasterize.h", "projection/projection.h")

log = logging.getLogger(__name__)

_lock = threading.Lock()
_module: ModuleType | None = None
_error: str | None = None


class NativeOpsUnavailableError(RuntimeError):
    """The native CPU kernels could not be built or loaded (the message says why)."""


def native_source_dir() -> Path:
    """Folder holding the C++ sources (``<repo>/cuda``; ``$INSTGS_NATIVE_SRC`` overrides)."""
    env = os.environ.get("INSTGS_NATIVE_SRC")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[1] / "cuda"  # source checkout / editable install
    if repo.is_dir():
        return repo
    return Path(__file__).resolve().parent / "_cuda"  # wheel: cuda/ is shipped as instgs/_cuda


def cache_dir() -> Path:
    """Build cache folder for compiled extensions."""
    if os.environ.get("INSTGS_CACHE_DIR"):
        return Path(os.environ["INSTGS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "instgs"


def _cflags() -> list[str]:
    import torch

    flags = ["-O3", "-fopenmp", "-fno-math-errno"]
    # Vector width: AVX2+FMA only where the running CPU has it (torch reports what it
    # dispatches to), so the cached build also runs on the machine that built it.
    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except Exception:  # pragma: no cover - very old torch
        cap = "DEFAULT"
    if platform.machine().lower() in ("x86_64", "amd64") and cap in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    return flags


def _build_key(src: Path, flags: list[str]) -> str:
    import torch

    h = hashlib.sha256()
    for rel in _SOURCES + _HEADERS:
        h.update(rel.encode())
        h.update((src / rel).read_bytes())
    h.update(" ".join(flags).encode())
    h.update(torch.__version__.encode())
    h.update(sys.version.encode())
    return h.hexdigest()[:16]


def _load() -> ModuleType:
    global _module, _error
    with _lock:
        if _module is not None:
            return _module
        if _error is not None:
            raise NativeOpsUnavailableError(_error)
        src = native_source_dir()
        try:
            missing = [r for r in _SOURCES + _HEADERS if not (src / r).is_file()]
            if missing:
                raise FileNotFoundError(f"native sources missing under {src}: {missing}")
            from torch.utils.cpp_extension import load

            flags = _cflags()
            name = f"instgs_cpu_{_build_key(src, flags)}"
            build_dir = cache_dir() / name
            build_dir.mkdir(parents=True, exist_ok=True)
            if not any(build_dir.glob(f"{name}*.so")):
                log.warning("compiling instgs CPU kernels (first use, ~1 min)...")
            fresh = not any(build_dir.glob(f"{name}*.so"))
            _module = load(
                name=name,
                sources=[str(src / r) for r in _SOURCES],
                extra_include_paths=[str(src)],
                extra_cflags=flags,
                extra_ldflags=["-fopenmp"],
                build_directory=str(build_dir),
                verbose=bool(os.environ.get("INSTGS_NATIVE_VERBOSE")),
            )
            if fresh:
                _prune_stale_builds(name)
            return _module
        except Exception as e:  # compiler missing, bad flags, read-only cache ...
            _error = (f"instgs native CPU kernels are unavailable: {type(e).__name__}: {e}. "
                      "Fix: install a C++17 compiler and ninja (pip install ninja), or set "
                      "INSTGS_CACHE_DIR to a writable folder; backend='torch' works without.")
            raise NativeOpsUnavailableError(_error) from e


def _prune_stale_builds(keep: str) -> None:
    """Remove builds of older source versions (best effort; a loaded .so may be unlinked)."""
    import shutil

    for d in cache_dir().glob("instgs_cpu_*"):
        if d.is_dir() and d.name != keep:
            shutil.rmtree(d, ignore_errors=True)


def cpu_ops() -> ModuleType:
    """The compiled module (builds it on first call).

    Raises:
        NativeOpsUnavailableError: if the sources are missing or compilation fails.
    """
    return _module if _module is not None else _load()


def has_cpu_ops() -> bool:
    """True if the native CPU kernels are (or can be) built and loaded. May compile once."""
    try:
        cpu_ops()
        return True
    except NativeOpsUnavailableError:
        return False
