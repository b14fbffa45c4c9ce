"""SSEN inference (seed 003 §III-C, §IV): semantic net (optionally averaged over rotations
about z) -> drop points predicted as background -> embedding net -> HDBSCAN on the
foreground voxel embeddings -> instances (majority class, confidence per ``score``).
No NMS and no other post-processing (paper).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from instgs.pointcloud.batch import collate_scenes
from instgs.pointcloud.prediction import Prediction, StageTimer
from instgs.pointcloud.ssen.model import SSEN

__all__ = ["predict", "semantic_probabilities", "STAGES"]

#: Timed inference stages, in order (seconds in ``Prediction.timings``).
STAGES = ("voxelize", "semantic", "embedding", "clustering", "postprocess", "total")


def _rotate_z(coord: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    centre = coord.mean(0)
    xy = coord[:, :2] - centre[:2]
    out = coord.copy()
    out[:, 0] = centre[0] + c * xy[:, 0] - s * xy[:, 1]
    out[:, 1] = centre[1] + s * xy[:, 0] + c * xy[:, 1]
    return out.astype(np.float32)


@torch.no_grad()
def semantic_probabilities(model: SSEN, scene, rotations: int = 1) -> torch.Tensor:
    """[N, C] float class probabilities, averaged over ``rotations`` copies of the scene
    rotated about z (through its mean) by ``2 pi k / rotations`` (paper: 10 rotations for
    its best test result; the angles are not given, evenly spaced is our choice)."""
    probs = None
    for k in range(rotations):
        sc = scene if k == 0 else replace(
            scene, coord=_rotate_z(np.asarray(scene.coord, np.float64), 2 * math.pi * k /
                                   rotations))
        p = model.semantic_logits(collate_scenes([sc], model.cfg)).softmax(1)
        probs = p if probs is None else probs + p
    return probs / rotations


def _cluster(cfg, emb, n: int) -> tuple[np.ndarray, np.ndarray]:
    """HDBSCAN labels and membership probabilities per point ([N] int64, -1 = none) from an
    :class:`~instgs.pointcloud.ssen.model.Embedding` (None = no foreground)."""
    from instgs.pointcloud.ops.grouping import hdbscan_labels

    labels = np.full(n, -1, dtype=np.int64)
    member = np.zeros(n)
    if emb is None:
        return labels, member
    idx = emb.point_idx.numpy()
    if cfg.cluster_on == "voxels":
        vl, vp = hdbscan_labels(emb.voxel_emb.numpy(), cfg.min_cluster_size, cfg.min_samples)
        p2v = emb.p2v.numpy()
        labels[idx], member[idx] = vl[p2v], vp[p2v]
    else:
        labels[idx], member[idx] = hdbscan_labels(emb.point_emb.numpy(), cfg.min_cluster_size,
                                                  cfg.min_samples)
    return labels, member


@torch.no_grad()
def predict(model: SSEN, scene) -> Prediction:
    """Segment the instances of one scene with a trained SSEN.

    Args:
        model: an :class:`SSEN` (switched to eval mode here).
        scene: ``PointScene`` (labels are not used).

    Returns:
        :class:`instgs.pointcloud.prediction.Prediction` with ``semantic`` [N] and
        ``arrays["embedding"]`` [N, d] float32 (0 on background points). An instance's class
        is the majority predicted class of its points; its score is set by ``cfg.score``.
        HDBSCAN noise points belong to no instance; instances with fewer than
        ``cfg.min_points`` points or a background majority are dropped.

    Raises:
        InputError: empty scene.
    """
    from instgs.pointcloud.evaluate import InstancePred
    from instgs.pointcloud.ops.grouping import clusters_to_instances

    model.eval()
    cfg = model.cfg
    t = StageTimer()
    batch = collate_scenes([scene], cfg)
    t.lap("voxelize")
    prob = semantic_probabilities(model, scene, cfg.tta_rotations)
    sem = prob.argmax(1)
    t.lap("semantic")
    fg = ~torch.isin(sem, torch.as_tensor(cfg.background_classes, dtype=torch.int64))
    emb = model.embed(batch, fg) if int(fg.sum()) >= 2 else None
    t.lap("embedding")
    n = batch.coord.shape[0]
    labels, member = _cluster(cfg, emb, n)
    t.lap("clustering")
    instances = []
    for pts, cls, score in clusters_to_instances(labels, prob.numpy(), cfg.min_points,
                                                 cfg.background_classes):
        if cfg.score == "hdbscan":
            score = float(member[pts].mean())
        elif cfg.score == "one":
            score = 1.0
        mask = np.zeros(n, dtype=bool)
        mask[pts] = True
        instances.append(InstancePred(mask=mask, label=cls, score=score))
    instances.sort(key=lambda p: -p.score)
    t.lap("postprocess")
    embedding = np.zeros((n, cfg.emb_dim), dtype=np.float32)
    if emb is not None:
        embedding[emb.point_idx.numpy()] = emb.point_emb.numpy()
    return Prediction(instances=instances, semantic=sem.numpy().astype(np.int64),
                      timings=t.finish(), arrays={"cluster": labels, "embedding": embedding})
