"""Hand-checked cases, run on both the torch reference and the native CPU kernel."""

from __future__ import annotations

import math

import pytest
import torch
from _render_scenes import concat, identity_camera, single_gaussian

from instgs.render import render

BACKENDS = ["torch", "cpu"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "cpu":
        from instgs._native import cpu_ops

        cpu_ops()  # compiles on first use; a failure here is a real error
    return request.param


def _tol(backend):
    return {"atol": 1e-5, "rtol": 1e-5} if backend == "cpu" else {"atol": 1e-10, "rtol": 1e-10}


def test_single_gaussian_footprint_colour_depth(backend):
    """Isotropic Gaussian on the optical axis: Σ2D = ((f s / z)^2 + 0.3) I, centre (W/2, H/2)."""
    W, H, f, z, s, o = 20, 16, 50.0, 2.0, 0.05, 0.8
    color = torch.tensor([0.2, 0.6, 0.9], dtype=torch.float64)
    bg = torch.tensor([[0.1, 0.3, 0.5]], dtype=torch.float64)
    gs = single_gaussian(z, s, o, tuple(color.tolist()), dtype=torch.float64)
    cams = identity_camera(W, H, f, dtype=torch.float64)
    out = render(gs, cams, backgrounds=bg, return_top_ids=True, backend=backend)

    var = (f * s / z) ** 2 + 0.3
    u = torch.arange(W, dtype=torch.float64) + 0.5 - W / 2
    v = torch.arange(H, dtype=torch.float64) + 0.5 - H / 2
    d2 = v[:, None] ** 2 + u[None, :] ** 2
    alpha = torch.clamp(o * torch.exp(-0.5 * d2 / var), max=0.99)
    alpha = torch.where(alpha >= 1 / 255, alpha, torch.zeros_like(alpha))
    expect_rgb = alpha[..., None] * color + (1 - alpha[..., None]) * bg[0]
    tol = _tol(backend)
    assert out.rgb.shape == (1, H, W, 3) and out.alpha.shape == (1, H, W, 1)
    torch.testing.assert_close(out.alpha[0, ..., 0].double(), alpha, **tol)
    torch.testing.assert_close(out.rgb[0].double(), expect_rgb, **tol)
    expect_depth = torch.where(alpha > 0, torch.full_like(alpha, z), torch.zeros_like(alpha))
    torch.testing.assert_close(out.depth[0, ..., 0].double(), expect_depth, atol=1e-4, rtol=1e-5)
    # footprint = pixels with alpha >= 1/255, nothing outside it
    assert torch.equal(out.top_ids[0] == 0, alpha > 0)
    assert torch.equal(out.top_ids[0] == -1, alpha == 0)
    assert out.radii.tolist() == [[math.ceil(3 * math.sqrt(var))]]
    torch.testing.assert_close(out.means2d[0, 0].double(),
                               torch.tensor([W / 2, H / 2], dtype=torch.float64))


def test_alpha_clamp_and_early_termination(backend):
    """Seven huge layers with opacity 0.8: T = 0.2^k; the 6th would give 6.4e-5 <= 1e-4, so
    the pixel stops after 5 layers (exclusive), alpha = 1 - 0.2^5."""
    W, H = 18, 17
    layers = [single_gaussian(2.0 + k, 50.0, 0.8, (k / 7, 1 - k / 7, 0.5)) for k in range(7)]
    gs = concat(*layers)
    out = render(gs, identity_camera(W, H, 20.0), return_top_ids=True, backend=backend)
    T = 0.2 ** 5
    torch.testing.assert_close(out.alpha, torch.full_like(out.alpha, 1 - T), atol=1e-5, rtol=0)
    w = torch.tensor([0.8 * 0.2 ** k for k in range(5)])
    cols = gs.colors[:5]
    torch.testing.assert_close(out.rgb[0, 5, 5], (w[:, None] * cols).sum(0), atol=1e-4, rtol=0)
    depth = (w * torch.arange(2.0, 7.0)).sum() / (1 - T)
    torch.testing.assert_close(out.depth[0, 5, 5, 0], depth, atol=1e-3, rtol=0)
    assert (out.top_ids == 0).all()

    # opacity 1: alpha is clamped to 0.99 at the centre
    out = render(single_gaussian(3.0, 50.0, 1.0), identity_camera(W, H, 20.0), backend=backend)
    torch.testing.assert_close(out.alpha, torch.full_like(out.alpha, 0.99), atol=1e-6, rtol=0)


def test_culled_behind_camera_and_near_plane(backend):
    W, H = 16, 16
    cams = identity_camera(W, H, 30.0)
    bg = torch.tensor([[0.25, 0.5, 0.75]])
    for z in (-2.0, 0.005):  # behind the camera; in front but closer than near_plane=0.01
        gs = single_gaussian(z, 0.01, 0.9)
        out = render(gs, cams, backgrounds=bg, features=torch.ones(1, 2), return_top_ids=True,
                     backend=backend)
        assert out.radii.tolist() == [[0]]
        assert (out.alpha == 0).all() and (out.depth == 0).all()
        assert (out.features == 0).all()
        assert (out.top_ids == -1).all()
        torch.testing.assert_close(out.rgb, bg[:, None, None, :].expand(1, H, W, 3))
    # off-image (far to the side) is culled too
    out = render(single_gaussian(2.0, 0.01, 0.9, xy=(5.0, 0.0)), cams, backend=backend)
    assert out.radii.tolist() == [[0]]


def test_background_only_on_rgb(backend):
    """rgb = sum(w c) + T_final bg; features and depth never see the background."""
    W, H = 16, 12
    gs = single_gaussian(2.0, 0.05, 0.7)
    feats = torch.tensor([[1.0, -2.0, 0.5]])
    cams = identity_camera(W, H, 40.0)
    plain = render(gs, cams, features=feats, backend=backend)
    bg = torch.tensor([[0.3, 0.2, 0.9]])
    with_bg = render(gs, cams, features=feats, backgrounds=bg, backend=backend)
    T = 1 - plain.alpha
    torch.testing.assert_close(with_bg.rgb, plain.rgb + T * bg[:, None, None, :])
    torch.testing.assert_close(with_bg.features, plain.features)
    torch.testing.assert_close(with_bg.depth, plain.depth)
    # features are the plain composited sum: alpha * f for a single Gaussian
    torch.testing.assert_close(plain.features, plain.alpha * feats[0], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("swap", [False, True])
def test_top_ids_two_gaussians(backend, swap):
    """Front: wide, opacity 0.3. Back: small, opacity 0.9 -> at the back one's centre its
    weight 0.9 * 0.7 beats 0.3; elsewhere inside the front one the front one wins."""
    W, H, f = 32, 24, 40.0
    front = single_gaussian(3.0, 0.4, 0.3)
    back = single_gaussian(4.0, 0.05, 0.9, xy=(0.5, 0.0))
    gs = concat(back, front) if swap else concat(front, back)
    i_front, i_back = (1, 0) if swap else (0, 1)
    out = render(gs, identity_camera(W, H, f), return_top_ids=True, backend=backend)
    top = out.top_ids[0]
    assert top.dtype == torch.int64
    bx, by = int(W / 2 + f * 0.5 / 4.0), H // 2  # pixel at the back Gaussian's centre
    assert top[by, bx] == i_back
    assert top[by, 3] == i_front          # left side: only the front Gaussian reaches it
    assert top[by, bx - 7] == i_front
    assert (top >= -1).all() and set(top.unique().tolist()) <= {-1, 0, 1}
    # -1 exactly where nothing contributes
    assert torch.equal(top == -1, out.alpha[0, ..., 0] == 0)


def test_means2d_grad_is_available(backend):
    from _render_scenes import look_cameras, random_gaussians, with_grad

    gs, params = with_grad(random_gaussians(30, seed=3))
    out = render(gs, look_cameras(1, 24, 20), backend=backend)
    out.means2d.retain_grad()
    out.rgb.sum().backward()
    assert out.means2d.grad is not None and out.means2d.grad.shape == (1, 30, 2)
    visible = out.radii[0] > 0
    assert out.means2d.grad[0, visible].abs().sum() > 0
    assert (out.means2d.grad[0, ~visible] == 0).all()
