from __future__ import annotations

import pytest
import torch

from instgs.core.checks import ShapeError
from instgs.render.visibility import (mask_border_distance, occluded_near_border,
                                      point_footprint_radii, point_zbuffer, point_zbuffer_ref,
                                      visible_points, visible_points_ref)


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


@pytest.mark.parametrize("seed", [0, 1])
def test_point_zbuffer_matches_loop_reference(seed):
    g = torch.Generator().manual_seed(seed)
    K = torch.tensor([[12.0, 0, 6.0], [0, 12.0, 5.0], [0, 0, 1]], dtype=torch.float64)
    w, h = 12, 10
    viewmat = torch.eye(4, dtype=torch.float64)
    viewmat[:3, 3] = torch.rand(3, generator=g, dtype=torch.float64) * 0.1
    pts = (torch.rand(40, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 2.0, 2.0])
           - torch.tensor([1.0, 1.0, -0.5], dtype=torch.float64))
    radii = torch.rand(40, generator=g, dtype=torch.float64) * 0.3
    zb = point_zbuffer(pts, radii, viewmat, K, h, w, max_radius_px=3)
    ref = torch.tensor(point_zbuffer_ref(pts, radii, viewmat, K, h, w, max_radius_px=3),
                       dtype=torch.float64)
    assert torch.isfinite(ref).sum() > 20
    assert torch.equal(torch.isinf(zb), torch.isinf(ref))
    fin = torch.isfinite(ref)
    assert torch.allclose(zb[fin], ref[fin])


def test_footprint_radii_of_a_grid_are_its_spacing():
    xs = torch.arange(6, dtype=torch.float32) * 0.1
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
    pts = torch.cat([grid, torch.zeros(len(grid), 1)], 1)
    r = point_footprint_radii(pts).reshape(6, 6)
    assert torch.allclose(r[1:-1, 1:-1], torch.full((4, 4), 0.1), atol=1e-6)
    assert point_footprint_radii(torch.zeros(1, 3)).tolist() == [0.0]


def test_mask_border_distance():
    m = torch.full((5, 8), -1, dtype=torch.long)
    m[:, 4:] = 3
    d = mask_border_distance(m)
    assert d[:, 3].eq(0).all() and d[:, 4].eq(0).all()       # the two sides of the edge
    assert d[2, 0].item() == 3.0 and d[2, 7].item() == 3.0
    assert torch.isinf(mask_border_distance(torch.zeros(3, 3, dtype=torch.long))).all()


def test_occluded_near_border_flags_the_hidden_point_only():
    # a door panel (z = 1.00) 2 cm in front of a wall (z = 1.02); the wall point sits just
    # behind the panel's edge, so it passes a 5 cm depth test on the panel's pixel
    viewmat, K, w, h = _camera()
    K = K.double()
    viewmat = viewmat.double()
    pts = torch.tensor([[0.000, 0.0, 1.00],     # panel
                        [0.001, 0.0, 1.02],     # wall, same pixel, hidden by the panel
                        [-0.30, 0.0, 1.02]])    # wall, far from the panel
    pts = pts.double()
    radii = torch.full((3,), 0.04, dtype=torch.float64)
    masks = torch.full((h, w), 0, dtype=torch.long)   # wall mask
    masks[:, w // 2 - 1:] = 1                          # panel mask, its edge next to u = 16
    depth = torch.full((h, w), 1.02, dtype=torch.float64)
    depth[:, w // 2 - 1:] = 1.0
    idx, pix = visible_points(pts, viewmat, K, depth, torch.ones(h, w))
    assert idx.tolist() == [0, 1, 2]
    drop = occluded_near_border(pts, radii, idx, pix, viewmat, K, masks, border_px=3.0)
    assert drop.tolist() == [False, True, False]
    # one pixel from the border: kept with a narrower border band, and without any border
    assert not occluded_near_border(pts, radii, idx, pix, viewmat, K, masks,
                                    border_px=0.5).any()
    assert not occluded_near_border(pts, radii, idx, pix, viewmat, K, torch.zeros_like(masks),
                                    border_px=3.0).any()
