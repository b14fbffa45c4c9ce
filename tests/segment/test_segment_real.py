from __future__ import annotations

import numpy as np
import pytest

from instgs.eval.io import load_scannet_gt
from instgs.eval.scannet import instance_miou
from instgs.segment import SegmentConfig, segment_anchors

MM = "scannet-scene0000-mmdet3d"


@pytest.mark.slow
def test_segment_real_scannet_geometry_with_oracle_features(shared_data):
    """Real scene0000_00 vertices (81k anchors, walls touching furniture) with per-instance
    random features + noise: the graph merge must recover the GT instances."""
    vert = shared_data / MM / "scannet_train_instance_data" / "scene0000_00_vert_all.npy"
    if not vert.is_file():
        pytest.skip(f"{vert} not found")
    gt = load_scannet_gt(shared_data / MM, "scene0000_00")
    xyz = np.load(vert)[:, :3]
    rng = np.random.default_rng(0)
    base = rng.normal(size=(gt.instance.max() + 1, 6))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    feats = base[gt.instance] + 0.05 * rng.normal(size=(len(xyz), 6))
    res = segment_anchors(xyz, feats, SegmentConfig(pe_dims="xyz"))
    m = instance_miou(res.anchor_labels, gt.instance)
    assert m.miou >= 0.9, (m.miou, res.num_instances)
