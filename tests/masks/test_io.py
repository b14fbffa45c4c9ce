"""instgs.masks.io: LangSplat layout reader/writer."""

from __future__ import annotations

import numpy as np
import pytest

from instgs.core.checks import InputError, ShapeError
from instgs.masks.io import (MaskLevel, check_mask_size, is_complete, level_index,
                             level_offsets, list_feature_stems, read_language_features,
                             read_level, read_masks, write_language_features)


def _example(rng, h=6, w=5):
    """Levels with 2, 3, 1, 2 masks; every id visible; cumulative ids."""
    counts = [2, 3, 1, 2]
    seg = np.full((4, h, w), -1, np.int32)
    off = 0
    for j, k in enumerate(counts):
        lab = rng.integers(-1, k, (h, w))
        lab.flat[:k] = np.arange(k)                       # each id at least once
        seg[j] = np.where(lab >= 0, lab + off, -1)
        off += k
    feats = rng.normal(size=(off, 512)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    return seg, feats, counts


def test_level_names_and_aliases():
    assert MaskLevel == {"default": 0, "small": 1, "medium": 2, "large": 3}
    for name, j in [("default", 0), ("s", 1), ("m", 2), ("l", 3), ("LARGE", 3), (2, 2), ("3", 3)]:
        assert level_index(name) == j
    for bad in ("huge", 4, -1, True, None):
        with pytest.raises(InputError, match="unknown mask level"):
            level_index(bad)


@pytest.mark.parametrize("ids_dtype", ["int16", "int32", "float32"])
@pytest.mark.parametrize("features_dtype", ["float32", "float16"])
def test_round_trip(tmp_path, ids_dtype, features_dtype):
    rng = np.random.default_rng(0)
    seg, feats, counts = _example(rng)
    s_path, f_path = write_language_features(tmp_path, "img_0", seg, feats, ids_dtype,
                                             features_dtype)
    assert np.load(s_path).dtype == np.dtype(ids_dtype)
    assert np.load(f_path).dtype == np.dtype(features_dtype)
    seg2, feats2 = read_language_features(tmp_path, "img_0")
    assert seg2.dtype == np.int64 and feats2.dtype == np.float32
    np.testing.assert_array_equal(seg2, seg)
    np.testing.assert_allclose(feats2, feats, atol=1e-3 if features_dtype == "float16" else 0)
    off = 0
    for j, k in enumerate(counts):
        labels, rows = read_level(tmp_path, "img_0", j)
        assert labels.dtype == np.int64 and labels.min() >= -1 and labels.max() == k - 1
        np.testing.assert_array_equal(labels >= 0, seg[j] >= 0)
        np.testing.assert_array_equal(labels[labels >= 0] + off, seg[j][seg[j] >= 0])
        np.testing.assert_allclose(rows, feats2[off: off + k])
        off += k
    assert list_feature_stems(tmp_path) == ["img_0"] and is_complete(tmp_path, "img_0")


def test_read_masks_uses_scene_language_features(tmp_path):
    rng = np.random.default_rng(1)
    seg, feats, _ = _example(rng)
    write_language_features(tmp_path / "language_features", "a", seg, feats)
    labels, rows = read_masks(tmp_path, "a", "large")
    assert labels.max() == 1 and rows.shape == (2, 512)


def test_empty_level_uses_running_max(tmp_path):
    """An all -1 level must not shift the next level's ids (OpenGaussian's max(level-1) would)."""
    seg = np.full((4, 3, 3), -1, np.int32)
    seg[0, 0, 0] = 0
    seg[0, 1, 1] = 1
    seg[2, 0, 0] = 2            # small level empty; medium starts at 2
    seg[3, 2, 2] = 3
    feats = np.eye(4, 512, dtype=np.float32)
    write_language_features(tmp_path, "e", seg, feats)
    np.testing.assert_array_equal(level_offsets(seg), [0, 2, 2, 3])
    labels, rows = read_level(tmp_path, "e", "small")
    assert (labels == -1).all() and rows.shape == (0, 512)
    labels, rows = read_level(tmp_path, "e", "medium")
    assert labels[0, 0] == 0 and rows.shape == (1, 512) and rows[0, 2] == 1.0
    labels, rows = read_level(tmp_path, "e", "large")
    assert labels[2, 2] == 0 and rows[0, 3] == 1.0


def test_no_features_is_zero_rows(tmp_path):
    seg, _, _ = _example(np.random.default_rng(2))
    write_language_features(tmp_path, "x", seg, np.zeros((0, 512), np.float32))
    labels, rows = read_level(tmp_path, "x", "medium")
    assert labels.max() == 0 and rows.shape == (0, 512)


def test_writer_rejects_inconsistent_input(tmp_path):
    seg, feats, _ = _example(np.random.default_rng(3))
    with pytest.raises(ShapeError):
        write_language_features(tmp_path, "x", seg[:3], feats)
    with pytest.raises(ShapeError, match="rows"):
        write_language_features(tmp_path, "x", seg, feats[:-1])
    assert list_feature_stems(tmp_path) == []


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="nope_s.npy: file not found"):
        read_language_features(tmp_path, "nope")
    (tmp_path / "bad_s.npy").write_bytes(b"garbage")
    np.save(tmp_path / "bad_f.npy", np.zeros((1, 512), np.float32))
    with pytest.raises(InputError, match="bad_s.npy: not a readable .npy"):
        read_language_features(tmp_path, "bad")
    np.save(tmp_path / "shape_s.npy", np.zeros((3, 4, 4), np.int16))
    np.save(tmp_path / "shape_f.npy", np.zeros((1, 512), np.float32))
    with pytest.raises(InputError, match=r"shape_s.npy: mask ids must have shape \[4, H, W\]"):
        read_language_features(tmp_path, "shape")
    np.save(tmp_path / "few_s.npy", np.full((4, 2, 2), 5, np.int16))
    np.save(tmp_path / "few_f.npy", np.zeros((3, 512), np.float32))
    with pytest.raises(InputError, match="few_f.npy: 3 feature rows but mask ids go up to 5"):
        read_language_features(tmp_path, "few")
    np.save(tmp_path / "frac_s.npy", np.full((4, 2, 2), 0.5, np.float32))
    np.save(tmp_path / "frac_f.npy", np.zeros((1, 512), np.float32))
    with pytest.raises(InputError, match="not all integers"):
        read_language_features(tmp_path, "frac")


