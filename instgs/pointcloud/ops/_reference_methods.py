"""Slow, readable twins of the method-specific fast paths (SSEN, 3D-QueryIS, MPNet).

Written as the papers state them (loops over scenes, instances, pairs and points) with the
same signatures and outputs as the fast code; only for tests on small inputs:

* :func:`discriminative_loss` -> ``instgs.pointcloud.losses.discriminative_loss``
* :func:`match_costs`, :func:`hungarian_match` -> ``instgs.pointcloud.ops.matching``
* :func:`mean_shift_labels` -> ``instgs.pointcloud.ops.grouping.mean_shift_labels``
  (Comaniciu & Meer's flat-kernel mean shift with scikit-learn's seeding and mode pruning)
* :func:`clusters_to_instances` -> ``instgs.pointcloud.ops.grouping.clusters_to_instances``
* :func:`block_merging` -> ``instgs.pointcloud.ops.blocks.block_merging`` (SGPN, per point)
* :func:`join_shared_groups` -> ``instgs.pointcloud.ops.blocks.join_shared_groups``
* :func:`semantic_regularizer`, :func:`instance_regularizer`, :func:`dice_loss` ->
  ``instgs.pointcloud.mpnet.memory`` (MPNet Eq. 3-4) and ``instgs.pointcloud.losses``
* :func:`farthest_point_sample`, :func:`ball_query`, :func:`three_nn_interpolate` ->
  ``instgs.pointcloud.pointnet2`` (PointNet++ CUDA ops, one centre at a time)
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import torch

__all__ = ["discriminative_loss", "match_costs", "hungarian_match", "mean_shift_labels",
           "clusters_to_instances", "block_merging", "join_shared_groups", "semantic_regularizer",
           "instance_regularizer", "dice_loss", "farthest_point_sample", "ball_query",
           "three_nn_interpolate"]


def discriminative_loss(emb, instance, batch=None, *, delta_pull, delta_push, hinge_power=1,
                        size_power=1.0, pull_weight=1.0, push_weight=1.0, reg_weight=0.0):
    """Per scene: pull, push, reg as in SSEN Eq. 1-4 / MPNet Eq. 6; mean over scenes.
    Returns ``(loss, logs)`` like the fast version (logs: pull, push, reg, instances)."""
    e = emb.double()
    b = torch.zeros_like(instance) if batch is None else batch
    per_scene, pulls, pushes, regs, counts = [], [], [], [], []
    for s in sorted(set(b.tolist())):
        ids = sorted({int(i) for i, bb in zip(instance.tolist(), b.tolist())
                      if bb == s and i >= 0})
        if not ids:
            continue
        mus, ls, sizes = [], [], []
        for i in ids:
            pts = [e[n] for n in range(len(instance)) if int(b[n]) == s and int(instance[n]) == i]
            mu = sum(pts) / len(pts)
            hinge = [max(0.0, float(torch.linalg.vector_norm(mu - p)) - delta_pull) ** hinge_power
                     for p in pts]
            mus.append(mu)
            ls.append(sum(hinge) / len(pts))
            sizes.append(len(pts))
        wsum = sum(n ** size_power for n in sizes)
        pull = sum((n ** size_power / wsum) * li for n, li in zip(sizes, ls))
        k = len(ids)
        push = 0.0
        if k >= 2:
            for i in range(k):
                for j in range(k):
                    if i != j:
                        d = float(torch.linalg.vector_norm(mus[i] - mus[j]))
                        push += max(0.0, 2 * delta_push - d) ** hinge_power
            push /= k * (k - 1)
        reg = sum(float(m.norm()) for m in mus) / k
        per_scene.append(pull_weight * pull + push_weight * push + reg_weight * reg)
        pulls.append(pull)
        pushes.append(push)
        regs.append(reg)
        counts.append(k)
    if not per_scene:
        return torch.tensor(0.0), {"pull": 0.0, "push": 0.0, "reg": 0.0, "instances": 0.0}
    n = len(per_scene)
    return torch.tensor(sum(per_scene) / n, dtype=torch.float64), {
        "pull": sum(pulls) / n, "push": sum(pushes) / n, "reg": sum(regs) / n,
        "instances": sum(counts) / n}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def match_costs(class_logits, mask_logits, gt_labels, gt_masks):
    """Eq. 5-6 of 3D-QueryIS entry by entry; returns an object with ``ce``, ``bce``,
    ``dice`` [K, T] float64 tensors."""
    K, N = mask_logits.shape
    T = gt_masks.shape[0]
    ce = torch.zeros(K, T, dtype=torch.float64)
    bce = torch.zeros(K, T, dtype=torch.float64)
    dice = torch.zeros(K, T, dtype=torch.float64)
    for k in range(K):
        z = [float(v) for v in class_logits[k]]
        mx = max(z)
        ex = [math.exp(v - mx) for v in z]
        prob = [v / sum(ex) for v in ex]
        m = [_sigmoid(float(v)) for v in mask_logits[k]]
        for t in range(T):
            g = [float(v) for v in gt_masks[t]]
            ce[k, t] = -prob[int(gt_labels[t])]
            bce[k, t] = -sum(gi * math.log(max(mi, 1e-300)) + (1 - gi) * math.log(
                max(1 - mi, 1e-300)) for mi, gi in zip(m, g)) / max(1, N)
            inter = sum(mi * gi for mi, gi in zip(m, g))
            dice[k, t] = 1 - (2 * inter + 1) / (sum(m) + sum(g) + 1)

    class _C:
        pass

    out = _C()
    out.ce, out.bce, out.dice = ce, bce, dice
    return out


def hungarian_match(cost):
    """Brute force over every injective assignment of the smaller side; returns the
    ``(rows, cols)`` of the cheapest one, sorted by row (small inputs only)."""
    c = np.asarray(cost, dtype=np.float64)
    K, T = c.shape
    best, best_pairs = math.inf, []
    if K >= T:
        for rows in itertools.permutations(range(K), T):
            s = sum(c[r, t] for t, r in enumerate(rows))
            if s < best - 1e-12:
                best, best_pairs = s, sorted(zip(rows, range(T)))
    else:
        for cols in itertools.permutations(range(T), K):
            s = sum(c[k, t] for k, t in enumerate(cols))
            if s < best - 1e-12:
                best, best_pairs = s, list(zip(range(K), cols))
    r = np.array([p[0] for p in best_pairs], dtype=np.int64)
    k = np.array([p[1] for p in best_pairs], dtype=np.int64)
    return r, k


def mean_shift_labels(emb, bandwidth, bin_seeding=True, min_bin_freq=1):
    """Flat-kernel mean shift: seeds (grid bins of the bandwidth, or every point), each
    seed moves to the mean of the points within ``bandwidth`` until it moves by at most
    1e-3 * bandwidth (300 iterations at most); modes sorted by window count (then by
    coordinates, descending) suppress later modes within ``bandwidth``; each point takes
    its nearest mode. Labels renumbered in first-seen order."""
    x = np.asarray(emb, dtype=np.float64)
    n = len(x)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    seeds = x
    if bin_seeding:
        bins = Counter(tuple(row) for row in np.round(x / bandwidth))
        seeds = np.array([b for b, f in bins.items() if f >= min_bin_freq]) * bandwidth
        if len(seeds) == n:
            seeds = x
    modes = {}
    for seed in seeds:
        mean = np.array(seed, dtype=np.float64)
        for it in range(301):
            inside = [p for p in x if np.sqrt(((p - mean) ** 2).sum()) <= bandwidth]
            if not inside:
                break
            old, mean = mean, np.mean(inside, axis=0)
            if np.sqrt(((mean - old) ** 2).sum()) <= 1e-3 * bandwidth or it == 300:
                break
        if inside:
            modes[tuple(mean)] = len(inside)
    ranked = sorted(modes.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
    kept = []
    for center, _ in ranked:
        c = np.array(center)
        if all(np.sqrt(((c - k) ** 2).sum()) > bandwidth for k in kept):
            kept.append(c)
    labels = [int(np.argmin([((p - k) ** 2).sum() for k in kept])) for p in x]
    order, out = {}, []
    for lab in labels:
        order.setdefault(lab, len(order))
        out.append(order[lab])
    return np.array(out, dtype=np.int64)


def clusters_to_instances(labels, sem_prob, min_points=1, ignore_classes=()):
    """Per cluster id (ascending): members, majority predicted class (ties: smallest
    class), mean probability of that class; small clusters and ignored classes dropped."""
    out = []
    labels = [int(v) for v in labels]
    for k in sorted({v for v in labels if v >= 0}):
        pts = [i for i, v in enumerate(labels) if v == k]
        votes = Counter(int(np.argmax(sem_prob[i])) for i in pts)
        top = max(votes.values())
        cls = min(c for c, v in votes.items() if v == top)
        if len(pts) < max(1, min_points) or cls in ignore_classes:
            continue
        out.append((np.array(pts, dtype=np.int64), cls,
                    float(sum(sem_prob[i][cls] for i in pts) / len(pts))))
    return out


def block_merging(num_points, blocks, min_overlap=7, min_new_size=30):
    """SGPN ``BlockMerging`` per point with dictionaries (see ``ops.blocks``)."""
    volume = {}
    volume_sem = {}
    next_id = 0
    for idx, grp, gsem in blocks:
        overlap: dict[int, Counter] = {}
        size: Counter = Counter()
        for p, g in zip(idx, grp):
            p, g = int(p), int(g)
            if g < 0:
                continue
            size[g] += 1
            if p in volume and volume_sem[p] == int(gsem[g]):
                overlap.setdefault(g, Counter())[volume[p]] += 1
        target = {}
        for g in range(len(gsem)):
            cnt = overlap.get(g, Counter())
            best = max(cnt.values()) if cnt else 0
            if best >= min_overlap:
                target[g] = min(i for i, v in cnt.items() if v == best)
            elif size[g] > min_new_size:
                target[g] = next_id
                next_id += 1
            else:
                target[g] = -1
        for p, g in zip(idx, grp):
            p, g = int(p), int(g)
            if g >= 0 and target[g] >= 0 and p not in volume:
                volume[p] = target[g]
                volume_sem[p] = int(gsem[g])
    return np.array([volume.get(i, -1) for i in range(num_points)], dtype=np.int64)


def join_shared_groups(room, blocks, point_class, min_share=0.1):
    """Loop twin of ``ops.blocks.join_shared_groups``: union-find with dictionaries."""
    room = [int(v) for v in room]
    ids = sorted({v for v in room if v >= 0})
    votes: dict[int, Counter] = {i: Counter() for i in ids}
    for v, c in zip(room, point_class):
        if v >= 0:
            votes[v][int(c)] += 1
    cls = {i: min(c for c, n in votes[i].items() if n == max(votes[i].values())) for i in ids}
    parent = {i: i for i in ids}

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for idx, grp, gsem in blocks:
        members: dict[int, list[int]] = {}
        for p, g in zip(idx, grp):
            if int(g) >= 0:
                members.setdefault(int(g), []).append(room[int(p)])
        for g, rs in members.items():
            share = Counter(r for r in rs if r >= 0)
            keep = sorted(r for r, n in share.items()
                          if n >= min_share * len(rs) and cls[r] == int(gsem[g]))
            for r in keep[1:]:
                a, b = find(keep[0]), find(r)
                parent[max(a, b)] = min(a, b)
    roots = sorted({find(i) for i in ids})
    new = {r: j for j, r in enumerate(roots)}
    return np.array([new[find(v)] if v >= 0 else -1 for v in room], dtype=np.int64)


def _dist(a, b) -> float:
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)))


def semantic_regularizer(feat, centroids, labels, margin=5.0, ignore_index=-100):
    """MPNet Eq. 4 point by point: hinge of (distance to the own centroid - sum of the
    distances to the others + m), averaged over the labelled points."""
    vals = []
    for f, y in zip(feat, labels.tolist()):
        if y == ignore_index:
            continue
        pos = _dist(f, centroids[y])
        neg = sum(_dist(f, c) for j, c in enumerate(centroids) if j != y)
        vals.append(max(0.0, pos - neg + margin))
    return torch.tensor(sum(vals) / len(vals) if vals else 0.0, dtype=torch.float64)


def instance_regularizer(pred, coord, instance, batch=None):
    """MPNet Eq. 3 instance by instance: mean over (block, instance) of the mean distance
    of its points' predicted centroids to its centroid."""
    b = [0] * len(instance) if batch is None else batch.tolist()
    keys = sorted({(bb, i) for bb, i in zip(b, instance.tolist()) if i >= 0})
    per = []
    for key in keys:
        pts = [n for n in range(len(instance)) if (b[n], int(instance[n])) == key]
        cen = [sum(float(coord[n][d]) for n in pts) / len(pts) for d in range(3)]
        per.append(sum(_dist(pred[n], cen) for n in pts) / len(pts))
    return torch.tensor(sum(per) / len(per) if per else 0.0, dtype=torch.float64)


