"""Sparse UNet backbone: spconv ops vs the pure-PyTorch reference twins, shapes, gradients."""

from __future__ import annotations

import pytest
import torch

from instgs.core.checks import InputError, ShapeError
from instgs.pointcloud.backbone import (
    SparseBackbone,
    SparseUNet,
    inverse_conv3d_reference,
    make_sparse_tensor,
    spconv,
    strided_conv3d_reference,
    subm_conv3d_reference,
    unet_widths,
)
from instgs.pointcloud.heads import MLPHead


def _random_grid(n: int = 6, occupancy: float = 0.4, batch: int = 2, cin: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for b in range(batch):
        occ = torch.rand(n, n, n, generator=g) < occupancy
        xyz = occ.nonzero().int()
        rows.append(torch.cat([torch.full((len(xyz), 1), b, dtype=torch.int32), xyz], 1))
    idx = torch.cat(rows)
    feats = torch.randn(len(idx), cin, generator=g)
    return idx, feats


def _sort_rows(idx: torch.Tensor, feats: torch.Tensor):
    key = ((idx[:, 0].long() * 1000 + idx[:, 1]) * 1000 + idx[:, 2]) * 1000 + idx[:, 3]
    order = torch.argsort(key)
    return idx[order], feats[order]


def test_subm_conv_matches_reference():
    sp = spconv()
    idx, feats = _random_grid()
    conv = sp.SubMConv3d(3, 5, 3, padding=1, bias=False, indice_key="t")
    y = conv(make_sparse_tensor(feats, idx, [6, 6, 6], 2))
    assert torch.equal(y.indices, idx)  # submanifold: same sites, same order
    ref = subm_conv3d_reference(idx, feats, conv.weight.detach())
    torch.testing.assert_close(y.features, ref, atol=1e-5, rtol=1e-4)


def test_strided_and_inverse_conv_match_reference():
    sp = spconv()
    idx, feats = _random_grid(seed=1)
    down = sp.SparseConv3d(3, 4, 2, stride=2, bias=False, indice_key="d")
    up = sp.SparseInverseConv3d(4, 3, 2, bias=False, indice_key="d")
    x = make_sparse_tensor(feats, idx, [6, 6, 6], 2)
    y = down(x)
    ref_idx, ref = strided_conv3d_reference(idx, feats, down.weight.detach())
    got_idx, got = _sort_rows(y.indices, y.features)
    assert torch.equal(got_idx, ref_idx)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    z = up(y)
    assert torch.equal(z.indices, idx)
    ref_up = inverse_conv3d_reference(idx, y.indices, y.features.detach(), up.weight.detach())
    torch.testing.assert_close(z.features, ref_up, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("levels,block_reps", [(1, 1), (3, 1), (4, 2)])
def test_unet_shapes_and_decoder_levels(levels, block_reps):
    idx, feats = _random_grid(n=10, cin=8)
    widths = unet_widths(8, levels)
    net = SparseUNet(widths, block_reps)
    y, dec = net(make_sparse_tensor(feats, idx))
    assert y.features.shape == (len(idx), 8)
    assert len(dec) == levels
    assert [d.features.shape[1] for d in dec] == widths[::-1]
    assert dec[-1] is y
    # coarser levels have fewer (or equal) sites
    sizes = [d.features.shape[0] for d in dec]
    assert sizes == sorted(sizes)


def test_backbone_backward_on_cpu_gives_gradients():
    idx, feats = _random_grid(n=8, cin=6)
    net = SparseBackbone(6, m=8, levels=3, block_reps=1)
    out = net(make_sparse_tensor(feats.requires_grad_(), idx))
    assert out.features.shape == (len(idx), 8)
    assert (out.features >= 0).all()  # output BN + ReLU
    out.features.square().mean().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    assert net.input_conv.weight.grad.abs().sum() > 0


def test_subm_conv_backward_matches_reference_autograd():
    """spconv's CPU backward (patched by spconv_compat) equals autograd through the twin."""
    sp = spconv()
    idx, feats = _random_grid(n=5, seed=3)
    conv = sp.SubMConv3d(3, 4, 3, padding=1, bias=False, indice_key="g")
    w_ref = conv.weight.detach().clone().requires_grad_()
    f1 = feats.clone().requires_grad_()
    f2 = feats.clone().requires_grad_()
    g_out = torch.randn(len(idx), 4, generator=torch.Generator().manual_seed(1))
    (conv(make_sparse_tensor(f1, idx)).features * g_out).sum().backward()
    (subm_conv3d_reference(idx, f2, w_ref) * g_out).sum().backward()
    torch.testing.assert_close(f1.grad, f2.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(conv.weight.grad, w_ref.grad, atol=1e-4, rtol=1e-4)


def test_bad_inputs_raise():
    with pytest.raises(InputError):
        unet_widths(0, 3)
    with pytest.raises(InputError):
        SparseUNet([], 1)
    idx, feats = _random_grid()
    with pytest.raises(ShapeError):
        make_sparse_tensor(feats[:-1], idx)
    bad = idx.clone()
    bad[0, 1] = -1
    with pytest.raises(InputError):
        make_sparse_tensor(feats, bad)


def test_mlp_head_shapes_and_errors():
    head = MLPHead(8, 8, 3)
    assert head(torch.randn(5, 8)).shape == (5, 3)
    with pytest.raises(ShapeError):
        head(torch.randn(5, 7))
    with pytest.raises(InputError):
        MLPHead(8, 0, 3)
