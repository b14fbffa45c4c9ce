"""One writer per folder: a lock file with the owner's pid, held with ``flock``.

``RUN/.lock`` holds JSON ``{pid, host, owner, since}``. :class:`FolderLock` takes an
exclusive ``fcntl.flock`` on it, which the kernel drops when the process dies, so a lock
left by a killed process is taken over (and reported in the log) while a live holder makes
a second writer stop at once with an :class:`~instgs.core.checks.InputError` naming the
holder's pid and command. Where ``fcntl`` is missing (Windows) the pid in the file decides:
a lock whose pid is not running on this host is stale.

Locks are reentrant within a process (a stage that calls another stage on the same run does
not deadlock).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

from .checks import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FolderLock", "LOCK_NAME", "read_lock_owner"]

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"

_held: dict[Path, tuple[int, int]] = {}  # resolved lock path -> (fd, depth)
_guard = threading.Lock()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock_owner(folder: str | Path) -> dict | None:
    """The JSON of ``folder/.lock`` (pid, host, owner, since), or None if absent/unreadable."""
    try:
        return json.loads((Path(folder) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return None


class FolderLock:
    """Context manager: hold ``folder/.lock`` exclusively while writing into ``folder``.

    Args:
        folder: the run (or mask) folder; created if missing.
        owner: what holds the lock, e.g. ``"instgs train"`` (shown to a second writer).

    Raises:
        InputError: (on enter) another live process holds the lock; the message names its
            pid, command and start time, and the fix.
    """

    def __init__(self, folder: str | Path, owner: str):
        self.folder = Path(folder)
        self.owner = owner
        self.path = self.folder / LOCK_NAME

    def __enter__(self) -> FolderLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        key = self.path.resolve()
        with _guard:
            if key in _held:
                fd, depth = _held[key]
                _held[key] = (fd, depth + 1)
                return self
            fd = self._acquire()
            _held[key] = (fd, 1)
        return self

    def __exit__(self, *exc) -> None:
        key = self.path.resolve()
        with _guard:
            fd, depth = _held[key]
            if depth > 1:
                _held[key] = (fd, depth - 1)
                return
            del _held[key]
            try:
                os.unlink(self.path)
            except OSError:
                pass
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # ------------------------------------------------------------------ internals
    def _busy(self, info: dict | None) -> InputError:
        who = "another process"
        if info:
            who = (f"{info.get('owner', 'a process')} (pid {info.get('pid')} on "
                   f"{info.get('host')}, since {info.get('since')})")
        return InputError(f"this folder is in use by {who}", self.folder,
                          "wait until it finishes, stop it, or write to another folder")

    def _acquire(self) -> int:
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise self._busy(read_lock_owner(self.folder)) from None
                # the previous holder may have unlinked the file between our open and flock
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
            old = read_lock_owner(self.folder)
            if old and old.get("pid") not in (None, os.getpid()):
                here = old.get("host") == socket.gethostname()
                if fcntl is None and here and _pid_alive(int(old["pid"])):
                    os.close(fd)
                    raise self._busy(old)
                log.warning("%s: took over a stale lock of %s (pid %s, since %s)",
                            self.folder, old.get("owner"), old.get("pid"), old.get("since"))
            info = {"pid": os.getpid(), "host": socket.gethostname(), "owner": self.owner,
                    "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            return fd
        raise self._busy(read_lock_owner(self.folder))  # pragma: no cover - pathological
