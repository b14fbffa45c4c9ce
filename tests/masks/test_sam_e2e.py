"""SAM (vit_b) + CLIP (ViT-B-32) end to end at random initialisation (no weights exist here).

The architectures are the real ones; the SAM encoder runs at 224 px input (one attention
window) instead of 1024 to keep the CPU test short. Random weights make the masks
meaningless, so the generator thresholds are opened; the test checks the pipeline and the
written format exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import tyro

from instgs.core.checks import InputError
from instgs.masks.cli import MasksCommand
from instgs.masks.io import list_feature_stems, read_level
from instgs.masks.sam import SamLevelGenerator, SamSettings, detect_sam_model_type, load_sam

from ._helpers import make_scene

ARGS = ["--random-weights-for-testing", "--sam-model-type", "vit_b", "--sam-image-size", "224",
        "--clip-model", "ViT-B-32", "--clip-pretrained", "laion2b_s34b_b79k",
        "--points-per-side", "4", "--crop-n-layers", "0", "--pred-iou-thresh", "0",
        "--stability-score-thresh", "0", "--dedup-score-thresh", "0",
        "--min-mask-region-area", "10", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def sam_scene(tmp_path_factory):
    torch.manual_seed(0)
    scene = make_scene(tmp_path_factory.mktemp("sam") / "scene", 2, h=40, w=56)
    out = tyro.cli(MasksCommand, args=["--data", str(scene), *ARGS]).run()
    return scene, out


@pytest.mark.slow
def test_sam_clip_end_to_end_format(sam_scene):
    scene, out = sam_scene
    assert list_feature_stems(out) == ["frame_000", "frame_001"]
    for stem in ("frame_000", "frame_001"):
        s = np.load(out / f"{stem}_s.npy")
        f = np.load(out / f"{stem}_f.npy")
        assert s.dtype == np.int16 and s.shape == (4, 40, 56)
        assert f.dtype == np.float32 and f.ndim == 2 and f.shape[1] == 512
        offset = 0
        for j in range(4):
            valid = np.unique(s[j][s[j] >= 0])
            assert len(valid) >= 1, "each level has at least one mask with opened thresholds"
            np.testing.assert_array_equal(valid, np.arange(offset, offset + len(valid)))
            labels, rows = read_level(out, stem, j)
            assert labels.max() == len(valid) - 1 and rows.shape == (len(valid), 512)
            np.testing.assert_array_equal(rows, f[offset: offset + len(valid)])
            offset += len(valid)
        assert f.shape[0] == offset == int(s.max()) + 1
        np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
        assert np.isfinite(f).all()


@pytest.mark.slow
def test_sam_levels_are_the_multimask_outputs():
    """Each non-default level holds masks of one multimask output only; default holds all."""
    torch.manual_seed(0)
    sam = load_sam("vit_b", allow_random_init=True, image_size=224)
    gen = SamLevelGenerator(sam, SamSettings(points_per_side=2, pred_iou_thresh=0.0,
                                             stability_score_thresh=0.0, crop_n_layers=0,
                                             box_nms_thresh=1.0, min_mask_region_area=0))
    img = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    levels = gen.generate(img)
    assert len(levels) == 4 and all(lv.height == 32 and lv.width == 48 for lv in levels)
    # box NMS off (thr 1.0): default = union of the three per-level sets
    d = {m.tobytes() for m in levels[0].bits}
    union = set().union(*({m.tobytes() for m in lv.bits} for lv in levels[1:]))
    assert d == union
    assert sum(len(lv) for lv in levels[1:]) == len(levels[0])


def test_wrong_sam_checkpoint_names_the_file(tmp_path):
    fake_l = tmp_path / "sam_vit_l.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(1024, 3, 16, 16)}, fake_l)
    with pytest.raises(InputError, match=r"sam_vit_l.pth: this is a SAM vit_l checkpoint but "
                                         r"--sam-model-type is vit_b"):
        load_sam("vit_b", fake_l)
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(3)}, other)
    with pytest.raises(InputError, match="resnet.pth: not a SAM checkpoint"):
        load_sam("vit_b", other)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(InputError, match="junk.pth: not a readable PyTorch checkpoint"):
        load_sam("vit_b", junk)
    with pytest.raises(InputError, match="missing.pth: SAM checkpoint not found"):
        load_sam("vit_b", tmp_path / "missing.pth")
    assert detect_sam_model_type({"image_encoder.patch_embed.proj.weight":
                                  torch.zeros(1280, 3, 16, 16)}) == "vit_h"


def test_offline_sam_error_says_where_to_put_the_file(tmp_path, monkeypatch):
    import instgs.masks.sam as sam_mod

    monkeypatch.setattr(sam_mod, "_reachable", lambda host, timeout=3.0: False)
    with pytest.raises(InputError) as e:
        load_sam("vit_h", cache_dir=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "sam_vit_h_4b8939.pth") in msg
    assert "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth" in msg
    assert "--mask-source felzenszwalb" in msg
