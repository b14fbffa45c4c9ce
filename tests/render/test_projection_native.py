"""The fused C++ projection (cpu backend) against the PyTorch projection (its readable twin)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _render_scenes import look_cameras, random_gaussians

from instgs.render import project


@pytest.fixture(scope="module", autouse=True)
def _native():
    from instgs._native import cpu_ops

    cpu_ops()


@pytest.mark.parametrize("seed", [0, 1])
def test_native_projection_matches_torch(seed):
    from instgs.render._cpu import project_cpu

    # wide spread: Gaussians behind the cameras, off-image (clamped Jacobian) and culled
    gs = random_gaussians(400, seed, spread=(3.0, 2.5, 3.0), log_scale=(-3.0, -0.5))
    cams = look_cameras(2, 48, 36)
    ins = [t.clone().requires_grad_(True) for t in (gs.means, gs.quats, gs.scales)]
    ins_ref = [t.clone().requires_grad_(True) for t in (gs.means, gs.quats, gs.scales)]
    nat = project_cpu(*ins, gs.opacities, cams.viewmats, cams.Ks, 48, 36)
    ref = project(*ins_ref, gs.opacities, cams.viewmats, cams.Ks, 48, 36)
    assert torch.equal(nat.valid, ref.valid)
    v = ref.valid
    assert v.sum() > 100 and (~v).sum() > 100
    assert (nat.radii - ref.radii).abs().max() <= 1
    torch.testing.assert_close(nat.means2d, ref.means2d, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(nat.conics, ref.conics, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(nat.depths, ref.depths)
    torch.testing.assert_close(nat.extents, ref.extents, atol=1e-4, rtol=1e-4)

    gen = torch.Generator().manual_seed(seed)
    w = [torch.randn(2, 400, k, generator=gen) for k in (2, 3, 1)]

    def loss(p):
        return ((p.means2d * w[0]).sum() + (p.conics * w[1] * 100).sum()
                + (p.depths * w[2][..., 0]).sum())

    loss(nat).backward()
    loss(ref).backward()
    for name, a, b in zip(("means", "quats", "scales"), ins, ins_ref):
        rel = (a.grad - b.grad).norm() / b.grad.norm()
        cos = F.cosine_similarity(a.grad.flatten(), b.grad.flatten(), dim=0)
        assert rel < 1e-4 and cos > 0.99999, (name, float(rel), float(cos))
