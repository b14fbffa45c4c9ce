"""instgs.masks.levels: fast paths against their loop twins."""

from __future__ import annotations

import numpy as np
import pytest

from instgs.masks.levels import (PackedMasks, clip_crop, langsplat_mask_nms,
                                 langsplat_mask_nms_reference, paint_level,
                                 pairwise_intersections, pairwise_intersections_reference,
                                 remove_small_regions, stack_levels)


def _random_masks(rng, n, h=23, w=31):
    """Rectangles and blobs with nesting and near-duplicates, so every NMS rule fires."""
    masks = np.zeros((n, h, w), bool)
    for i in range(n):
        kind = i % 4
        if kind == 3 and i >= 3:
            masks[i] = masks[i - 3]
            masks[i][rng.integers(0, h), :] ^= True                # near duplicate
        else:
            y0, x0 = rng.integers(0, h - 3), rng.integers(0, w - 3)
            y1, x1 = rng.integers(y0 + 2, h + 1), rng.integers(x0 + 2, w + 1)
            masks[i, y0:y1, x0:x1] = True
            if kind == 2:
                masks[i] &= rng.random((h, w)) < 0.9
        if not masks[i].any():
            masks[i, 0, 0] = True
    return masks


def test_packed_masks_round_trip():
    rng = np.random.default_rng(0)
    dense = _random_masks(rng, 7)
    pm = PackedMasks.from_dense(dense, rng.random(7))
    np.testing.assert_array_equal(pm.dense(), dense)
    np.testing.assert_array_equal(pm.mask(3), dense[3])
    np.testing.assert_array_equal(pm.areas, dense.reshape(7, -1).sum(1))
    sub = pm.select(np.array([4, 1]))
    np.testing.assert_array_equal(sub.dense(), dense[[4, 1]])
    pl = PackedMasks.from_list(23, 31, list(dense), list(pm.scores))
    np.testing.assert_array_equal(pl.bits, pm.bits)
    assert len(PackedMasks(5, 5)) == 0 and PackedMasks(5, 5).bits.shape == (0, 4)


@pytest.mark.parametrize("chunk", [8, 64, 1 << 16])
def test_pairwise_intersections_matches_reference(chunk):
    rng = np.random.default_rng(1)
    dense = _random_masks(rng, 12)
    got = pairwise_intersections(PackedMasks.from_dense(dense), chunk_pixels=chunk)
    np.testing.assert_array_equal(got, pairwise_intersections_reference(dense))
    assert pairwise_intersections(PackedMasks(4, 4)).shape == (0, 0)


@pytest.mark.parametrize("seed", range(6))
def test_langsplat_mask_nms_matches_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    dense = _random_masks(rng, n)
    scores = rng.random(n)
    pm = PackedMasks.from_dense(dense, scores)
    for thr in [(0.8, 0.7, 0.5), (0.5, 0.2, 0.2), (0.95, 0.99, 0.5)]:
        got = langsplat_mask_nms(pairwise_intersections(pm), pm.areas, scores, *thr)
        ref = langsplat_mask_nms_reference(dense, scores, *thr)
        np.testing.assert_array_equal(got, ref)


def test_langsplat_mask_nms_rules():
    h, w = 20, 20
    big = np.zeros((h, w), bool); big[:, :] = True                   # 400 px
    inner = np.zeros((h, w), bool); inner[2:8, 2:8] = True            # 36 px inside big
    dup = big.copy(); dup[0, 0] = False                               # IoU ~1 with big
    other = np.zeros((h, w), bool); other[10:20, 10:20] = True        # 100 px inside big
    masks = np.stack([big, inner, dup, other])
    scores = np.array([0.9, 0.95, 0.8, 0.75])
    keep = langsplat_mask_nms_reference(masks, scores)
    # dup: IoU > 0.8 with big (higher score) -> dropped; inner, other: >= 85 % inside big
    # while covering < 50 % of it -> dropped
    assert keep.tolist() == [0]
    # low scores: none passes score_thr -> LangSplat keeps the top 3 for that rule
    keep = langsplat_mask_nms_reference(masks[[1, 3]], np.array([0.1, 0.2]))
    assert keep.tolist() == [0, 1]


def test_remove_small_regions_semantics():
    m = np.zeros((12, 12), bool)
    m[1:9, 1:9] = True
    m[4, 4] = False                       # 1 px hole
    m[11, 11] = True                      # 1 px island
    filled, changed = remove_small_regions(m, 5, "holes")
    assert changed and filled[4, 4] and filled[11, 11]
    cleaned, changed = remove_small_regions(filled, 5, "islands")
    assert changed and not cleaned[11, 11] and cleaned[1:9, 1:9].all()
    same, changed = remove_small_regions(cleaned, 5, "islands")
    assert not changed and (same == cleaned).all()
    tiny = np.zeros((5, 5), bool); tiny[0, 0] = True; tiny[3:5, 3:5] = True
    kept, _ = remove_small_regions(tiny, 10, "islands")   # all small: keep the largest
    assert kept.sum() == 4 and kept[3:5, 3:5].all()
    diag = np.zeros((4, 4), bool); diag[0, 0] = diag[1, 1] = True   # 8-connected: one region
    assert not remove_small_regions(diag, 2, "islands")[1]


def test_paint_level_and_stack_levels():
    h, w = 10, 10
    big = np.zeros((h, w), bool); big[:, :5] = True
    small = np.zeros((h, w), bool); small[2:4, 1:3] = True
    hidden = np.zeros((h, w), bool); hidden[2:4, 1:2] = True   # fully covered by `small`?
    pm = PackedMasks.from_dense(np.stack([small, big, hidden]))
    labels, kept = paint_level(pm)
    # painted largest first: big (id 0), small (id 1), hidden (id 2, smallest, on top)
    assert kept.tolist() == [1, 0, 2]
    assert labels[0, 0] == 0 and labels[2, 2] == 1 and labels[2, 1] == 2
    assert labels[0, 9] == -1
    # a mask covered completely by later (smaller) masks disappears and ids stay dense
    cover = np.zeros((h, w), bool); cover[0:5, 0:5] = True
    part1 = np.zeros((h, w), bool); part1[0:5, 0:3] = True
    part2 = np.zeros((h, w), bool); part2[0:5, 2:5] = True
    labels, kept = paint_level(PackedMasks.from_dense(np.stack([cover, part1, part2])))
    assert sorted(np.unique(labels).tolist()) == [-1, 0, 1] and 0 not in kept.tolist()
    seg = stack_levels([labels, labels, np.full((h, w), -1, np.int32), labels])
    assert seg.shape == (4, h, w) and seg.dtype == np.int32
    assert seg[0].max() == 1 and seg[1].min() == -1 and seg[1][seg[1] >= 0].min() == 2
    assert (seg[2] == -1).all() and seg[3][seg[3] >= 0].min() == 4 and seg[3].max() == 5


def test_clip_crop_layout():
    img = np.full((20, 40, 3), 200, np.uint8)
    m = np.zeros((20, 40), bool)
    m[5:9, 10:30] = True                  # 4 x 20 box
    m[5, 10] = False                      # outside-mask pixel inside the box is zeroed
    out = clip_crop(img, m, size=20)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    # box 4 rows x 20 cols -> square 20 with 8 zero rows above and below
    assert (out[:7] == 0).all() and (out[13:] == 0).all()
    assert (out[9:11, 2:18] == 200).all()
    assert out[8, 0].max() < 200          # the zeroed corner pixel pulls the edge down
