"""3D-QueryIS network (query-based 3D instance segmentation, seed 001 §3; pointcloud-methods.md
§P1): sparse UNet -> representative point generation (RPG) from decoder layer t -> K
learnable queries updated by a transformer decoder attending to the J representative points
-> class head (G + 1) and mask-embedding head; masks are dot products with the per-point
features. Training: Hungarian matching (scipy) with the CE / BCE / Dice costs of Eq. 5-6 and
the loss of Eq. 7; inference: the score s_k of Eq. 8, no NMS
(:mod:`instgs.pointcloud.queryis.inference`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from instgs.pointcloud.backbone import SparseBackbone, unet_widths
from instgs.pointcloud.batch import PointBatch, check_trainable_grid, sparse_forward
from instgs.pointcloud.losses import dice_loss
from instgs.pointcloud.ops.matching import hungarian_match, match_costs
from instgs.pointcloud.queryis.config import QueryISConfig

__all__ = ["QueryIS", "QueryOutput", "gt_instances"]


@dataclass
class QueryOutput:
    """Predictions of every decoder layer (last = final).

    Attributes:
        class_logits: per layer [B, K, G+1] float (last = "no object").
        mask_logits: per layer, per scene [K, N_b] float per-point mask logits.
        point_feats: [N, C] float per-point features F.
    """

    class_logits: list[torch.Tensor]
    mask_logits: list[list[torch.Tensor]]
    point_feats: torch.Tensor


def gt_instances(semantic: torch.Tensor, instance: torch.Tensor,
                 instance_classes: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """GT instances of one scene for the matcher.

    An instance's class is the majority semantic label of its points (-100 ignored); only
    instances of ``instance_classes`` are kept (the others are "no object").

    Args:
        semantic: [N] int64 class per point (-100 = none). instance: [N] int64 (< 0 none).
        instance_classes: label-space classes with instances, in query-class order.

    Returns:
        ``(labels [T] int64 in 0..G-1, masks [T, N] float32)``.
    """
    n = semantic.shape[0]
    pos = {c: g for g, c in enumerate(instance_classes)}
    labels, masks = [], []
    for i in torch.unique(instance[instance >= 0]).tolist():
        m = instance == i
        s = semantic[m]
        s = s[s >= 0]
        if s.numel() == 0:
            continue
        c = int(torch.bincount(s).argmax())
        if c in pos:
            labels.append(pos[c])
            masks.append(m.float())
    if not labels:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, n)
    return torch.tensor(labels, dtype=torch.int64), torch.stack(masks)


class QueryIS(nn.Module):
    """3D-QueryIS.

    Args:
        cfg: :class:`QueryISConfig` (``load_setup("queryis-tiny").queryis`` on a CPU).

    ``forward(batch) -> QueryOutput``; ``loss(batch, progress) -> (loss, logs)``.
    """

    def __init__(self, cfg: QueryISConfig):
        super().__init__()
        self.cfg = cfg
        m, d = cfg.width, cfg.model_dim
        self.backbone = SparseBackbone(6 if cfg.use_coords else 3, m, cfg.levels,
                                       cfg.block_reps)
        w_t = unet_widths(m, cfg.levels)[cfg.levels - 1 - cfg.rpg_layer]
        self.rpg_mlp = nn.Sequential(nn.Linear(w_t, d), nn.ReLU(inplace=True), nn.Linear(d, d))
        self.rpg_act = nn.Linear(d, cfg.num_points)  # E of Eq. 1 (sigmoid applied in forward)
        self.query = nn.Embedding(cfg.num_queries, d)
        self.decoder = nn.ModuleList([
            nn.TransformerDecoderLayer(d, cfg.heads, cfg.ffn_dim or 4 * d, cfg.dropout,
                                       batch_first=True) for _ in range(cfg.dec_layers)])
        self.out_norm = nn.LayerNorm(d)
        self.class_head = nn.Linear(d, cfg.num_query_classes + 1)
        self.mask_head = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, d),
                                       nn.ReLU(inplace=True), nn.Linear(d, m))

    def representative_points(self, dec) -> torch.Tensor:
        """RPG (Eq. 1-2): ``O = MLP(dec)``, ``Z = sigmoid(E(O))^T``, ``s_j = z_j O``
        (divided by ``sum_m z_jm`` when ``rpg_normalize``), per scene.

        Args:
            dec: SparseConvTensor of decoder layer t (M voxels, batch ids in column 0).

        Returns:
            [B, J, d] float.
        """
        emb = self.rpg_mlp(dec.features)  # O of Eq. 1
        Z = torch.sigmoid(self.rpg_act(emb))  # [M, J]
        b = dec.indices[:, 0].long()
        B = int(dec.batch_size)
        out = []
        for i in range(B):
            sel = b == i
            z, o = Z[sel], emb[sel]
            s = z.T @ o
            if self.cfg.rpg_normalize:
                s = s / (z.sum(0)[:, None] + 1e-6)
            out.append(s)
        return torch.stack(out)

    def forward(self, batch: PointBatch) -> QueryOutput:
        F_pts, out = sparse_forward(self.backbone, batch.feats, batch.grid, batch.num_scenes)
        S = self.representative_points(out.decoder[self.cfg.rpg_layer])
        q = self.query.weight[None].expand(S.shape[0], -1, -1)
        offs = batch.offsets.tolist()
        cls, masks = [], []
        for layer in self.decoder:
            q = layer(q, S)
            qn = self.out_norm(q)
            cls.append(self.class_head(qn))
            emb = self.mask_head(qn)  # [B, K, C]
            masks.append([emb[b] @ F_pts[offs[b]:offs[b + 1]].T for b in range(len(offs) - 1)])
        return QueryOutput(cls, masks, F_pts)

    def _scene_loss(self, logits: torch.Tensor, mask_logits: torch.Tensor, gt_lab: torch.Tensor,
                    gt_mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 7 for one scene and one decoder layer (matching inside)."""
        cfg = self.cfg
        G = cfg.num_query_classes
        rows, cols = hungarian_match(match_costs(logits, mask_logits, gt_lab, gt_mask).total(
            cfg.w_ce, cfg.w_bce, cfg.w_dice))
        target = torch.full((logits.shape[0],), G, dtype=torch.int64)
        target[torch.as_tensor(rows)] = gt_lab[torch.as_tensor(cols)]
        weight = torch.ones(G + 1)
        weight[G] = cfg.no_object_weight
        l_ce = F.cross_entropy(logits, target, weight=weight)
        if len(rows):
            pm, tm = mask_logits[torch.as_tensor(rows)], gt_mask[torch.as_tensor(cols)]
            l_bce = F.binary_cross_entropy_with_logits(pm, tm, reduction="none").mean(1).mean()
            l_dice = dice_loss(pm, tm).mean()
        else:
            l_bce = l_dice = mask_logits.sum() * 0.0
        loss = cfg.w_ce * l_ce + cfg.w_bce * l_bce + cfg.w_dice * l_dice
        return loss, {"ce": float(l_ce.detach()), "bce": float(l_bce.detach()),
                      "dice": float(l_dice.detach()), "matched": float(len(rows))}

    def loss(self, batch: PointBatch, progress: float) -> tuple[torch.Tensor, dict[str, float]]:
        """Hungarian loss (Eq. 5-7), averaged over the scenes, summed over the decoder
        layers when ``aux_loss`` (else the last layer only).

        Returns:
            ``(loss, logs)``: logs of the last layer (``ce``, ``bce``, ``dice``,
            ``matched``) and ``loss``.
        """
        cfg = self.cfg
        if self.training:
            check_trainable_grid(batch.grid, cfg.levels, cfg.voxel_size, batch.names)
        out = self(batch)
        offs = batch.offsets.tolist()
        gts = [gt_instances(batch.semantic[offs[b]:offs[b + 1]],
                            batch.instance[offs[b]:offs[b + 1]], cfg.classes.instance_classes)
               for b in range(len(offs) - 1)]
        layers = range(len(self.decoder)) if cfg.aux_loss else [len(self.decoder) - 1]
        total = out.point_feats.sum() * 0.0
        logs: dict[str, float] = {}
        for li in layers:
            per = [self._scene_loss(out.class_logits[li][b], out.mask_logits[li][b], *gts[b])
                   for b in range(len(gts))]
            total = total + torch.stack([p[0] for p in per]).mean()
            logs = {k: float(np.mean([p[1][k] for p in per])) for k in per[0][1]}
        logs["loss"] = float(total.detach())
        return total, logs
