"""HAIS inference: one forward pass, hierarchical aggregation, intra-instance refinement,
no NMS (paper Sec. 3.5; thresholds from the official code, pointcloud-methods.md §P0 0.7).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from instgs.pointcloud.hais.model import HAIS, Proposals, collate_scenes

__all__ = ["HAISPrediction", "predict", "STAGES"]

#: Names of the timed inference stages, in order (seconds in ``HAISPrediction.timings``).
STAGES = ("voxelize", "backbone", "heads", "point_aggregation", "set_aggregation",
          "intra_instance", "postprocess", "total")


@dataclass
class HAISPrediction:
    """Result of :func:`predict` for one scene.

    Attributes:
        instances: list of ``instgs.pointcloud.evaluate.InstancePred(mask [N] bool, label
            int (ScanNet20 index), score float in (0, 1))``, sorted by descending score.
        semantic: [N] int64 predicted class per point.
        offsets: [N, 3] float32 predicted centre offsets (metres).
        num_clusters: clusters from point aggregation; num_proposals: after set aggregation.
        timings: seconds per stage (keys :data:`STAGES`).
    """

    instances: list
    semantic: np.ndarray
    offsets: np.ndarray
    num_clusters: int = 0
    num_proposals: int = 0
    timings: dict[str, float] = field(default_factory=dict)


@torch.no_grad()
def predict(model: HAIS, scene) -> HAISPrediction:
    """Segment the instances of one scene with a trained HAIS model.

    Pipeline: voxelise -> backbone -> semantic / offset heads -> point aggregation on
    ``x + dx`` (r_point, same predicted label, wall/floor excluded) -> set aggregation
    (Alg. 1; ``keep_fragments`` selects the code variant) -> intra-instance network ->
    keep points with mask logit > ``mask_logit_threshold``, drop proposals with score <=
    ``score_threshold`` or fewer than ``min_points`` (x ``point_fraction``) points. No NMS.

    Args:
        model: a :class:`HAIS` (switched to eval mode here).
        scene: ``PointScene`` (labels are not used).

    Returns:
        :class:`HAISPrediction`.

    Raises:
        InputError: empty scene (from collate).
    """
    from instgs.pointcloud.evaluate import InstancePred
    from instgs.pointcloud.ops import point_aggregation, set_aggregation

    model.eval()
    cfg = model.cfg
    t = {}
    t0 = tic = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal tic
        now = time.perf_counter()
        t[name] = now - tic
        tic = now

    batch = collate_scenes([scene], cfg)
    lap("voxelize")
    pf = model.backbone_features(batch)
    lap("backbone")
    sem_logits = model.semantic_head(pf)
    offsets = model.offset_head(pf)
    sem = sem_logits.argmax(1)
    lap("heads")
    shifted = (batch.coord + offsets).numpy()
    sem_np = sem.numpy()
    clusters = point_aggregation(shifted, sem_np, cfg.point_radius,
                                 ignore_classes=cfg.background_classes)
    lap("point_aggregation")
    proposals, labels = set_aggregation(
        clusters, shifted, sem_np, cfg.scaled_numpoint_mean, cfg.class_radius_mean,
        alpha=cfg.scaled_alpha, fragment_ratio=cfg.fragment_ratio,
        keep_fragment_ratio=cfg.keep_fragment_ratio,
        variant="code" if cfg.keep_fragments else "paper")
    props = Proposals.from_lists(proposals, labels)
    lap("set_aggregation")
    instances = []
    if props.num > 0:
        mask_logits, score_logits = model.intra(pf, batch.coord, props, mask_filter=True)
        lap("intra_instance")
        scores = torch.sigmoid(score_logits).numpy()
        keep = (mask_logits > cfg.mask_logit_threshold).numpy()
        pidx = props.point_idx.numpy()
        pid = props.proposal_id.numpy()
        n = batch.coord.shape[0]
        for k in range(props.num):
            if scores[k] <= cfg.score_threshold:
                continue
            pts = pidx[(pid == k) & keep]
            if len(pts) < cfg.scaled_min_points:
                continue
            mask = np.zeros(n, dtype=bool)
            mask[pts] = True
            instances.append(InstancePred(mask=mask, label=int(labels[k]),
                                          score=float(scores[k])))
        instances.sort(key=lambda p: -p.score)
    else:
        lap("intra_instance")
    lap("postprocess")
    t["total"] = time.perf_counter() - t0
    return HAISPrediction(instances=instances, semantic=sem_np.astype(np.int64),
                          offsets=offsets.numpy().astype(np.float32),
                          num_clusters=len(clusters), num_proposals=props.num, timings=t)
