from __future__ import annotations

import pytest
import torch

from instgs.core.checks import InputError
from instgs.model.scaffold import ScaffoldConfig, ScaffoldModel, voxelize_points


def _camera(dist=3.0):
    # camera at (0, 0, -dist) looking along +z (OpenCV), world-to-camera = translate by +dist
    vm = torch.eye(4)
    vm[2, 3] = dist
    K = torch.tensor([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    return vm, K


def test_voxelize_points_unique_centres():
    pts = torch.tensor([[0.01, 0.0, 0.0], [0.02, 0.0, 0.0], [0.5, 0.5, 0.5]])
    v = voxelize_points(pts, 0.1)
    assert v.shape == (2, 3)
    assert torch.allclose(v, torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]))


def test_fixed_anchors_keep_order_and_count():
    pts = torch.randn(100, 3)
    m = ScaffoldModel(ScaffoldConfig(), pts, num_images=3, fixed_anchors=True)
    assert torch.equal(m.anchors.detach(), pts)
    assert m.offsets.shape == (100, 5, 3)
    assert m.anchor_feat.shape == (100, 32)
    assert m.log_scaling.shape == (100, 6)
    assert m.ins_feat.shape == (100, 6)
    assert not m.anchors.requires_grad


def test_decode_shapes_and_parent_ids():
    torch.manual_seed(0)
    pts = torch.rand(200, 3) - 0.5
    m = ScaffoldModel(ScaffoldConfig(), pts, num_images=2, fixed_anchors=True)
    # make every child opaque so none are dropped
    with torch.no_grad():
        m.mlp_opacity[2].bias.fill_(5.0)
    vm, K = _camera()
    ng = m.decode(vm, K, 64, 48, image_id=1)
    n_vis = int(ng.visible_anchors.sum())
    assert n_vis > 150
    assert len(ng.gaussians) == n_vis * 5
    assert ng.ins_feat.shape == (n_vis * 5, 6)
    assert torch.allclose(ng.ins_feat.norm(dim=-1), torch.ones(n_vis * 5), atol=1e-5)
    # children of one anchor share its instance feature; offsets are zero so means = anchors
    assert torch.allclose(ng.gaussians.means, m.anchors[ng.anchor_ids])
    assert torch.allclose(ng.gaussians.quats.norm(dim=-1), torch.ones(n_vis * 5), atol=1e-5)
    assert (ng.gaussians.scales > 0).all()
    assert ((ng.gaussians.colors >= 0) & (ng.gaussians.colors <= 1)).all()


def test_decode_drops_non_positive_opacity():
    pts = torch.rand(50, 3) - 0.5
    m = ScaffoldModel(ScaffoldConfig(), pts, num_images=1, fixed_anchors=True)
    with torch.no_grad():
        m.mlp_opacity[2].bias.fill_(-5.0)
        m.mlp_opacity[2].weight.zero_()
    vm, K = _camera()
    ng = m.decode(vm, K, 64, 48)
    assert len(ng.gaussians) == 0


def test_frustum_excludes_points_behind_camera():
    pts = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, -10.0]])
    m = ScaffoldModel(ScaffoldConfig(), pts, num_images=1, fixed_anchors=True)
    vm, K = _camera()
    vis = m.visible_anchors(vm, K, 64, 48)
    assert vis.tolist() == [True, False]


def test_bad_points_raise():
    with pytest.raises(InputError):
        ScaffoldModel(ScaffoldConfig(), torch.zeros(0, 3), num_images=1)
    with pytest.raises(InputError):
        ScaffoldModel(ScaffoldConfig(), torch.tensor([[float("nan"), 0, 0]]), num_images=1)


def test_checkpoint_round_trip_with_different_anchor_count():
    pts = torch.rand(300, 3)
    m = ScaffoldModel(ScaffoldConfig(), pts, num_images=4)
    with torch.no_grad():
        m.anchor_feat.normal_()
    m2 = ScaffoldModel.from_checkpoint(m.state_for_checkpoint())
    assert m2.num_anchors == m.num_anchors
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k
    vm, K = _camera()
    a = m.decode(vm, K, 64, 48, image_id=2).gaussians.colors
    b = m2.decode(vm, K, 64, 48, image_id=2).gaussians.colors
    assert torch.allclose(a, b)
