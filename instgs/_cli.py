"""What both console scripts (``instgs``, ``instgs-pc``) share: argument parsing with tyro,
logging set-up, and one way to fail.

Bad input of any kind -- an unknown flag, a bad value, a missing file, a refused checkpoint --
ends the process with exit code 1 and one line on stderr::

    instgs segment: error: runs/x/ckpt/latest.pt: checkpoint not found. Fix: train the run ...

never a traceback. Success is exit code 0. ``-q`` / ``--quiet`` (warnings only) and ``-v`` /
``--verbose`` (debug) may appear anywhere on the command line; library code reports through
:mod:`logging` (this module routes ``instgs.*`` records to stdout) and shows progress with
tqdm on stderr.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
from typing import Any, TypeVar
from collections.abc import Callable, Sequence

__all__ = ["UsageError", "tyro_parse", "setup_logging", "split_verbosity", "run_main"]

T = TypeVar("T")

_BOX = re.compile(r"[\u2500-\u257f]+")


class UsageError(Exception):
    """The command line itself is wrong (unknown flag, bad choice, missing argument)."""


def _one_line(text: str) -> str:
    parts = [(_BOX.sub(" ", line)).strip() for line in text.splitlines()]
    parts = [re.sub(r"\s+", " ", p) for p in parts if p.strip()]
    if len(parts) > 1 and parts[1].lower().startswith(parts[0].lower()):
        parts = parts[1:]  # the box title repeats the message's start
    elif len(parts) > 1 and not parts[0].endswith((".", ":")):
        parts[0] += ":"
    return " ".join(parts)


def tyro_parse(cls: Callable[..., T], args: Sequence[str], prog: str, *,
               description: str | None = None, default: Any = None) -> T:
    """``tyro.cli`` whose parse errors raise :class:`UsageError` with a one-line message.

    ``--help`` still prints tyro's help and exits with code 0.

    Raises:
        UsageError: tyro rejected the arguments (its message, condensed to one line).
    """
    import tyro

    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            kw = {"default": default} if default is not None else {}
            return tyro.cli(cls, args=list(args), prog=prog, description=description, **kw)
    except SystemExit as e:
        if e.code in (0, None):
            sys.stderr.write(buf.getvalue())
            raise
        raise UsageError(_one_line(buf.getvalue()) or f"bad arguments (exit {e.code})") from None


def split_verbosity(argv: Sequence[str]) -> tuple[list[str], int]:
    """Remove ``-q/--quiet`` and ``-v/--verbose`` from ``argv``; return (rest, level)."""
    level = logging.INFO
    rest = []
    for a in argv:
        if a in ("-q", "--quiet"):
            level = logging.WARNING
        elif a in ("-v", "--verbose"):
            level = logging.DEBUG
        else:
            rest.append(a)
    return rest, level


class _StdoutHandler(logging.StreamHandler):
    """Writes to the *current* ``sys.stdout`` (pytest's capsys swaps it per test)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        super().emit(record)


def setup_logging(level: int = logging.INFO) -> None:
    """Route ``instgs.*`` log records to stdout (warnings and errors to stderr), plain
    messages, at ``level``. Idempotent. Records still propagate to the root logger (which
    has no handler in a console run)."""
    logger = logging.getLogger("instgs")
    logger.setLevel(level)
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        h = _StdoutHandler()
        h.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(h)


def run_main(prog: str, argv: Sequence[str], parse: Callable[[list[str]], Any]) -> int:
    """Parse and run one command with the shared error handling.

    Args:
        prog: program name for messages (``instgs segment``).
        argv: the command's arguments (verbosity flags allowed anywhere).
        parse: ``args -> command`` with a ``run()`` method.

    Returns:
        0 on success, 1 on bad input (one line on stderr), 130 on Ctrl-C.
    """
    from instgs.core.checks import InputError

    # OpenMP threads that spin while waiting double the CPU time on a busy laptop; let them
    # sleep instead (must be set before torch/OpenMP start; an explicit setting wins).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args, level = split_verbosity(argv)
    setup_logging(level)
    try:
        cmd = parse(args)
        cmd.run()
    except (InputError, UsageError) as e:
        sys.stdout.flush()
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    sys.stdout.flush()
    return 0
