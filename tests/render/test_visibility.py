from __future__ import annotations

import pytest
import torch

from instgs.core.checks import ShapeError
from instgs.render.visibility import visible_points, visible_points_ref


def _camera(w=32, h=24):
    K = torch.tensor([[30.0, 0, w / 2], [0, 30.0, h / 2], [0, 0, 1]])
    return torch.eye(4), K, w, h


def test_depth_test_keeps_surface_points_and_drops_occluded_ones():
    viewmat, K, w, h = _camera()
    depth = torch.full((h, w, 1), 2.0)  # a wall at z = 2
    alpha = torch.ones(h, w, 1)
    alpha[:, :4] = 0.0                  # an empty strip on the left
    pts = torch.tensor([[0.0, 0.0, 2.0],     # on the wall: visible
                        [0.0, 0.0, 2.5],     # behind the wall: occluded
                        [0.0, 0.0, 1.98],    # within the 5 cm tolerance: visible
                        [0.0, 0.0, -2.0],    # behind the camera
                        [5.0, 0.0, 2.0],     # outside the image
                        [-1.0, 0.0, 2.0]])   # projects onto the empty strip (u = 1)
    idx, pix = visible_points(pts, viewmat, K, depth, alpha)
    assert idx.tolist() == [0, 2]
    u, v = int(0.0 / 2.0 * 30 + w / 2), int(h / 2)
    assert pix.tolist() == [v * w + u] * 2


def test_relative_tolerance_grows_with_depth():
    viewmat, K, w, h = _camera()
    depth = torch.full((h, w), 10.0)
    alpha = torch.ones(h, w)
    pts = torch.tensor([[0.0, 0.0, 10.15]])  # 15 cm off at 10 m: inside 2 %, outside 5 cm
    assert visible_points(pts, viewmat, K, depth, alpha)[0].tolist() == [0]
    assert visible_points(pts, viewmat, K, depth, alpha, tol_rel=0.0)[0].tolist() == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_loop_reference(seed):
    g = torch.Generator().manual_seed(seed)
    _, K, w, h = _camera()
    a = torch.rand(3, generator=g) * 0.3
    R = torch.linalg.matrix_exp(torch.tensor([[0, -a[2], a[1]], [a[2], 0, -a[0]],
                                              [-a[1], a[0], 0]]))
    viewmat = torch.eye(4)
    viewmat[:3, :3] = R
    viewmat[:3, 3] = torch.rand(3, generator=g) * 0.2
    pts = torch.rand(500, 3, generator=g) * torch.tensor([4.0, 3.0, 4.0]) - \
        torch.tensor([2.0, 1.5, -0.5])
    depth = 1.0 + 3.0 * torch.rand(h, w, 1, generator=g)
    alpha = torch.rand(h, w, 1, generator=g)
    # put a good share of the points onto the depth map so both branches are exercised
    idx, pix = visible_points(pts, viewmat, K, depth, alpha, tol_abs=0.3, tol_rel=0.1)
    ref_idx, ref_pix = visible_points_ref(pts, viewmat, K, depth, alpha, tol_abs=0.3,
                                          tol_rel=0.1)
    assert idx.tolist() == ref_idx and pix.tolist() == ref_pix
    assert 0 < len(ref_idx) < 500


def test_shape_errors():
    viewmat, K, w, h = _camera()
    with pytest.raises(ShapeError):
        visible_points(torch.rand(5, 2), viewmat, K, torch.ones(h, w), torch.ones(h, w))
    with pytest.raises(ShapeError):
        visible_points(torch.rand(5, 3), viewmat[:3], K, torch.ones(h, w), torch.ones(h, w))
