"""Convention tests (kornia style): one test per rule in docs/conventions.md."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instgs.core.cameras import Cameras, opengl_to_opencv
from instgs.data import read_scene
from instgs.data.llff import llff_to_opencv_c2w
from instgs.data.scannet import frustum_fraction


def _project(cams: Cameras, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World points [P, 3] -> (uv [C, P, 2] continuous pixels, z [C, P])."""
    Xc = torch.einsum("cij,pj->cpi", cams.viewmats[:, :3, :3].double(), X.double())
    Xc = Xc + cams.viewmats[:, None, :3, 3].double()
    uvw = torch.einsum("cij,cpj->cpi", cams.Ks.double(), Xc)
    return uvw[..., :2] / uvw[..., 2:], Xc[..., 2]


def test_convention_viewmat_is_world_to_camera(tmp_path, build, truth):
    build.colmap(tmp_path, truth)
    s = read_scene(tmp_path)
    centers = torch.from_numpy(truth.c2w[:, :3, 3])
    forward = torch.from_numpy(truth.c2w[:, :3, 2])
    for V, c, f in zip(s.cameras.viewmats.double(), centers, forward):
        # the camera centre goes to the camera origin; 2 m ahead goes to (0, 0, 2)
        assert torch.allclose(V[:3, :3] @ c + V[:3, 3], torch.zeros(3, dtype=torch.float64),
                              atol=1e-5)
        ahead = V[:3, :3] @ (c + 2 * f) + V[:3, 3]
        assert torch.allclose(ahead, torch.tensor([0, 0, 2.0], dtype=torch.float64), atol=1e-5)
    assert torch.allclose(s.cameras.centers.double(), centers, atol=1e-5)


def test_convention_opengl_to_opencv_flip_is_an_involution():
    g = torch.Generator().manual_seed(0)
    T = torch.randn(16, 4, 4, generator=g, dtype=torch.float64)
    assert torch.equal(opengl_to_opencv(opengl_to_opencv(T)), T)
    flipped = opengl_to_opencv(T)
    assert torch.equal(flipped[:, :, 0], T[:, :, 0]) and torch.equal(flipped[:, :, 3], T[:, :, 3])
    assert torch.equal(flipped[:, :3, 1:3], -T[:, :3, 1:3])


def test_convention_nerf_opengl_json_equals_opencv_json(tmp_path, build, truth):
    a, b = tmp_path / "gl", tmp_path / "cv"
    a.mkdir()
    b.mkdir()
    build.nerf(a, truth, opengl=True)
    build.nerf(b, truth, opengl=False)
    va = read_scene(a).cameras.viewmats                       # auto = opengl
    vb = read_scene(b, nerf_convention="opencv").cameras.viewmats
    assert torch.allclose(va, vb, atol=1e-6)


def test_convention_llff_down_right_back_to_right_down_forward():
    # a camera looking along world +x with world z up: right = -y, down = -z, forward = +x
    llff = np.array([[[0.0, 0.0, -1.0, 5.0],    # columns: down, right, back, centre
                      [0.0, -1.0, 0.0, 6.0],
                      [-1.0, 0.0, 0.0, 7.0]]])
    cv = llff_to_opencv_c2w(llff)[0]
    np.testing.assert_array_equal(cv[:3, 0], [0, -1, 0])
    np.testing.assert_array_equal(cv[:3, 1], [0, 0, -1])
    np.testing.assert_array_equal(cv[:3, 2], [1, 0, 0])
    np.testing.assert_array_equal(cv[:3, 3], [5, 6, 7])
    assert np.isclose(np.linalg.det(cv[:3, :3]), 1.0)


def test_convention_ks_pixel_centres_scale_with_downscale(tmp_path, build, truth):
    # with pixel centres at integer + 0.5 a continuous pixel coordinate scales by exactly 1/d
    build.colmap(tmp_path, truth)
    build.write_images(tmp_path / "images_2", truth, size=(20, 15))
    full = read_scene(tmp_path)
    half = read_scene(tmp_path, downscale=2)
    X = torch.from_numpy(truth.points[:20])
    uv_full, _ = _project(full.cameras, X)
    uv_half, _ = _project(half.cameras, X)
    assert torch.allclose(uv_half, uv_full / 2, atol=1e-4)
    assert float(full.cameras.Ks[0, 0, 2]) == truth.size[0] / 2  # centred camera: cx = W / 2


def test_convention_gt_vertices_project_in_front_of_cameras(tmp_path, build, truth):
    build.scannet(tmp_path, truth, opengl=True)
    s = read_scene(tmp_path)  # OpenGaussian default: opengl json
    _, z = _project(s.cameras, s.points)
    front = (z > 0).double().mean(1)                                    # per camera
    assert (front > 0.5).double().mean() > 0.5  # most vertices in front of most cameras
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
    inside = frustum_fraction(s.points, s.cameras.viewmats, s.cameras.Ks, s.width, s.height)
    inside_flipped = frustum_fraction(s.points, flip @ s.cameras.viewmats, s.cameras.Ks,
                                      s.width, s.height)
    assert inside.mean() > 0.5 and inside_flipped.mean() == 0.0


def test_convention_llff_roundtrip_property():
    """hypothesis: for any rotation + centre, LLFF encoding then decoding is the identity."""
    hyp = pytest.importorskip("hypothesis")
    st = hyp.strategies
    from scipy.spatial.transform import Rotation

    @hyp.settings(max_examples=25, deadline=None)
    @hyp.given(st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(
        lambda q: sum(x * x for x in q) > 1e-3),
        st.lists(st.floats(-100, 100), min_size=3, max_size=3))
    def check(q, t):
        T = np.eye(4)
        T[:3, :3] = Rotation.from_quat(q).as_matrix()
        T[:3, 3] = t
        llff = np.stack([T[:3, 1], T[:3, 0], -T[:3, 2], T[:3, 3]], axis=1)[None]
        np.testing.assert_allclose(llff_to_opencv_c2w(llff)[0], T, atol=1e-12)
        assert torch.allclose(opengl_to_opencv(opengl_to_opencv(torch.from_numpy(T))),
                              torch.from_numpy(T))

    check()
