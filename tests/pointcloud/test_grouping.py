"""HDBSCAN / mean shift on separated blobs, cluster -> instance conversion and SGPN block
merging, each against its readable twin where it is ours."""

from __future__ import annotations

import numpy as np
import pytest

from instgs.core.checks import InputError
from instgs.pointcloud.ops import _reference_methods as ref
from instgs.pointcloud.ops.blocks import (block_merging, join_shared_groups,
                                         link_chunk_groups, room_blocks)
from instgs.pointcloud.ops.grouping import (
    clusters_to_instances,
    hdbscan_labels,
    mean_shift_labels,
    relabel_first_seen,
)


def _blobs(centres, n=40, sigma=0.05, seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(c, sigma, (n, len(c))) for c in centres])
    return x, np.repeat(np.arange(len(centres)), n)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return (relabel_first_seen(a) == relabel_first_seen(b)).all()


def test_hdbscan_recovers_separated_blobs():
    x, want = _blobs([(0,) * 8, (3,) + (0,) * 7, (0, 3) + (0,) * 6, (3, 3) + (0,) * 6])
    labels, prob = hdbscan_labels(x, min_cluster_size=10)
    assert _same_partition(labels, want)
    assert ((prob >= 0) & (prob <= 1)).all()
    few, _ = hdbscan_labels(x[:5], min_cluster_size=10)  # fewer points than a cluster
    assert (few == -1).all()
    with pytest.raises(InputError, match="NaN"):
        hdbscan_labels(np.full((20, 2), np.nan), 5)


def test_mean_shift_recovers_separated_blobs_and_matches_twin():
    x, want = _blobs([(0, 0, 0, 0, 0), (2, 0, 0, 0, 0), (0, 2, 0, 0, 0)], n=30, sigma=0.08)
    fast = mean_shift_labels(x, bandwidth=0.5)
    assert _same_partition(fast, want)
    for bin_seeding in (True, False):
        assert (mean_shift_labels(x, 0.5, bin_seeding) ==
                ref.mean_shift_labels(x, 0.5, bin_seeding)).all()
    rng = np.random.default_rng(5)  # overlapping, unstructured points: still the same
    y = rng.normal(size=(60, 2))
    assert (mean_shift_labels(y, 0.7) == ref.mean_shift_labels(y, 0.7)).all()
    assert mean_shift_labels(x[:1], 0.5).tolist() == [0]
    with pytest.raises(InputError, match="bandwidth"):
        mean_shift_labels(x, 0.0)


def test_clusters_to_instances_majority_class_mean_probability():
    labels = np.array([0, 0, 0, 1, 1, -1, 2])
    prob = np.array([[0.1, 0.9], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4], [0.9, 0.1], [0.5, 0.5],
                     [0.2, 0.8]])
    out = clusters_to_instances(labels, prob, min_points=2)
    assert [(p.tolist(), c) for p, c, _ in out] == [([0, 1, 2], 1), ([3, 4], 0)]
    assert out[0][2] == pytest.approx((0.9 + 0.8 + 0.3) / 3)
    assert clusters_to_instances(labels, prob, ignore_classes=(1,))[0][1] == 0
    rng = np.random.default_rng(0)
    lab = rng.integers(-1, 6, 200)
    pr = rng.random((200, 4))
    for kw in ({}, {"min_points": 30}, {"ignore_classes": (2,)}):
        got = clusters_to_instances(lab, pr, **kw)
        want = ref.clusters_to_instances(lab, pr, **kw)
        assert [(g[0].tolist(), g[1]) for g in got] == [(w[0].tolist(), w[1]) for w in want]
        np.testing.assert_allclose([g[2] for g in got], [w[2] for w in want])


def test_room_blocks_cover_every_point_in_snake_order():
    rng = np.random.default_rng(0)
    xyz = np.c_[rng.uniform(0, 2.2, (500, 2)), rng.uniform(0, 1, 500)]
    blocks = room_blocks(xyz, 1.0, 0.5)
    covered = np.zeros(500, dtype=int)
    for b in blocks:
        covered[b] += 1
        ext = xyz[b, :2].max(0) - xyz[b, :2].min(0)
        assert (ext <= 1.0 + 1e-9).all()
    assert covered.min() >= 1 and covered.max() <= 4
    assert len(blocks) == 16  # starts 0, 0.5, 1, 1.5 per axis over ~2.2 m
    y0 = [xyz[b, 1].min() for b in blocks[:8]]
    assert y0[0] < y0[1] < y0[2] < y0[3] and y0[4] > y0[5] > y0[6] > y0[7]  # snake
    with pytest.raises(InputError):
        room_blocks(xyz, 1.0, 1.5)


