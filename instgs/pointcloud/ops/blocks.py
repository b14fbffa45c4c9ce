"""Room blocks and SGPN BlockMerging (MPNet, seed 002 §2.5-2.7; SGPN Wang et al. 2018).

* :func:`room_blocks` — 1 m x 1 m columns with a 0.5 m stride (paper) over the room's xy
  extent, visited in a snake pattern (SGPN / ASIS: rows in x, alternating y direction).
* :func:`block_merging` — SGPN ``BlockMerging``: blocks are merged one after the other
  into a room-wide label "volume"; a block group joins the room instance it overlaps most
  (same semantic class, at least ``min_overlap`` shared cells), otherwise it becomes a new
  instance when it has more than ``min_new_size`` points. Readable twin:
  :func:`instgs.pointcloud.ops._reference_methods.block_merging`.
* :func:`join_shared_groups` (instgs, after BlockMerging) — SGPN writes a point's room id
  once, from the first block that holds it, and a later group joins only the one room
  instance it overlaps most. An object whose first two blocks started two ids keeps both,
  even when a later block sees it whole. Here every block group joins the room instances
  of its own class that hold at least ``min_share`` of its points (union-find). Measured
  on MPNet (docs/pointcloud-networks.md): objects split into 3-4 ids across blocks were
  the AP50 loss.
* :func:`link_chunk_groups` (instgs, ``group_unit="chunk"``) — a block larger than one
  forward pass is grouped pass by pass (embeddings of different passes are not comparable)
  and the passes' groups that sample the same object are joined by mutual nearest-
  neighbour majority.

Cells. SGPN re-samples each block and hashes points into a 5 mm grid ("volume") so that
overlapping blocks meet in the same cells. Here every block holds the room's own points
(indices into the scene), so the cell of a point is the point itself: the same rule, exact
and without a grid. One difference from SGPN's code: a group that overlaps nothing and is
not larger than ``min_new_size`` is dropped (label -1); SGPN's ``argmax`` of an all-zero
overlap row silently put it into instance 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from instgs.core.checks import InputError

__all__ = ["room_blocks", "block_merging", "join_shared_groups", "link_chunk_groups"]


def room_blocks(coord: np.ndarray, size: float = 1.0, stride: float = 0.5) -> list[np.ndarray]:
    """Point indices of the xy blocks covering a room, in snake order.

    Block ``(i, j)`` spans ``[x0 + i*stride, x0 + i*stride + size)`` in x (same in y) with
    ``x0 = min x``; the last row/column is the first whose block reaches the maximum (its
    upper bound inclusive). Empty blocks are skipped.

    Args:
        coord: [N, 3] float metres.
        size: block edge (paper: 1 m). stride: step (paper: 0.5 m).

    Returns:
        list of [n_b] int64 sorted point indices (every point is in at least one block).

    Raises:
        InputError: ``size <= 0``, ``stride <= 0`` or ``stride > size`` (points would be
            missed), or no points.
    """
    c = np.asarray(coord, dtype=np.float64)
    if not (size > 0 and 0 < stride <= size):
        raise InputError(f"need 0 < stride <= size, got size={size}, stride={stride}")
    if c.ndim != 2 or c.shape[0] == 0:
        raise InputError("no points to split into blocks", None, "pass a non-empty scene")
    lo, hi = c[:, :2].min(0), c[:, :2].max(0)
    n = [int(np.ceil(max(0.0, hi[d] - lo[d] - size) / stride - 1e-9)) + 1 for d in range(2)]
    out = []
    for i in range(n[0]):
        ys = range(n[1]) if i % 2 == 0 else range(n[1] - 1, -1, -1)
        x0 = lo[0] + i * stride
        inx = (c[:, 0] >= x0) & ((c[:, 0] < x0 + size) | (i == n[0] - 1))
        for j in ys:
            y0 = lo[1] + j * stride
            iny = (c[:, 1] >= y0) & ((c[:, 1] < y0 + size) | (j == n[1] - 1))
            idx = np.flatnonzero(inx & iny)
            if idx.size:
                out.append(idx.astype(np.int64))
    return out


def _block_targets(grp: np.ndarray, gsem: np.ndarray, vol: np.ndarray, vol_sem: np.ndarray,
                   next_id: int, min_overlap: int, min_new_size: int) -> tuple[np.ndarray, int]:
    """Room id for every group of one block (-1 = dropped) and the next free id."""
    G = len(gsem)
    has = grp >= 0
    sizes = np.bincount(grp[has], minlength=G)
    g_safe = np.where(has, grp, 0)
    ok = has & (vol >= 0) & (vol_sem == gsem[g_safe])
    best_cnt = np.zeros(G, dtype=np.int64)
    best_id = np.full(G, -1, dtype=np.int64)
    if ok.any():
        base = max(next_id, 1)
        uniq, cnt = np.unique(grp[ok] * base + vol[ok], return_counts=True)
        g_of, v_of = uniq // base, uniq % base
        order = np.lexsort((v_of, -cnt, g_of))  # per group: most overlap, then smallest id
        first = order[np.r_[True, g_of[order][1:] != g_of[order][:-1]]]
        best_cnt[g_of[first]] = cnt[first]
        best_id[g_of[first]] = v_of[first]
    target = np.where(best_cnt >= min_overlap, best_id, -1)
    for g in range(G):
        if best_cnt[g] < min_overlap and sizes[g] > min_new_size:
            target[g] = next_id
            next_id += 1
    return target, next_id


def block_merging(num_points: int,
                  blocks: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                  min_overlap: int = 7, min_new_size: int = 30) -> np.ndarray:
    """Merge per-block instance groups into room instances (SGPN ``BlockMerging``).

    Blocks are processed in the given (snake) order. For block group ``g`` with class
    ``s_g``: count, over its points already labelled in the room with class ``s_g``, how
    many carry each room id; if the largest count is ``>= min_overlap`` the group takes that
    id (ties: smallest id), else it gets a new id if it has ``> min_new_size`` points, else
    it is dropped. Only points without a room id yet receive the group's id (SGPN).

    Args:
        num_points: N, points of the room.
        blocks: per block ``(point_idx [n] int, group [n] int (-1 = none), group_class [G]
            int)``; ``group_class[g]`` is the semantic class of group g.
        min_overlap: SGPN's 7 shared cells. min_new_size: SGPN's 30 points.

    Returns:
        [N] int64 room instance id per point (-1 = none), ids 0..K-1 in creation order.

    Raises:
        InputError: index / length mismatches or group ids outside ``group_class``.
    """
    vol = np.full(num_points, -1, dtype=np.int64)
    vol_sem = np.full(num_points, -1, dtype=np.int64)
    next_id = 0
    for b, (idx, grp, gsem) in enumerate(blocks):
        idx = np.asarray(idx, dtype=np.int64)
        grp = np.asarray(grp, dtype=np.int64)
        gsem = np.asarray(gsem, dtype=np.int64)
        if idx.shape != grp.shape:
            raise InputError(f"block {b}: {idx.size} point indices but {grp.size} group ids")
        if idx.size and (idx.min() < 0 or idx.max() >= num_points):
            raise InputError(f"block {b}: point index outside 0..{num_points - 1}")
        if grp.size and grp.max() >= len(gsem):
            raise InputError(f"block {b}: group id {grp.max()} without a class "
                             f"({len(gsem)} given)")
        if not (grp >= 0).any():
            continue
        target, next_id = _block_targets(grp, gsem, vol[idx], vol_sem[idx], next_id,
                                         min_overlap, min_new_size)
        has = grp >= 0
        t = np.where(has, target[np.where(has, grp, 0)], -1)
        write = (t >= 0) & (vol[idx] < 0)
        vol[idx[write]] = t[write]
        vol_sem[idx[write]] = gsem[grp[write]]
    return vol


def join_shared_groups(room: np.ndarray,
                       blocks: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                       point_class: np.ndarray, min_share: float = 0.1) -> np.ndarray:
    """Join the room instances that one block group spans (instgs; after BlockMerging).

    A room instance's class is the majority of ``point_class`` over its points. For every
    block group ``g`` of class ``s_g``, the room instances of class ``s_g`` holding at least
    ``min_share`` of g's points are joined (connected components over all groups).

    Args:
        room: [N] int64 room instance ids from :func:`block_merging` (-1 = none).
        blocks: the ``(point_idx, group, group_class)`` triples given to
            :func:`block_merging`.
        point_class: [N] int class per point (e.g. the argmax of the averaged semantic
            probabilities).
        min_share: smallest share of a group's points an instance must hold to be joined
            (0 < min_share <= 1).

    Returns:
        [N] int64 room ids (-1 = none), 0..K'-1 in order of the smallest joined id.

    Raises:
        InputError: length mismatches or ``min_share`` outside (0, 1].
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    room = np.asarray(room, np.int64).reshape(-1)
    point_class = np.asarray(point_class, np.int64).reshape(-1)
    if point_class.shape != room.shape:
        raise InputError(f"{room.size} room ids but {point_class.size} point classes")
    if not 0 < min_share <= 1:
        raise InputError(f"min_share must be in (0, 1], got {min_share}")
    k = int(room.max()) + 1 if room.size else 0
    if k == 0:
        return room.copy()
    has = room >= 0
    cls = np.zeros(k, np.int64)  # majority point class per room id (ties: smaller class)
    c = int(point_class.max()) + 1
    pairs, cnt = np.unique(room[has] * c + point_class[has], return_counts=True)
    rid, rc = pairs // c, pairs % c
    order = np.lexsort((rc, -cnt, rid))
    first = order[np.r_[True, rid[order][1:] != rid[order][:-1]]]
    cls[rid[first]] = rc[first]
    src, dst = [], []
    for idx, grp, gsem in blocks:
        idx, grp, gsem = (np.asarray(a, np.int64) for a in (idx, grp, gsem))
        ok = grp >= 0
        if not ok.any():
            continue
        g, r = grp[ok], room[idx[ok]]
        size = np.bincount(g, minlength=len(gsem))
        sel = r >= 0
        gp, n = np.unique(g[sel] * k + r[sel], return_counts=True)
        gg, rr = gp // k, gp % k
        keep = (n >= min_share * size[gg]) & (cls[rr] == gsem[gg])
        gg, rr = gg[keep], rr[keep]
        # chain the instances each group keeps: its first one with every other
        head = np.full(len(gsem), -1)
        head[gg[::-1]] = rr[::-1]
        src.append(head[gg])
        dst.append(rr)
    src, dst = np.concatenate(src or [np.zeros(0, np.int64)]), np.concatenate(
        dst or [np.zeros(0, np.int64)])
    _, comp = connected_components(coo_matrix((np.ones(len(src)), (src, dst)), shape=(k, k)),
                                   directed=False)
    out = np.full_like(room, -1)
    # scipy numbers components by their smallest member; compact over the ids in use
    out[has] = np.unique(comp[room[has]], return_inverse=True)[1].reshape(-1)
    return out


