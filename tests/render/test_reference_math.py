"""The projection against an independent per-Gaussian computation, and gradcheck (float64)
of the torch reference end to end (kornia BaseTester.gradcheck style)."""

from __future__ import annotations

import numpy as np
import torch
from _render_scenes import look_cameras, random_gaussians
from scipy.spatial.transform import Rotation

from instgs.core.gaussians import Gaussians
from instgs.render import project, render


def _naive_projection(gs: Gaussians, cams, eps2d=0.3):
    """One Gaussian at a time with numpy/scipy: Σ2D = J W R S² Rᵀ Wᵀ Jᵀ + eps2d I."""
    out = []
    for c in range(len(cams)):
        Wm = cams.viewmats[c].double().numpy()
        K = cams.Ks[c].double().numpy()
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        rows = []
        for i in range(len(gs)):
            q = gs.quats[i].double().numpy()
            R = Rotation.from_quat([q[1], q[2], q[3], q[0]]).as_matrix()  # scipy is xyzw
            S = np.diag(gs.scales[i].double().numpy())
            Sigma = R @ S @ S @ R.T
            p = Wm[:3, :3] @ gs.means[i].double().numpy() + Wm[:3, 3]
            Sc = Wm[:3, :3] @ Sigma @ Wm[:3, :3].T
            x, y, z = p
            limx = (cams.width - cx) / fx + 0.3 * 0.5 * cams.width / fx
            limxn = cx / fx + 0.3 * 0.5 * cams.width / fx
            limy = (cams.height - cy) / fy + 0.3 * 0.5 * cams.height / fy
            limyn = cy / fy + 0.3 * 0.5 * cams.height / fy
            tx = z * min(limx, max(-limxn, x / z))
            ty = z * min(limy, max(-limyn, y / z))
            J = np.array([[fx / z, 0, -fx * tx / z**2], [0, fy / z, -fy * ty / z**2]])
            cov = J @ Sc @ J.T + eps2d * np.eye(2)
            rows.append([fx * x / z + cx, fy * y / z + cy, z, cov[0, 0], cov[0, 1], cov[1, 1]])
        out.append(rows)
    return torch.tensor(out)


def test_projection_matches_naive_ewa():
    gs = random_gaussians(60, 11, spread=(2.5, 2.0, 1.0), log_scale=(-3, -0.5),
                          dtype=torch.float64)
    cams = look_cameras(2, 40, 30, dtype=torch.float64)
    proj = project(gs.means, gs.quats, gs.scales, gs.opacities, cams.viewmats, cams.Ks,
                   cams.width, cams.height)
    ref = _naive_projection(gs, cams)
    v = proj.valid
    assert v.sum() > 40 and (~v).sum() > 0  # some Gaussians are culled (off-image)
    torch.testing.assert_close(proj.means2d[v], ref[..., :2][v])
    torch.testing.assert_close(proj.depths[v], ref[..., 2][v])
    torch.testing.assert_close(proj.cov2d[v], ref[..., 3:][v])
    a, b, c = ref[..., 3], ref[..., 4], ref[..., 5]
    det = a * c - b * b
    torch.testing.assert_close(proj.conics[v], torch.stack([c / det, -b / det, a / det], -1)[v])
    lam = 0.5 * (a + c) + torch.sqrt(0.25 * (a - c) ** 2 + b * b)
    assert torch.equal(proj.radii[v], torch.ceil(3 * torch.sqrt(lam[v])).int())
    assert (proj.radii[~v] == 0).all() and (proj.means2d[~v] == 0).all()


def test_gradcheck_torch_reference():
    """Finite differences vs autograd through projection + compositing, all inputs."""
    gs = random_gaussians(4, 5, spread=(0.3, 0.25, 0.3), log_scale=(-1.4, -0.9),
                          opacity=(0.3, 0.8), dtype=torch.float64)
    cams = look_cameras(1, 8, 7, f=20.0, dtype=torch.float64)
    feats = torch.randn(4, 2, dtype=torch.float64)
    bg = torch.rand(1, 3, dtype=torch.float64)

    def fn(means, quats, scales, opacities, colors, features, backgrounds):
        out = render(Gaussians(means, quats, scales, opacities, colors), cams,
                     features=features, backgrounds=backgrounds, backend="torch")
        return torch.cat([out.rgb, out.alpha, out.depth, out.features], -1)

    inputs = tuple(t.clone().requires_grad_(True) for t in
                   (gs.means, gs.quats, gs.scales, gs.opacities, gs.colors, feats, bg))
    out = fn(*inputs)
    assert (out[..., 3] > 0.05).float().mean() > 0.5  # the Gaussians cover the image
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)