def _cut_object_room():
    """A 1 m wide object from x = 0.5 to 1.5 cut by the border between two blocks."""
    rng = np.random.default_rng(0)
    obj = np.c_[rng.uniform(0.5, 1.5, 200), rng.uniform(0.2, 0.8, 200), rng.uniform(0, 1, 200)]
    other = np.c_[rng.uniform(2.1, 2.4, 60), rng.uniform(0.2, 0.8, 60), rng.uniform(0, 1, 60)]
    return np.concatenate([obj, other]), np.r_[np.zeros(200, int), np.ones(60, int)]


def test_block_merging_joins_an_object_cut_by_a_block_border():
    xyz, gt = _cut_object_room()
    blocks = [np.flatnonzero(xyz[:, 0] < 1.2), np.flatnonzero(xyz[:, 0] >= 0.8)]
    # each block sees the part of the object it holds as one group (its own ids)
    groups = [(b, gt[b].copy(), np.array([4, 6])) for b in blocks]
    labels = block_merging(len(xyz), groups)
    assert len(np.unique(labels[gt == 0])) == 1 and (labels >= 0).all()
    assert labels[gt == 0][0] != labels[gt == 1][0]
    assert (labels == ref.block_merging(len(xyz), groups)).all()
    # a different class in the overlap does not merge (SGPN compares the class)
    other = [groups[0], (blocks[1], gt[blocks[1]].copy(), np.array([5, 6]))]
    lab2 = block_merging(len(xyz), other)
    assert len(np.unique(lab2[gt == 0])) == 2


def test_block_merging_small_and_unmatched_groups():
    idx = np.arange(40)
    grp = np.r_[np.zeros(35, int), np.ones(5, int)]
    labels = block_merging(40, [(idx, grp, np.array([2, 2]))], min_overlap=7, min_new_size=30)
    assert (labels[:35] == 0).all() and (labels[35:] == -1).all()  # 5 points: dropped
    with pytest.raises(InputError, match="group id"):
        block_merging(40, [(idx, grp, np.array([2]))])
    with pytest.raises(InputError, match="outside"):
        block_merging(10, [(idx, grp, np.array([2, 2]))])


def _random_blocks(rng, n: int, num_blocks: int):
    """Blocks of 40-120 random points of n, each with 1-4 random groups (-1 = none) of
    class 2 or 3."""
    groups = []
    for _ in range(num_blocks):
        idx = np.sort(rng.choice(n, rng.integers(40, 120), replace=False))
        G = int(rng.integers(1, 5))
        groups.append((idx, rng.integers(-1, G, len(idx)), rng.integers(2, 4, G)))
    return groups


def test_block_merging_matches_reference_twin_on_random_blocks():
    rng = np.random.default_rng(7)
    n = 300
    for _trial in range(5):
        groups = _random_blocks(rng, n, 6)
        kw = {"min_overlap": int(rng.integers(1, 8)), "min_new_size": int(rng.integers(0, 30))}
        assert (block_merging(n, groups, **kw) == ref.block_merging(n, groups, **kw)).all()


def _three_block_split():
    """An object (points 0..89, class 4) on a row of three blocks. Blocks 1 and 2 each see a
    part the other does not share enough of, so SGPN starts two ids; block 3 sees the
    object whole. A neighbour (90..119, class 6) touches the last block."""
    b1 = np.arange(0, 40)
    b2 = np.arange(36, 80)  # 4 shared points < min_overlap 7
    b3 = np.r_[np.arange(0, 90), np.arange(90, 120)]
    groups = [(b1, np.zeros(40, int), np.array([4])),
              (b2, np.zeros(44, int), np.array([4])),
              (b3, (b3 >= 90).astype(int), np.array([4, 6]))]
    cls = np.r_[np.full(90, 4), np.full(30, 6)]
    return groups, cls


def test_join_shared_groups_joins_an_object_sgpn_left_split():
    groups, cls = _three_block_split()
    room = block_merging(120, groups)
    assert len(np.unique(room[:90])) >= 2  # SGPN alone: the object keeps two ids
    out = join_shared_groups(room, groups, cls, min_share=0.05)
    assert len(np.unique(out[:90])) == 1 and out[0] != out[100]
    assert (out == ref.join_shared_groups(room, groups, cls, 0.05)).all()
    # an instance of another class is never joined, however much of the group it holds:
    # the neighbour has its own block first, then block 3 groups everything as class 4
    groups = [(np.arange(90, 120), np.zeros(30, int), np.array([6]))] + groups[:2] + [
        (groups[2][0], np.zeros(120, int), np.array([4]))]
    room = block_merging(120, groups, min_new_size=10)
    assert room[100] != room[0]
    out = join_shared_groups(room, groups, cls, min_share=0.05)
    assert len(np.unique(out[:90])) == 1 and out[0] != out[100]
    # a share below min_share does not join
    out = join_shared_groups(block_merging(120, _three_block_split()[0]),
                             _three_block_split()[0], cls, min_share=0.6)
    assert len(np.unique(out[:90])) >= 2


