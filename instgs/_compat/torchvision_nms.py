"""Make ``import torchvision`` work when its compiled ops cannot load.

Some CPU-only torch builds (e.g. torch 2.13.0+cpu with the torchvision 0.28 wheel) cannot
load ``torchvision/_C.so``. torchvision then fails at import time with
``RuntimeError: operator torchvision::nms does not exist``, because
``torchvision/_meta_registrations.py`` registers fake kernels for ``torchvision::nms`` and
``torchvision::qnms`` unconditionally. ``segment_anything`` (``batched_nms``) and
``open_clip`` (transforms) both import torchvision, so neither imports.

:func:`ensure_torchvision` repairs exactly that case and nothing else: it defines the two op
schemas with :mod:`torch.library`, gives ``nms`` a pure-PyTorch CPU kernel
(:func:`nms_reference`, greedy NMS as in torchvision's ``nms_kernel_impl``) and imports
torchvision. When torchvision's own ops load, it is a plain ``import torchvision``.
"""

from __future__ import annotations

import sys
from types import ModuleType

import torch

__all__ = ["ensure_torchvision", "nms_reference", "used_fallback"]

_LIB: torch.library.Library | None = None  # keeps the registrations alive
_USED_FALLBACK = False
_MISSING_OPS_MESSAGE = "torchvision::nms does not exist"


def nms_reference(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression in plain PyTorch (the ``torchvision::nms`` contract).

    Args:
        dets: boxes [N, 4] float, XYXY (x1 < x2, y1 < y2), any units.
        scores: [N] float, higher is better.
        iou_threshold: boxes whose IoU with an already kept, higher-scoring box is
            strictly greater than this are discarded.

    Returns:
        int64 [K] indices of the kept boxes, sorted by decreasing score (stable for ties,
        like torchvision's CPU kernel).

    References:
        torchvision ``csrc/ops/cpu/nms_kernel.cpp`` (same area/IoU formula, ``>`` test).
    """
    if dets.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=dets.device)
    order = torch.argsort(scores, descending=True, stable=True)
    boxes = dets[order].to(torch.float64)
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    # pairwise IoU in blocks keeps memory at O(N * block) for large N
    n = boxes.shape[0]
    suppressed = torch.zeros(n, dtype=torch.bool, device=dets.device)
    keep = []
    block = 1024
    for start in range(0, n, block):
        stop = min(n, start + block)
        xx1 = torch.maximum(x1[start:stop, None], x1[None, :])
        yy1 = torch.maximum(y1[start:stop, None], y1[None, :])
        xx2 = torch.minimum(x2[start:stop, None], x2[None, :])
        yy2 = torch.minimum(y2[start:stop, None], y2[None, :])
        inter = (xx2 - xx1).clamp(min=0) * (yy2 - yy1).clamp(min=0)
        iou = inter / (areas[start:stop, None] + areas[None, :] - inter)
        over = (iou > iou_threshold).cpu()
        for i in range(start, stop):
            if suppressed[i]:
                continue
            keep.append(i)
            row = over[i - start]
            row[: i + 1] = False
            suppressed |= row.to(suppressed.device)
    return order[torch.tensor(keep, dtype=torch.long, device=dets.device)]


def _register_fallback_ops() -> None:
    global _LIB
    if _LIB is not None:
        return
    lib = torch.library.Library("torchvision", "FRAGMENT")  # noqa: TOR901
    if not hasattr(torch.ops.torchvision, "nms"):
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.impl("nms", nms_reference, "CPU")
    if not hasattr(torch.ops.torchvision, "qnms"):
        # defined only so that torchvision's import-time fake registration succeeds
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB = lib


def _torchvision_ops_missing() -> bool:
    try:
        torch.ops.torchvision.nms  # noqa: B018
        return False
    except (AttributeError, RuntimeError):
        return True


def _forget_partial_import() -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]


def _allow_fallback_nms(tv: ModuleType) -> None:
    """torchvision.ops.nms calls ``_assert_has_ops()`` first; let it through for nms only."""
    import torchvision.ops.boxes as boxes

    def _assert_nms_available() -> None:
        if _torchvision_ops_missing():
            raise RuntimeError("torchvision::nms is not available (instgs fallback not registered)")

    boxes._assert_has_ops = _assert_nms_available


def used_fallback() -> bool:
    """True if :func:`ensure_torchvision` had to register the pure-PyTorch ``nms``."""
    return _USED_FALLBACK


def ensure_torchvision() -> ModuleType:
    """Import torchvision, registering a pure-PyTorch CPU ``torchvision::nms`` if needed.

    Call this before importing ``segment_anything`` or ``open_clip``. It is idempotent and
    does nothing special when torchvision's compiled ops load. Only ``nms`` gets a kernel
    (``batched_nms`` uses it); other compiled ops (``roi_align``, ``deform_conv2d``, ...)
    stay unavailable.

    Returns:
        The imported ``torchvision`` module.

    Raises:
        ImportError: torchvision is not installed.
        RuntimeError: torchvision fails to import for a reason other than the missing ops.
    """
    global _USED_FALLBACK
    if not _USED_FALLBACK:
        try:
            import torchvision

            if not _torchvision_ops_missing():
                return torchvision
        except RuntimeError as e:
            if _MISSING_OPS_MESSAGE not in str(e):
                raise
            _forget_partial_import()
        _register_fallback_ops()
        _USED_FALLBACK = True
    import torchvision

    _allow_fallback_nms(torchvision)
    return torchvision