def dice_loss(mask_logits, target):
    """3D-QueryIS Eq. 6 mask by mask: 1 - (2 sum(m g) + 1) / (sum m + sum g + 1)."""
    out = []
    for x, g in zip(mask_logits, target):
        m = [_sigmoid(float(v)) for v in x]
        gg = [float(v) for v in g]
        out.append(1 - (2 * sum(a * b for a, b in zip(m, gg)) + 1) / (sum(m) + sum(gg) + 1))
    return torch.tensor(out, dtype=torch.float64)


def _d2(a, b) -> float:
    return sum((float(x) - float(y)) ** 2 for x, y in zip(a, b))


def farthest_point_sample(xyz, npoint):
    """PointNet++ FPS per batch element: start at point 0, then repeatedly the point whose
    squared distance to the chosen set is largest (first index on ties). [B, S] int64."""
    out = []
    for pts in xyz.tolist():
        chosen = [0]
        dist = [math.inf] * len(pts)
        while len(chosen) < npoint:
            last = pts[chosen[-1]]
            dist = [min(d, _d2(p, last)) for d, p in zip(dist, pts)]
            chosen.append(max(range(len(pts)), key=lambda i: (dist[i], -i)))
        out.append(chosen)
    return torch.tensor(out, dtype=torch.int64)


