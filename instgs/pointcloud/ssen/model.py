"""SSEN network ("SSEN: Spatial Semantic Embedding Network", seed 003 §II-III;
pointcloud-methods.md §P3): a semantic sparse UNet, background filtering by its prediction,
an embedding sparse UNet on the remaining points, the p-weighted hinge discriminative loss.

Both networks are the shared PointGroup-style :class:`SparseBackbone` (the paper's
MinkUNet34 is a residual UNet of the same family; sizes come from the config). The semantic
net ends in ``MLPHead -> C`` logits, the embedding net in ``Linear(m, d)`` (code: a 1x1
conv to ``emb_dim``). The paper pre-trains the semantic net separately; here one loss trains
both (their parameters are disjoint, so this equals training them side by side).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from instgs.pointcloud.backbone import SparseBackbone
from instgs.pointcloud.batch import PointBatch, check_trainable_grid, coarse_sites, sparse_forward
from instgs.pointcloud.heads import MLPHead
from instgs.pointcloud.losses import discriminative_loss
from instgs.pointcloud.ssen.config import SSENConfig

__all__ = ["SSEN", "Embedding"]


@dataclass
class Embedding:
    """Embedding-network output on the foreground points of a batch.

    Attributes:
        point_idx: [P] int64 indices (into the batch) of the foreground points.
        point_emb: [P, d] float embedding per foreground point.
        voxel_emb: [V, d] float embedding per foreground voxel.
        p2v: [P] int64 voxel of each foreground point.
    """

    point_idx: torch.Tensor
    point_emb: torch.Tensor
    voxel_emb: torch.Tensor
    p2v: torch.Tensor


class SSEN(nn.Module):
    """SSEN (semantic net + embedding net).

    Args:
        cfg: :class:`SSENConfig` (``instgs.pointcloud.presets.load_setup("ssen-tiny").ssen``
            on a CPU).

    ``semantic_logits(batch) -> [N, C]``; ``embed(batch, fg) -> Embedding``;
    ``loss(batch, progress) -> (loss, logs)``. Inference:
    :func:`instgs.pointcloud.ssen.inference.predict`.
    """

    def __init__(self, cfg: SSENConfig):
        super().__init__()
        self.cfg = cfg
        in_ch = 6 if cfg.use_coords else 3
        m = cfg.width
        self.sem_backbone = SparseBackbone(in_ch, m, cfg.levels, cfg.block_reps,
                                           key_prefix="sem")
        self.semantic_head = MLPHead(m, m, cfg.num_classes)
        self.emb_backbone = SparseBackbone(in_ch, m, cfg.levels, cfg.block_reps,
                                           key_prefix="emb")
        self.embedding_head = nn.Linear(m, cfg.emb_dim)

    def semantic_logits(self, batch: PointBatch) -> torch.Tensor:
        """[N, C] float class logits per point (the semantic network)."""
        pf, _ = sparse_forward(self.sem_backbone, batch.feats, batch.grid, batch.num_scenes)
        return self.semantic_head(pf)

    def foreground_grid(self, batch: PointBatch, fg: torch.Tensor):
        """``(point_idx [P], VoxelGrid)`` of the points where ``fg [N] bool`` holds."""
        from instgs.pointcloud.voxelize import voxelize

        idx = torch.nonzero(fg).squeeze(1)
        return idx, voxelize(batch.coord[idx], self.cfg.voxel_size,
                             batch=batch.batch_ids[idx], align=2 ** (self.cfg.levels - 1))

    def embed(self, batch: PointBatch, fg: torch.Tensor) -> Embedding:
        """Run the embedding network on the foreground points ``fg [N] bool`` (at least
        one). Returns :class:`Embedding` (voxel and point embeddings)."""
        idx, grid = self.foreground_grid(batch, fg)
        pf, out = sparse_forward(self.emb_backbone, batch.feats[idx], grid, batch.num_scenes)
        return Embedding(idx, self.embedding_head(pf), self.embedding_head(out.features),
                         grid.p2v)

    def _trainable_fg(self, batch: PointBatch, fg: torch.Tensor) -> bool:
        """False when the foreground is empty or fits one coarse cell (BatchNorm in
        training would see one value per channel): the step then skips L_emb."""
        if not bool(fg.any()):
            return False
        _, grid = self.foreground_grid(batch, fg)
        return int(coarse_sites(grid.spconv_indices(), self.cfg.levels).sum()) >= 2

    def loss(self, batch: PointBatch, progress: float) -> tuple[torch.Tensor, dict[str, float]]:
        """``L = semantic_weight * CE + L_inter + gamma_intra * L_intra`` (Eq. 1).

        The discriminative part runs on the points left after removing the background
        classes (GT or predicted labels, ``train_bg_filter``); points without an instance
        (unannotated, or GT background kept by a wrong prediction) are ignored (code).

        Returns:
            ``(loss, logs)`` with ``seg``, ``pull``, ``push``, ``instances``, ``loss``.
        """
        cfg = self.cfg
        if self.training:
            check_trainable_grid(batch.grid, cfg.levels, cfg.voxel_size, batch.names)
        logits = self.semantic_logits(batch)
        valid = batch.semantic != -100
        l_seg = (F.cross_entropy(logits, batch.semantic, ignore_index=-100) if valid.any()
                 else logits.sum() * 0.0)
        labels = batch.semantic if cfg.train_bg_filter == "gt" else logits.detach().argmax(1)
        bg = torch.as_tensor(cfg.background_classes, dtype=torch.int64)
        fg = ~torch.isin(labels, bg)
        loss = cfg.semantic_weight * l_seg
        logs = {"seg": float(l_seg.detach())}
        if self._trainable_fg(batch, fg):
            emb = self.embed(batch, fg)
            l_dis, dl = discriminative_loss(
                emb.point_emb, batch.instance[emb.point_idx], batch.batch_ids[emb.point_idx],
                delta_pull=cfg.delta_inter, delta_push=cfg.delta_intra, hinge_power=1,
                size_power=cfg.size_power, pull_weight=1.0, push_weight=cfg.gamma_intra)
            loss = loss + l_dis
            logs.update(pull=dl["pull"], push=dl["push"], instances=dl["instances"])
        logs["loss"] = float(loss.detach())
        return loss, logs