def test_join_shared_groups_errors_and_twin_on_random_blocks():
    with pytest.raises(InputError, match="point classes"):
        join_shared_groups(np.zeros(5, int), [], np.zeros(4, int))
    with pytest.raises(InputError, match="min_share"):
        join_shared_groups(np.zeros(5, int), [], np.zeros(5, int), min_share=0.0)
    # ids are compacted over the ids in use (id 1 holds no point here)
    room = np.array([0, 0, 2, 2, 3, 3])
    blocks = [(np.arange(6), np.array([0, 0, 0, 0, 1, 1]), np.array([1, 1]))]
    out = join_shared_groups(room, blocks, np.ones(6, int))
    assert out.tolist() == [0, 0, 0, 0, 1, 1]
    assert out.tolist() == ref.join_shared_groups(room, blocks, np.ones(6, int)).tolist()
    rng = np.random.default_rng(11)
    n = 300
    for _trial in range(5):
        groups = _random_blocks(rng, n, 8)
        room = block_merging(n, groups, min_overlap=3, min_new_size=5)
        cls = rng.integers(2, 4, n)
        share = float(rng.uniform(0.05, 0.4))
        out = join_shared_groups(room, groups, cls, share)
        assert (out == ref.join_shared_groups(room, groups, cls, share)).all()
        assert ((out >= 0) == (room >= 0)).all()


def _two_chunks(rng, n=200):
    """Two touching boxes (x < 1 and x >= 1) of one class cut into two random chunks, each
    grouped correctly but numbered its own way; chunk 1 also has a 6-point stray group
    at the contact border."""
    coord = np.c_[rng.uniform(0, 2, n), rng.uniform(0, 1, n), np.zeros(n)]
    obj = (coord[:, 0] >= 1).astype(np.int64)
    perm = rng.permutation(n)
    a, b = np.sort(perm[: n // 2]), np.sort(perm[n // 2:])
    ga = obj[a]
    gb = 1 - obj[b]  # swapped numbering
    border = np.argsort(np.abs(coord[b, 0] - 1))[:6]
    gb[border] = 2
    return coord, obj, [(a, ga, np.array([5, 5])), (b, gb, np.array([5, 5, 5]))]


def test_link_chunk_groups_joins_the_passes_of_one_object():
    rng = np.random.default_rng(0)
    coord, obj, chunks = _two_chunks(rng)
    idx, grp, cls = link_chunk_groups(coord, chunks)
    assert (idx == np.arange(len(coord))).all() and cls.tolist() == [5, 5, 5]
    stray = np.isin(idx, chunks[1][0][chunks[1][1] == 2])
    for k in (0, 1):  # each box is one block group, the stray group stays apart
        assert len(np.unique(grp[(obj == k) & ~stray])) == 1
    assert grp[obj == 0][0] != grp[obj == 1][0] and len(np.unique(grp[stray])) == 1
    assert not set(grp[stray]) & set(grp[~stray])
    # another class is never joined
    other = [chunks[0], (chunks[1][0], chunks[1][1], np.array([5, 7, 5]))]
    _, grp2, cls2 = link_chunk_groups(coord, other)
    assert len(np.unique(grp2)) == 4 and sorted(cls2.tolist()) == [5, 5, 5, 7]
    # one chunk: the groups come back unchanged, numbered by first point
    i1, g1, c1 = link_chunk_groups(coord, chunks[:1])
    assert (i1 == chunks[0][0]).all() and (g1 == relabel_first_seen(chunks[0][1])).all()
    # nothing grouped (all background)
    bare = [(c[0], np.full(len(c[0]), -1), np.zeros(0, int)) for c in chunks]
    i0, g0, c0 = link_chunk_groups(coord, bare)
    assert len(i0) == len(coord) and (g0 == -1).all() and len(c0) == 0
    with pytest.raises(InputError, match="share points"):
        link_chunk_groups(coord, [chunks[0], chunks[0]])
    with pytest.raises(InputError, match="min_share"):
        link_chunk_groups(coord, chunks, min_share=0)


def test_link_chunk_groups_matches_reference_twin():
    rng = np.random.default_rng(3)
    for _trial in range(6):
        n = int(rng.integers(30, 120))
        coord = rng.uniform(0, 1, (n, 3))
        k = int(rng.integers(1, 4))
        cut = np.array_split(rng.permutation(n), k)
        chunks = []
        for part in cut:
            g = rng.integers(-1, 3, len(part))
            chunks.append((part, g, rng.integers(0, 2, 3)))
        share = float(rng.uniform(0.3, 0.7))
        out = link_chunk_groups(coord, chunks, share)
        want = ref.link_chunk_groups(coord, chunks, share)
        for x, y in zip(out, want):
            assert x.tolist() == y.tolist()
