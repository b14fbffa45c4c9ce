"""Reading the LangSplat folders written by ../shared/tools/render_scannet_views.py."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from instgs.masks.io import list_feature_stems, read_language_features, read_level




def _render(shared_data, out):
    tool = shared_data.parent / "tools" / "render_scannet_views.py"
    if not tool.is_file() or not (shared_data / "scannet-scene0000-mmdet3d").is_dir():
        pytest.skip(f"{tool} or the ScanNet sample is absent")
    r = subprocess.run([sys.executable, str(tool), "--scene", "scene0000_00", "--out", str(out),
                        "--views", "4", "--test-views", "1", "--width", "80", "--height", "60",
                        "--candidates", "30", "--seed", "0"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return out / "scene0000_00"


def test_reads_render_scannet_views_output(shared_data, tmp_path):
    scene = _render(shared_data, tmp_path)
    for folder in ("language_features", "language_features_clean"):
        d = scene / folder
        stems = list_feature_stems(d)
        assert stems == ["00000", "00001", "00002", "00003", "test_000"]
        meta = json.loads((d / "masks_meta.json").read_text())
        assert meta["level_order"] == ["default", "small", "medium", "large"]
        for stem in stems:
            raw_s, raw_f = np.load(d / f"{stem}_s.npy"), np.load(d / f"{stem}_f.npy")
            assert raw_s.dtype == np.int16 and raw_f.dtype == np.float16
            seg, feats = read_language_features(d, stem)
            assert seg.shape == (4, 60, 80) and feats.dtype == np.float32
            np.testing.assert_array_equal(seg, raw_s)
            with Image.open(scene / "color" / f"{stem}.jpg") as im:
                size = (im.height, im.width)
            for j, level_masks in enumerate(meta["views"][stem]["levels"]):
                labels, rows = read_level(d, stem, j, image_size=size)
                assert rows.shape == (len(level_masks), 512)
                for local, (gid, _cls, _inst, _tag, pixels) in enumerate(level_masks):
                    assert int((labels == local).sum()) == pixels
                    np.testing.assert_array_equal(rows[local], raw_f[gid].astype(np.float32))
