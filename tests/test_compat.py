"""instgs._compat.torchvision_nms: torchvision imports and batched_nms is right on this torch."""

from __future__ import annotations

import torch

from instgs._compat.torchvision_nms import ensure_torchvision, nms_reference


def _random_boxes(n: int, gen: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=gen) * 100
    wh = torch.rand(n, 2, generator=gen) * 40 + 1
    return torch.cat([xy, xy + wh], 1)


def _brute_force_nms(boxes, scores, idxs, thr):
    """Textbook greedy NMS per category, one box at a time."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    keep = []
    for i in order:
        ok = True
        for k in keep:
            if int(idxs[k]) != int(idxs[i]):
                continue
            x1 = max(boxes[i, 0], boxes[k, 0]); y1 = max(boxes[i, 1], boxes[k, 1])
            x2 = min(boxes[i, 2], boxes[k, 2]); y2 = min(boxes[i, 3], boxes[k, 3])
            inter = max(0.0, float(x2 - x1)) * max(0.0, float(y2 - y1))
            a_i = float((boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1]))
            a_k = float((boxes[k, 2] - boxes[k, 0]) * (boxes[k, 3] - boxes[k, 1]))
            if inter / (a_i + a_k - inter) > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def test_ensure_torchvision_imports_segment_anything_and_open_clip():
    tv = ensure_torchvision()
    assert hasattr(tv, "__version__")
    assert ensure_torchvision() is tv          # idempotent
    import open_clip  # noqa: F401
    import segment_anything  # noqa: F401

    assert hasattr(torch.ops.torchvision, "nms")


def test_batched_nms_matches_brute_force():
    ensure_torchvision()
    from torchvision.ops import batched_nms, nms

    gen = torch.Generator().manual_seed(0)
    for n, thr in ((1, 0.5), (60, 0.3), (200, 0.7)):
        boxes = _random_boxes(n, gen)
        scores = torch.rand(n, generator=gen)
        idxs = torch.randint(0, 3, (n,), generator=gen)
        got = batched_nms(boxes, scores, idxs, thr).tolist()
        assert got == _brute_force_nms(boxes, scores, idxs, thr)
        assert nms(boxes, scores, thr).tolist() == _brute_force_nms(
            boxes, scores, torch.zeros(n, dtype=torch.long), thr)


def test_nms_reference_edge_cases():
    assert nms_reference(torch.zeros(0, 4), torch.zeros(0), 0.5).shape == (0,)
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]])
    # identical boxes: IoU 1 > thr, the higher score (first on ties) survives
    assert nms_reference(boxes, torch.tensor([0.5, 0.9, 0.1]), 0.5).tolist() == [1, 2]
    assert nms_reference(boxes, torch.tensor([0.5, 0.5, 0.1]), 0.5).tolist() == [0, 2]
    # threshold 1.0 keeps everything (the test is IoU > thr)
    assert sorted(nms_reference(boxes, torch.ones(3), 1.0).tolist()) == [0, 1, 2]
