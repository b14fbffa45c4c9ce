"""3D-QueryIS inference (seed 001 §3.4, Eq. 8): every query is an instance or background;
``c_k`` = the highest probability among the G real classes, ``b_k = m_k > tau``,
``s_k = c_k * sum(m_k b_k) / sum(b_k)``. No NMS, no clustering.
"""

from __future__ import annotations

import numpy as np
import torch

from instgs.pointcloud.batch import collate_scenes, sparse_forward
from instgs.pointcloud.prediction import Prediction, StageTimer
from instgs.pointcloud.queryis.model import QueryIS

__all__ = ["predict", "query_scores", "STAGES"]

#: Timed inference stages, in order (seconds in ``Prediction.timings``).
STAGES = ("voxelize", "backbone", "rpg", "decoder", "masks", "postprocess", "total")


def query_scores(class_logits: torch.Tensor, mask_logits: torch.Tensor, tau: float = 0.5
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 8 for K queries of one scene.

    Args:
        class_logits: [K, G+1] float (last = no object).
        mask_logits: [K, N] float.
        tau: mask threshold (paper 0.5).

    Returns:
        ``(label [K] int64 in 0..G-1, score [K] float, binary masks [K, N] bool)``;
        ``score = c_k * mean(m_k over b_k)`` and 0 for an empty ``b_k``.
    """
    prob = class_logits.softmax(-1)[:, :-1]
    c, label = prob.max(1)
    m = torch.sigmoid(mask_logits)
    b = m > tau
    inside = (m * b).sum(1)
    count = b.sum(1)
    score = torch.where(count > 0, c * inside / count.clamp_min(1), torch.zeros_like(c))
    return label, score, b


@torch.no_grad()
def predict(model: QueryIS, scene) -> Prediction:
    """Segment the instances of one scene with a trained 3D-QueryIS.

    Args:
        model: a :class:`QueryIS` (switched to eval mode here).
        scene: ``PointScene`` (labels are not used).

    Returns:
        :class:`instgs.pointcloud.prediction.Prediction` with up to K instances (queries
        with an empty binary mask or fewer than ``cfg.min_points`` points dropped; the
        label is the label-space class of the query's most likely real class) and
        ``semantic = None`` (no semantic branch).

    Raises:
        InputError: empty scene.
    """
    from instgs.pointcloud.evaluate import InstancePred

    model.eval()
    cfg = model.cfg
    t = StageTimer()
    batch = collate_scenes([scene], cfg)
    t.lap("voxelize")
    F_pts, out = sparse_forward(model.backbone, batch.feats, batch.grid, 1)
    t.lap("backbone")
    S = model.representative_points(out.decoder[cfg.rpg_layer])
    t.lap("rpg")
    q = model.query.weight[None]
    for layer in model.decoder:
        q = layer(q, S)
    qn = model.out_norm(q)[0]
    logits = model.class_head(qn)
    t.lap("decoder")
    mask_logits = model.mask_head(qn) @ F_pts.T
    label, score, b = query_scores(logits, mask_logits, cfg.mask_threshold)
    t.lap("masks")
    classes = cfg.classes.instance_classes
    keep = b.sum(1) >= cfg.min_points
    instances = [InstancePred(mask=b[k].numpy(), label=int(classes[int(label[k])]),
                              score=float(score[k])) for k in torch.nonzero(keep)[:, 0].tolist()]
    instances.sort(key=lambda p: -p.score)
    t.lap("postprocess")
    return Prediction(instances=instances, semantic=None, timings=t.finish(),
                      arrays={"query_scores": score.numpy().astype(np.float32)})