def ball_query(radius, nsample, xyz, new_xyz):
    """PointNet++ ball query, centre by centre: the first ``nsample`` indices (ascending)
    with squared distance <= radius^2, padded with the first found (0 if none). [B, S, K]."""
    out = []
    for pts, centres in zip(xyz.tolist(), new_xyz.tolist()):
        rows = []
        for c in centres:
            found = [i for i, p in enumerate(pts) if _d2(p, c) <= radius * radius][:nsample]
            first = found[0] if found else 0
            rows.append(found + [first] * (nsample - len(found)))
        out.append(rows)
    return torch.tensor(out, dtype=torch.int64)


def three_nn_interpolate(unknown, known, known_feats):
    """PointNet++ ``three_interpolate``, point by point: the 3 nearest known points,
    weights 1 / (d^2 + 1e-8) normalised. [B, C, n]."""
    out = []
    for u_pts, k_pts, f in zip(unknown.tolist(), known.tolist(), known_feats.tolist()):
        cols = []
        for u in u_pts:
            near = sorted(range(len(k_pts)), key=lambda j: _d2(u, k_pts[j]))[:3]
            w = [1.0 / (_d2(u, k_pts[j]) + 1e-8) for j in near]
            cols.append([sum(wi * f[c][j] for wi, j in zip(w, near)) / sum(w)
                         for c in range(len(f))])
        out.append([list(r) for r in zip(*cols)])
    return torch.tensor(out, dtype=torch.float64)


