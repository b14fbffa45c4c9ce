"""The one checkpoint reader and writer: tensors and plain containers only, never code.

A checkpoint is ``torch.save`` of a dict whose leaves are tensors, numbers, strings, bools
and ``None`` inside dicts, lists and tuples, tagged with ``instgs_format`` (which pipeline
wrote it). :func:`save_checkpoint` refuses anything else before writing, so every file
instgs writes can be read back by :func:`load_checkpoint`, which uses
``torch.load(..., weights_only=True)``: a file whose unpickling would build any other Python
object (and so could run code) is refused with an :class:`~instgs.core.checks.InputError`
naming it. A truncated or corrupt file gets the same kind of error, never a traceback.

The SHA-256 of the exact bytes loaded is returned with the content: artifacts record it to
say which checkpoint they were made from (:mod:`instgs.run.provenance`).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instgs.core.artifacts import atomic_write_bytes
from instgs.core.checks import InputError

__all__ = ["FORMAT_KEY", "Checkpoint", "save_checkpoint", "load_checkpoint", "file_sha256",
           "check_plain"]

FORMAT_KEY = "instgs_format"
"""Key naming the pipeline that wrote a checkpoint: ``"scaffold"`` (``instgs train``) or
``"pointcloud"`` (``instgs-pc train``)."""

_PLAIN = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        data: the saved dict (CPU tensors and plain containers).
        path: the file.
        sha256: hex SHA-256 of the file's bytes.
    """

    data: dict
    path: Path
    sha256: str

    @property
    def step(self) -> int:
        """The ``step`` entry (0 when absent)."""
        return int(self.data.get("step", 0))


def check_plain(obj: Any, where: str = "checkpoint") -> None:
    """Raise ``TypeError`` unless ``obj`` is tensors / plain values in dicts, lists, tuples.

    Args:
        obj: the object to be saved.
        where: dotted location, for the message.
    """
    import torch

    # exact types: numpy scalars subclass float/int but need numpy's unpickler
    if isinstance(obj, torch.Tensor) or type(obj) in _PLAIN:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is not a str or int")
            check_plain(v, f"{where}.{k}")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where}: {type(obj).__name__} cannot be stored in a checkpoint "
                    "(tensors, numbers, strings, bools, None, dicts, lists, tuples only)")


def save_checkpoint(data: dict, path: str | Path, *, kind: str) -> str:
    """Atomically write ``data`` (tagged with ``kind``) to ``path``; return its SHA-256.

    Args:
        data: the checkpoint content; see :func:`check_plain`.
        path: destination (parents are created).
        kind: ``"scaffold"`` or ``"pointcloud"``, stored under :data:`FORMAT_KEY`.

    Raises:
        TypeError: ``data`` holds an object the safe loader would refuse (a bug, not input).
    """
    import torch

    payload = {FORMAT_KEY: kind, **data}
    check_plain(payload)
    buf = io.BytesIO()
    torch.save(payload, buf)
    raw = buf.getvalue()
    atomic_write_bytes(path, raw)
    return hashlib.sha256(raw).hexdigest()


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def load_checkpoint(path: str | Path, *, kind: str, fix: str,
                    required: tuple[str, ...] = ()) -> Checkpoint:
    """Read a checkpoint safely (``weights_only=True``) and check what wrote it.

    Args:
        path: the file.
        kind: the expected :data:`FORMAT_KEY` (files of an older instgs carry none; then
            ``required`` alone decides).
        fix: the sentence telling the user how to get a good file (used in every error).
        required: keys the content must have.

    Returns:
        :class:`Checkpoint` (tensors on the CPU).

    Raises:
        InputError: missing file; a pickle that would build other Python objects (refused,
            never executed); a truncated or corrupt file; a checkpoint of another kind
            (e.g. a point-cloud network given to a Gaussian stage); missing keys.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint not found", path, fix)
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        data = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        glob = re.search(r"GLOBAL ([\w.]+)", str(e))
        if glob is None and "global" not in str(e).lower():  # not a refusal: bad bytes
            raise InputError(f"cannot read the checkpoint, truncated or corrupt ({len(raw)} "
                             "bytes that are not a torch checkpoint)", path, fix) from e
        what = f" (it asks for {glob.group(1)})" if glob else ""
        raise InputError(
            "refused to load: the file holds Python objects other than tensors and plain "
            f"containers, and unpickling them could run code{what}", path,
            fix + "; only load checkpoints written by instgs, and never from untrusted "
            "sources") from e
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError,
            IndexError, AttributeError) as e:
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot read the checkpoint, truncated or corrupt ({msg}; "
                         f"{len(raw)} bytes)", path, fix) from e
    if not isinstance(data, dict):
        raise InputError(f"not an instgs checkpoint (holds a {type(data).__name__})", path, fix)
    found = data.get(FORMAT_KEY)
    if found is not None and found != kind:
        raise InputError(f"this is a {found!r} checkpoint, not a {kind!r} one", path, fix)
    missing = [k for k in required if k not in data]
    if missing:
        raise InputError(f"not an instgs {kind} checkpoint (missing {missing}; has "
                         f"{sorted(map(str, data))[:12]})", path, fix)
    return Checkpoint(data, path, digest)

