"""MPNet inference (seed 002 §3.6 / §4; grouping and merging as in ASIS / SGPN):
the room is cut into 1 m blocks with a 0.5 m stride; every block runs through the network
(in chunks of ``block_points``); per block, mean shift (bandwidth sigma_v) groups the
embeddings of the points not predicted as background (``group_unit="chunk"``: per chunk,
the chunks' groups then linked into block groups by nearest neighbours); SGPN
BlockMerging joins the block groups in snake order, then the room instances one block
group spans are joined (``merge_join_share``, instgs); the semantic probabilities of a
point are averaged over its blocks; an instance's class is its majority class and its
confidence the mean probability of that class (the paper gives neither). No NMS.
"""

from __future__ import annotations

import numpy as np
import torch

from instgs.core.checks import InputError
from instgs.pointcloud.mpnet.model import MPNet, block_features, block_local
from instgs.pointcloud.prediction import Prediction, StageTimer

__all__ = ["predict", "block_chunks", "STAGES"]

#: Timed inference stages, in order (seconds in ``Prediction.timings``).
STAGES = ("blocks", "network", "mean_shift", "block_merging", "postprocess", "total")


def block_chunks(idx: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Split a block's point indices into chunks of exactly ``size`` points: a random
    order cut into ``ceil(n / size)`` parts, each filled up by drawing its own points again.

    Args:
        idx: [n] int64 point indices (n >= 1). size: points per chunk.
        rng: generator of the order and the fill.

    Returns:
        list of [size] int64 arrays; together they contain every index at least once.
    """
    perm = rng.permutation(idx)
    parts = np.array_split(perm, int(np.ceil(len(perm) / size)))
    return [np.concatenate([p, rng.choice(p, size - len(p))]) if len(p) < size else p
            for p in parts]


@torch.no_grad()
def _run_network(model: MPNet, scene, chunks: list[np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per chunk: ([K, P, C] probabilities, [K, P, c'] embeddings)."""
    from instgs.pointcloud.data.transforms import room_coordinates

    cfg = model.cfg
    room = room_coordinates(scene.coord)
    probs, embs = [], []
    for s in range(0, len(chunks), cfg.infer_batch):
        part = chunks[s:s + cfg.infer_batch]
        xyz = torch.as_tensor(np.stack([block_local(scene.coord[c]) for c in part]))
        feats = torch.as_tensor(np.stack([block_features(scene.color[c], room[c], cfg)
                                          for c in part]))
        out = model(xyz, feats)
        probs.append(out["logits"].softmax(-1).numpy())
        embs.append(out["embedding"].numpy())
    return np.concatenate(probs), np.concatenate(embs)


def _chunk_rows(chunk: np.ndarray, prob: np.ndarray, emb: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A chunk's distinct points (sorted) with the outputs of their first copy."""
    uniq, first = np.unique(chunk, return_index=True)
    return uniq, prob[first], emb[first]


def _block_groups(cfg, idx: np.ndarray, prob: np.ndarray, emb: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean shift on one block's (or chunk's) foreground embeddings.

    Returns:
        (idx [n], group [n] int64 (-1 = background), class [G] int64).
    """
    from instgs.pointcloud.ops.grouping import mean_shift_labels

    pred = prob.argmax(1)
    fg = ~np.isin(pred, cfg.no_instance_classes)
    grp = np.full(len(idx), -1, dtype=np.int64)
    if fg.sum() >= 2:
        grp[fg] = mean_shift_labels(emb[fg], cfg.mean_shift_bandwidth)
    G = int(grp.max()) + 1
    gsem = np.zeros(G, dtype=np.int64)
    for g in range(G):
        gsem[g] = np.bincount(pred[grp == g]).argmax()
    return idx, grp, gsem


def _room_outputs(n: int, cfg, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point over all chunks: ([n, C'] summed probabilities, [n] chunks holding it,
    [n, c'] embedding of the first chunk holding it)."""
    prob_sum = np.zeros((n, cfg.out_classes))
    hits = np.zeros(n)
    embedding = np.zeros((n, cfg.emb_dim), dtype=np.float32)
    seen = np.zeros(n, dtype=bool)
    for uniq, c_prob, c_emb in rows:
        np.add.at(prob_sum, uniq, c_prob)
        hits[uniq] += 1
        new = ~seen[uniq]
        embedding[uniq[new]] = c_emb[new]
        seen[uniq] = True
    return prob_sum, hits, embedding


def _groups(cfg, coord: np.ndarray, blocks: list[np.ndarray], owner: list[int], rows
            ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Mean-shift groups per block (``group_unit``): per chunk then linked
    (:func:`~instgs.pointcloud.ops.blocks.link_chunk_groups`), or on the block's points
    with the outputs of the last chunk holding each."""
    from instgs.pointcloud.ops.blocks import link_chunk_groups

    if cfg.group_unit == "chunk":
        per_chunk = [_block_groups(cfg, *r) for r in rows]
        own = np.asarray(owner)
        return [link_chunk_groups(coord, [per_chunk[k] for k in np.flatnonzero(own == b)],
                                  cfg.chunk_link_share) for b in range(len(blocks))]
    blk_prob = [np.zeros((len(idx), cfg.out_classes)) for idx in blocks]
    blk_emb = [np.zeros((len(idx), cfg.emb_dim)) for idx in blocks]
    for k, (uniq, c_prob, c_emb) in enumerate(rows):
        pos = np.searchsorted(blocks[owner[k]], uniq)
        blk_prob[owner[k]][pos] = c_prob
        blk_emb[owner[k]][pos] = c_emb
    return [_block_groups(cfg, idx, blk_prob[b], blk_emb[b]) for b, idx in enumerate(blocks)]


@torch.no_grad()
def predict(model: MPNet, scene, seed: int = 0) -> Prediction:
    """Segment the instances of one room with a trained MPNet.

    Args:
        model: an :class:`MPNet` (switched to eval mode here).
        scene: ``PointScene`` (labels are not used).
        seed: seed of the chunking / filling of the blocks.

    Returns:
        :class:`instgs.pointcloud.prediction.Prediction` with ``semantic`` [N] (argmax
        over the label space's classes; an "other object" class of ``cfg.other_class``
        only removes points from the instances) and
        ``arrays["embedding"]`` [N, c'] (from the first block holding each point),
        ``arrays["cluster"]`` [N] (merged room ids, -1 none).

    Raises:
        InputError: empty scene.
    """
    from instgs.pointcloud.evaluate import InstancePred
    from instgs.pointcloud.ops.blocks import block_merging, join_shared_groups, room_blocks
    from instgs.pointcloud.ops.grouping import clusters_to_instances

    model.eval()
    cfg = model.cfg
    n = scene.num_points
    if n == 0:
        raise InputError(f"scene {scene.name} has no points", None, "check the input files")
    t = StageTimer()
    rng = np.random.default_rng(seed)
    blocks = room_blocks(scene.coord, cfg.block_size, cfg.block_stride)
    chunks, owner = [], []
    for b, idx in enumerate(blocks):
        for c in block_chunks(idx, cfg.block_points, rng):
            chunks.append(c)
            owner.append(b)
    t.lap("blocks")
    probs, embs = _run_network(model, scene, chunks)
    t.lap("network")
    rows = [_chunk_rows(c, probs[k], embs[k]) for k, c in enumerate(chunks)]
    prob_sum, hits, embedding = _room_outputs(n, cfg, rows)
    groups = _groups(cfg, scene.coord, blocks, owner, rows)
    t.lap("mean_shift")
    labels = block_merging(n, groups, cfg.merge_min_overlap, cfg.merge_min_new_size)
    prob = prob_sum / np.maximum(hits, 1)[:, None]
    if cfg.merge_join_share > 0:
        labels = join_shared_groups(labels, groups, prob.argmax(1), cfg.merge_join_share)
    t.lap("block_merging")
    instances = []
    for pts, cls, score in clusters_to_instances(labels, prob, cfg.min_points,
                                                 cfg.no_instance_classes):
        mask = np.zeros(n, dtype=bool)
        mask[pts] = True
        instances.append(InstancePred(mask=mask, label=cls, score=score))
    instances.sort(key=lambda p: -p.score)
    t.lap("postprocess")
    semantic = prob[:, :cfg.num_classes].argmax(1).astype(np.int64)
    return Prediction(instances=instances, semantic=semantic,
                      timings=t.finish(), arrays={"embedding": embedding, "cluster": labels})