def test_mask_size_must_match_image(tmp_path):
    seg, feats, _ = _example(np.random.default_rng(4), h=6, w=5)
    write_language_features(tmp_path, "im", seg, feats)
    read_level(tmp_path, "im", "l", image_size=(6, 5))
    read_level(tmp_path, "im", "l", image_size=(12, 10))      # masks at half resolution: fine
    with pytest.raises(InputError, match=r"im_s.npy: mask size 6x5 \(HxW\) disagrees with "
                                         r"image photo.jpg of size 6x9"):
        read_level(tmp_path, "im", "l", image_size=(6, 9), image_path="photo.jpg")
    assert check_mask_size((540, 960), (1080, 1920)) == 0.5
    assert check_mask_size((1080, 607), (1920, 1080)) == pytest.approx(0.5625)


def test_list_feature_stems_needs_both_files(tmp_path):
    assert list_feature_stems(tmp_path / "missing") == []
    seg, feats, _ = _example(np.random.default_rng(5))
    write_language_features(tmp_path, "b", seg, feats)
    write_language_features(tmp_path, "a", seg, feats)
    (tmp_path / "c_f.npy").write_bytes(b"")                     # lone _f: unfinished
    (tmp_path / ".a_s.npy.123.tmp").write_bytes(b"")            # temp file of a killed run
    assert list_feature_stems(tmp_path) == ["a", "b"]
    assert not is_complete(tmp_path, "c")