def link_chunk_groups(coord, chunks, min_share=0.5):
    """Loop twin of ``ops.blocks.link_chunk_groups``: brute-force nearest neighbours,
    union-find with dictionaries."""
    gid = {}  # (chunk, group) -> global group
    for k, (_, _, gsem) in enumerate(chunks):
        for g in range(len(gsem)):
            gid[k, g] = len(gid)
    parent = list(range(len(gid)))

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    def nearest_groups(a, b):  # (group of a, group of b) -> count
        cnt: Counter = Counter()
        pb = [(int(p), int(g)) for p, g in zip(chunks[b][0], chunks[b][1]) if g >= 0]
        for p, g in zip(chunks[a][0], chunks[a][1]):
            if g < 0 or not pb:
                continue
            d = [float(np.sum((coord[p] - coord[q]) ** 2)) for q, _ in pb]
            cnt[int(g), pb[int(np.argmin(d))][1]] += 1
        return cnt

    for a in range(len(chunks)):
        for b in range(a + 1, len(chunks)):
            ab, ba = nearest_groups(a, b), nearest_groups(b, a)
            size_a = Counter(int(g) for g in chunks[a][1] if g >= 0)
            size_b = Counter(int(g) for g in chunks[b][1] if g >= 0)
            for (ga, gb), n in ab.items():
                back = ba.get((gb, ga), 0)
                if (n >= min_share * size_a[ga] and back > 0 and back >= min_share * size_b[gb]
                        and int(chunks[a][2][ga]) == int(chunks[b][2][gb])):
                    x, y = find(gid[a, ga]), find(gid[b, gb])
                    parent[max(x, y)] = min(x, y)
    rows = sorted((int(p), find(gid[k, int(g)]) if g >= 0 else -1, k, int(g))
                  for k, (idx, grp, _) in enumerate(chunks) for p, g in zip(idx, grp))
    new: dict[int, int] = {}
    cls = []
    out = []
    for _, root, k, g in rows:
        if root < 0:
            out.append(-1)
            continue
        if root not in new:
            new[root] = len(new)
            cls.append(int(chunks[k][2][g]))
        out.append(new[root])
    return (np.array([r[0] for r in rows], np.int64), np.array(out, np.int64),
            np.array(cls, np.int64))
