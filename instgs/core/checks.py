"""Input validation shared by every public function.

Public boundaries ``raise``; internal invariants ``assert`` (style guide S6).
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["ShapeError", "InputError", "check_shape", "check_finite"]


class ShapeError(ValueError):
    """A tensor's shape disagrees with the documented one."""


class InputError(ValueError):
    """Bad user input (a file, a layout, a value). The message names the file and the fix.

    Args:
        message: what is wrong.
        path: the offending file or folder, if any; it is put first in the message.
        fix: one sentence telling the user what to do.
    """

    def __init__(self, message: str, path: str | Path | None = None, fix: str | None = None):
        self.path = None if path is None else Path(path)
        text = message if path is None else f"{path}: {message}"
        if fix:
            text = f"{text}. Fix: {fix}"
        super().__init__(text)


def check_shape(name: str, t: torch.Tensor, spec: str, **dims: int) -> dict[str, int]:
    """Check ``t.shape`` against a space-separated spec such as ``"N 3"`` or ``"C 4 4"``.

    Symbols are bound on first use (and may be pre-bound via ``dims``); integers must match
    exactly; ``*`` matches any leading dimensions.

    Args:
        name: argument name used in the error message.
        t: tensor to check.
        spec: e.g. ``"N 3"``; ``"*"`` as the first token allows extra leading dims.
        **dims: already known symbol sizes (e.g. ``N=100``).

    Returns:
        The symbol bindings, including those bound here.

    Raises:
        ShapeError: ``"means must have shape (N, 3) with N=10, got (10, 4)"``.
    """
    tokens = spec.split()
    shape = tuple(t.shape)
    bound = dict(dims)
    lead = tokens and tokens[0] == "*"
    if lead:
        tokens = tokens[1:]
    ok = len(shape) >= len(tokens) if lead else len(shape) == len(tokens)
    if ok:
        for tok, size in zip(tokens, shape[len(shape) - len(tokens):]):
            if tok.isdigit():
                ok = ok and int(tok) == size
            elif tok in bound:
                ok = ok and bound[tok] == size
            else:
                bound[tok] = size
    if not ok:
        known = ", ".join(f"{k}={v}" for k, v in bound.items() if k in tokens)
        want = "(" + ", ".join((["..."] if lead else []) + tokens) + ")"
        raise ShapeError(
            f"{name} must have shape {want}{' with ' + known if known else ''}, got {shape}"
        )
    return bound


def check_finite(name: str, t: torch.Tensor, path: str | Path | None = None) -> None:
    """Raise :class:`InputError` if ``t`` holds NaN or Inf (names ``path`` when given)."""
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise InputError(f"{name} has {bad} non-finite values (NaN/Inf)", path,
                         "repair or drop the affected entries")
