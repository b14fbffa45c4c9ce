"""Voxelisation: maps against the dict-based twin, round trips, pooling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instgs.core.checks import InputError, ShapeError
from instgs.pointcloud.ops._reference import voxelize_reference
from instgs.pointcloud.voxelize import pool_to_voxels, scatter_to_points, voxelize


def test_voxelize_matches_reference_and_maps_are_consistent():
    rng = np.random.default_rng(0)
    x = (rng.random((2000, 3)) * [1.0, 0.5, 0.3] - 0.37).astype(np.float32)
    g = voxelize(x, 0.05)
    ref = voxelize_reference(x, 0.05)
    assert np.array_equal(g.coords.numpy(), ref["coords"])
    assert np.array_equal(g.p2v.numpy(), ref["p2v"])
    np.testing.assert_allclose(g.origin, ref["origin"])
    assert g.coords.dtype == torch.int32 and (g.coords >= 0).all()
    assert g.v2p_offsets[0] == 0 and g.v2p_offsets[-1] == 2000
    for v in range(0, g.num_voxels, 37):  # CSR inverse agrees with p2v
        pts = g.v2p_index[g.v2p_offsets[v]:g.v2p_offsets[v + 1]]
        assert (g.p2v[pts] == v).all() and (pts.diff() > 0).all()
    # every point lies inside its voxel
    lo = g.origin + g.coords[g.p2v].numpy() * 0.05
    assert ((x >= lo - 1e-6) & (x < lo + 0.05 + 1e-6)).all()


def test_pool_scatter_round_trip_and_grad():
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.random((500, 3)), dtype=torch.float32)
    g = voxelize(x, 0.2)
    # features constant per voxel survive pooling and scattering exactly
    vf = torch.randn(g.num_voxels, 4)
    pf = scatter_to_points(vf, g)
    for red in ("mean", "max", "min"):
        torch.testing.assert_close(pool_to_voxels(pf, g, red), vf)
    torch.testing.assert_close(pool_to_voxels(torch.ones(500, 1), g, "sum")[:, 0],
                               g.counts.float())
    f = torch.randn(500, 2, requires_grad=True)
    m = pool_to_voxels(f, g)
    ref = torch.stack([f[g.p2v == v].mean(0) for v in range(g.num_voxels)])
    torch.testing.assert_close(m, ref)
    m.sum().backward()
    torch.testing.assert_close(f.grad[:, 0], 1.0 / g.counts[g.p2v].float())


def test_batched_voxels_do_not_mix_and_spconv_indices():
    x = np.zeros((4, 3), np.float32)
    g = voxelize(x, 0.1, batch=np.array([0, 0, 1, 1]))
    assert g.num_voxels == 2 and g.batch.tolist() == [0, 1]
    assert g.spconv_indices().tolist() == [[0, 0, 0, 0], [1, 0, 0, 0]]
    assert g.spatial_shape == [1, 1, 1]
    torch.testing.assert_close(g.centers(), torch.full((2, 3), 0.05))


def test_voxelize_bad_input():
    with pytest.raises(ShapeError):
        voxelize(np.zeros((5, 2)), 0.1)
    with pytest.raises(InputError):
        voxelize(np.zeros((5, 3)), 0.0)
    with pytest.raises(InputError):
        voxelize(np.zeros((0, 3)), 0.1)
    with pytest.raises(InputError, match="NaN"):
        voxelize(np.array([[0, 0, np.nan]]), 0.1)
    g = voxelize(np.zeros((3, 3)), 0.1)
    with pytest.raises(ShapeError):
        pool_to_voxels(torch.zeros(4, 2), g)