def link_chunk_groups(coord: np.ndarray,
                      chunks: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                      min_share: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One block's groups from the groups of its forward passes (instgs).

    A block with more points than one pass takes is cut into disjoint random samples
    (chunks); each chunk's embeddings are grouped on their own, since the discriminative
    loss fixes distances within one pass only. The chunks sample the same objects, so a
    group of chunk a and a group of chunk b are the same object when each holds the nearest
    neighbours (in xyz, among the other chunk's grouped points) of at least ``min_share`` of
    the other's points and both have the same class (mutual majority). Linked groups are
    joined (connected components) into block groups.

    Args:
        coord: [N, 3] float room coordinates (metres).
        chunks: per chunk ``(point_idx [n] int, group [n] int (-1 = none), group_class [G]
            int)``, the point indices of different chunks disjoint.
        min_share: share of a group's points whose nearest neighbours must fall into the
            other group (0 < min_share <= 1).

    Returns:
        ``(point_idx [n] int64 sorted, group [n] int64 (-1 = none), group_class [G'] int64)``
        for the whole block, groups numbered by their first point.

    Raises:
        InputError: no chunk, repeated points across chunks, ``min_share`` outside (0, 1].
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    from .grouping import relabel_first_seen

    if not chunks:
        raise InputError("link_chunk_groups needs at least one chunk")
    if not 0 < min_share <= 1:
        raise InputError(f"min_share must be in (0, 1], got {min_share}")
    parts = [tuple(np.asarray(a, np.int64).reshape(-1) for a in c) for c in chunks]
    sizes = [len(gs) for _, _, gs in parts]
    off = np.r_[0, np.cumsum(sizes)]
    idx = np.concatenate([p[0] for p in parts])
    if len(np.unique(idx)) != len(idx):
        raise InputError("chunks of one block must not share points")
    grp = np.concatenate([np.where(g >= 0, g + off[k], -1) for k, (_, g, _) in enumerate(parts)])
    gsem = np.concatenate([p[2] for p in parts])
    share = {}  # (a, b) -> [G_a, G_b] counts of a's points whose nearest b point is in b's group
    for a, (ia, ga, _) in enumerate(parts):
        for b, (ib, gb, _) in enumerate(parts):
            fa, fb = ga >= 0, gb >= 0
            if a == b or not fa.any() or not fb.any():
                continue
            _, j = cKDTree(coord[ib[fb]]).query(coord[ia[fa]])
            cnt = np.zeros((sizes[a], sizes[b]), np.int64)
            np.add.at(cnt, (ga[fa], gb[fb][j]), 1)
            share[a, b] = cnt
    src, dst = [], []
    for (a, b), cnt in share.items():
        if a > b:
            continue
        back = share[b, a].T
        ok = ((cnt >= min_share * cnt.sum(1, keepdims=True)) & (cnt > 0)
              & (back >= min_share * back.sum(0, keepdims=True)) & (back > 0)
              & (parts[a][2][:, None] == parts[b][2][None, :]))
        s, t = np.nonzero(ok)
        src.append(s + off[a])
        dst.append(t + off[b])
    g_all = int(off[-1])
    src = np.concatenate(src or [np.zeros(0, np.int64)])
    dst = np.concatenate(dst or [np.zeros(0, np.int64)])
    _, comp = connected_components(coo_matrix((np.ones(len(src)), (src, dst)),
                                              shape=(g_all, g_all)), directed=False)
    order = np.argsort(idx, kind="stable")
    idx, grp = idx[order], grp[order]
    has = grp >= 0
    if not has.any():
        return idx, np.full(len(idx), -1, np.int64), np.zeros(0, np.int64)
    out = relabel_first_seen(np.where(has, comp[np.where(has, grp, 0)], -1))
    cls = np.zeros(int(out.max()) + 1, np.int64)
    cls[out[has]] = gsem[grp[has]]
    return idx, out, cls
