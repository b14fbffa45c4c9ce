"""spconv CPU fixes: backward without CUDA, and the multi-threaded scatter race.

The race test compares spconv against dense ``torch.nn.functional.conv3d`` on dense-ish
random inputs with 2 torch threads. Without :func:`import_spconv`'s fix, 37 of 40 such
cases were wrong on the project machine (see instgs/pointcloud/spconv_compat.py).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("spconv.pytorch")

from instgs.pointcloud.spconv_compat import PATCHED_KERNELS, import_spconv  # noqa: E402


@pytest.fixture
def two_threads():
    n = torch.get_num_threads()
    torch.set_num_threads(2)  # the race needs > 1 thread; 2 are enough to expose it
    yield
    torch.set_num_threads(n)


def _case(sp, seed: int, kind: str, D: int = 12, C: int = 8, O: int = 16):  # noqa: E741
    g = torch.Generator().manual_seed(seed)
    occ = torch.rand(D, D, D, generator=g) < 0.6
    idx = occ.nonzero().int()
    feats = torch.randn(len(idx), C, generator=g)
    ind = torch.cat([torch.zeros(len(idx), 1, dtype=torch.int32), idx], 1)
    if kind == "subm":
        conv = sp.SubMConv3d(C, O, 3, bias=False, indice_key=f"k{seed}")
    else:
        conv = sp.SparseConv3d(C, O, 3, stride=1, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
    f = feats.clone().requires_grad_(True)
    y = conv(sp.SparseConvTensor(f, ind, [D, D, D], 1)).dense()  # [1, O, D, D, D]

    dense = torch.zeros(1, C, D, D, D)
    dense[0, :, idx[:, 0], idx[:, 1], idx[:, 2]] = feats.t()
    dense.requires_grad_(True)
    w = conv.weight.detach().permute(0, 4, 1, 2, 3)  # spconv KRSC [O,k,k,k,C] -> [O,C,k,k,k]
    ref = F.conv3d(dense, w, padding=1)
    if kind == "subm":  # submanifold: outputs only at active input sites
        mask = torch.zeros(1, 1, D, D, D)
        mask[0, 0, idx[:, 0], idx[:, 1], idx[:, 2]] = 1
        ref = ref * mask
    gy = torch.randn(y.shape, generator=g)
    (y * gy).sum().backward()
    (ref * gy).sum().backward()
    gref = dense.grad[0, :, idx[:, 0], idx[:, 1], idx[:, 2]].t()
    return y.detach(), ref.detach(), f.grad, gref


@pytest.mark.parametrize("kind", ["subm", "sparse"])
def test_spconv_matches_dense_conv3d_forward_and_backward_multithreaded(two_threads, kind):
    sp = import_spconv()
    for seed in range(6):
        y, ref, g, gref = _case(sp, seed, kind)
        torch.testing.assert_close(y, ref, atol=1e-3, rtol=1e-4, msg=f"forward seed {seed}")
        torch.testing.assert_close(g, gref, atol=1e-3, rtol=1e-4, msg=f"backward seed {seed}")


def test_inverse_conv_roundtrip_shapes_and_backward(two_threads):
    sp = import_spconv()
    g = torch.Generator().manual_seed(0)
    D = 8
    idx = (torch.rand(D, D, D, generator=g) < 0.5).nonzero().int()
    ind = torch.cat([torch.zeros(len(idx), 1, dtype=torch.int32), idx], 1)
    f = torch.randn(len(idx), 4, generator=g, requires_grad=True)
    x = sp.SparseConvTensor(f, ind, [D, D, D], 1)
    down = sp.SparseConv3d(4, 8, 2, stride=2, bias=False, indice_key="d1")
    up = sp.SparseInverseConv3d(8, 4, 2, bias=False, indice_key="d1")
    y = up(down(x))
    assert y.features.shape == (len(idx), 4)
    assert torch.equal(y.indices, ind)
    y.features.sum().backward()
    assert f.grad is not None and torch.isfinite(f.grad).all()


def test_import_spconv_is_idempotent():
    sp1 = import_spconv()
    from spconv.core_cc.csrc.sparse.all import SpconvOps

    before = {n: getattr(SpconvOps, n) for n in PATCHED_KERNELS if hasattr(SpconvOps, n)}
    sp2 = import_spconv()
    assert sp1 is sp2
    for n, fn in before.items():
        assert getattr(SpconvOps, n) is fn
        assert getattr(fn, "_instgs_single_thread", False)


def test_thread_count_is_restored_after_a_conv(two_threads):
    sp = import_spconv()
    ind = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0]], dtype=torch.int32)
    x = sp.SparseConvTensor(torch.ones(2, 1), ind, [2, 2, 2], 1)
    sp.SubMConv3d(1, 1, 3)(x)
    assert torch.get_num_threads() == 2
