"""HAIS network: sparse UNet backbone, semantic + offset heads, point aggregation proposals,
intra-instance prediction network (mask + certainty score).

Chen et al., "Hierarchical Aggregation for 3D Instance Segmentation", ICCV 2021, Sec. 3
(pointcloud-methods.md §P0). Architecture details the paper omits follow the official
``hustvl/HAIS`` code (reference reading only; no code copied).

Packed batches: the points of B scenes are concatenated; ``offsets [B+1]`` int64 is the CSR
row pointer (leading 0) and instance ids are made globally unique.

BatchNorm and tiny inputs. Training-mode BatchNorm needs at least two values per channel.
The intra-instance UNet normalises over the voxels of all proposals of a step, at every
level, so a step whose only proposal fits inside one cell of the UNet's coarsest level
(e.g. 14 points within 4 cm, re-voxelised at 5 cm) raised ``Expected more than 1 value per
channel when training``. The official HAIS code has no guard (its batches of 4 full scenes
always give many proposals). Such a proposal carries no mask information (all its points
share one coarse cell), so :meth:`HAIS.make_proposals` drops these *degenerate* proposals
in training (:meth:`IntraInstanceNet.degenerate`); every remaining proposal then has >= 2
sites at every level. A training batch whose points fit in one cell of the backbone's
coarsest level is bad input (:class:`InputError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from instgs.pointcloud.backbone import SparseBackbone, SparseUNet, make_sparse_tensor, unet_widths
from instgs.pointcloud.batch import PointBatch, coarse_sites, collate_scenes
from instgs.pointcloud.hais import losses as L
from instgs.pointcloud.hais.config import HAISConfig
from instgs.pointcloud.heads import MLPHead

__all__ = ["HAIS", "HAISBatch", "collate_scenes", "Proposals", "coarse_sites"]

#: The packed batch of HAIS (the shared :class:`instgs.pointcloud.batch.PointBatch`).
HAISBatch = PointBatch


@dataclass
class Proposals:
    """Packed proposals: ``point_idx [P]`` int64 points, ``proposal_id [P]`` int64 owner in
    0..K-1, ``labels [K]`` int64 semantic class, ``num`` = K; ``dropped``: degenerate
    proposals removed in training (see :meth:`IntraInstanceNet.degenerate`)."""

    point_idx: torch.Tensor
    proposal_id: torch.Tensor
    labels: torch.Tensor
    num: int
    dropped: int = 0

    @classmethod
    def from_lists(cls, clusters: Sequence[np.ndarray], labels: Sequence[int]) -> Proposals:
        if len(clusters) == 0:
            e = torch.zeros(0, dtype=torch.int64)
            return cls(e, e.clone(), e.clone(), 0)
        sizes = torch.tensor([len(c) for c in clusters], dtype=torch.int64)
        idx = torch.as_tensor(np.concatenate([np.asarray(c, dtype=np.int64) for c in clusters]))
        pid = torch.repeat_interleave(torch.arange(len(clusters)), sizes)
        return cls(idx, pid, torch.as_tensor(np.asarray(labels, dtype=np.int64)), len(clusters))

    def sizes(self) -> torch.Tensor:
        return torch.bincount(self.proposal_id, minlength=self.num)


class IntraInstanceNet(nn.Module):
    """HAIS intra-instance prediction network (Sec. 3.4, Fig. 5; architecture from code).

    Each proposal's points are centred on their mean and re-voxelised on their own grid of
    edge ``max(intra_voxel_size, extent / (fullscale - 0.01))`` (so it fits ``fullscale``
    voxels), features = mean of the backbone point features, then a small sparse UNet
    ``[m, 2m]`` -> BN -> ReLU. Mask head ``Linear(m,m) -> ReLU -> Linear(m,1)`` per point
    (voxel features gathered back to points); score head: features of points with
    ``sigmoid(mask) < 0.5`` zeroed (when ``mask_filter``), max-pooled per proposal,
    ``Linear(m, 1)`` -> logit of the certainty score.
    """

    def __init__(self, cfg: HAISConfig):
        super().__init__()
        m = cfg.width
        self.cfg = cfg
        self.unet = SparseUNet(unet_widths(m, cfg.intra_levels), cfg.intra_block_reps,
                               key_prefix="intra")
        self.out_bn = nn.BatchNorm1d(m, eps=1e-4, momentum=0.1)
        self.mask_head = nn.Sequential(nn.Linear(m, m), nn.ReLU(inplace=True), nn.Linear(m, 1))
        self.score_head = nn.Linear(m, 1)

    def voxelize_proposals(self, coord: torch.Tensor, props: Proposals):
        """Each proposal on its own grid (batch id = proposal id), as :meth:`forward` uses it.

        Returns:
            :class:`instgs.pointcloud.voxelize.VoxelGrid` over the P (proposal, point) pairs.
        """
        from instgs.pointcloud.voxelize import voxelize

        cfg = self.cfg
        K = props.num
        pid = props.proposal_id
        xyz = coord[props.point_idx].double()
        lo = torch.full((K, 3), float("inf"), dtype=torch.float64).scatter_reduce(
            0, pid[:, None].expand(-1, 3), xyz, "amin", include_self=True)
        hi = torch.full((K, 3), -float("inf"), dtype=torch.float64).scatter_reduce(
            0, pid[:, None].expand(-1, 3), xyz, "amax", include_self=True)
        extent = (hi - lo).max(1).values
        vsize = torch.clamp(extent / (cfg.intra_fullscale - 0.01), min=cfg.intra_voxel_size)
        local = (xyz - lo[pid]) / vsize[pid, None]  # voxel units, >= 0, < fullscale
        return voxelize(local, 1.0, batch=pid)

    def degenerate(self, coord: torch.Tensor, props: Proposals) -> torch.Tensor:
        """[K] bool: proposals that occupy a single site at the coarsest level of the
        proposal UNet (so at least one BatchNorm of a batch made of them alone would see one
        value per channel, and all their points share one coarse feature)."""
        if props.num == 0:
            return torch.zeros(0, dtype=torch.bool)
        grid = self.voxelize_proposals(coord, props)
        sites = coarse_sites(grid.spconv_indices(), len(self.unet.widths))
        return sites < 2

    def forward(self, point_feats: torch.Tensor, coord: torch.Tensor, props: Proposals,
                mask_filter: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: point_feats [N, m]; coord [N, 3]; props (K proposals, P pairs).

        Returns:
            (mask_logits [P], score_logits [K]).
        """
        from instgs.pointcloud.voxelize import pool_to_voxels, scatter_to_points

        cfg = self.cfg
        K = props.num
        pid = props.proposal_id
        grid = self.voxelize_proposals(coord, props)
        vf = pool_to_voxels(point_feats[props.point_idx], grid, "mean")
        x = make_sparse_tensor(vf, grid.spconv_indices(), grid.spatial_shape, K,
                               divisor=self.unet.divisor)
        y, _ = self.unet(x)
        pf = scatter_to_points(F.relu(self.out_bn(y.features)), grid)
        mask_logits = self.mask_head(pf).squeeze(1)
        sf = pf
        if mask_filter:
            sf = pf * (torch.sigmoid(mask_logits.detach()) >= cfg.mask_filter_threshold
                       ).float()[:, None]
        pooled = torch.zeros(K, sf.shape[1]).scatter_reduce(
            0, pid[:, None].expand_as(sf), sf, "amax", include_self=False)
        return mask_logits, self.score_head(pooled).squeeze(1)


class HAIS(nn.Module):
    """HAIS network.

    Args:
        cfg: :class:`HAISConfig` (use ``instgs.pointcloud.presets.hais_preset("tiny")`` on a CPU).

    Methods:
        ``forward(batch)`` -> dict with ``semantic_logits [N, C]``, ``offsets [N, 3]``
        (metres, point -> instance centre), ``point_feats [N, m]``.
        ``loss(batch, progress)`` -> (scalar, logs) for training.
        ``make_proposals(...)`` -> training-time proposals (point aggregation).
        Inference: :func:`instgs.pointcloud.hais.inference.predict`.
    """

    def __init__(self, cfg: HAISConfig):
        super().__init__()
        self.cfg = cfg
        in_ch = 6 if cfg.use_coords else 3
        m = cfg.width
        self.backbone = SparseBackbone(in_ch, m, cfg.levels, cfg.block_reps)
        self.semantic_head = MLPHead(m, m, cfg.num_classes)
        self.offset_head = MLPHead(m, m, 3)
        self.intra = IntraInstanceNet(cfg)

    # -- point-wise prediction ----------------------------------------------------------------
    def backbone_features(self, batch: HAISBatch) -> torch.Tensor:
        """[N, m] point features F_point (voxel features gathered to points)."""
        from instgs.pointcloud.batch import sparse_forward

        return sparse_forward(self.backbone, batch.feats, batch.grid, batch.num_scenes)[0]

    def forward(self, batch: HAISBatch) -> dict[str, torch.Tensor]:
        pf = self.backbone_features(batch)
        return {"point_feats": pf, "semantic_logits": self.semantic_head(pf),
                "offsets": self.offset_head(pf)}

    # -- proposals ----------------------------------------------------------------------------
    def make_proposals(self, batch: HAISBatch, sem_pred: torch.Tensor, offsets: torch.Tensor,
                       max_proposals: int | None = None) -> Proposals:
        """Training proposals: point aggregation per scene on ``coord + offsets`` (same label,
        r_point), clusters smaller than ``keep_fragment_ratio * class_numpoint_mean`` dropped,
        degenerate ones (one site at the proposal UNet's coarsest level,
        :meth:`IntraInstanceNet.degenerate`) dropped, the ``max_proposals`` largest kept.
        Set aggregation is not used in training (paper)."""
        from instgs.pointcloud.ops import point_aggregation

        cfg = self.cfg
        shifted = (batch.coord + offsets.detach()).numpy()
        sem = sem_pred.numpy()
        npm = np.asarray(cfg.scaled_numpoint_mean)
        clusters, labels = [], []
        o = batch.offsets.tolist()
        for b in range(len(o) - 1):
            sl = slice(o[b], o[b + 1])
            for c in point_aggregation(shifted[sl], sem[sl], cfg.point_radius,
                                       ignore_classes=cfg.background_classes):
                lab = int(sem[o[b] + c[0]])
                if npm[lab] > 0 and len(c) >= cfg.keep_fragment_ratio * npm[lab]:
                    clusters.append(c + o[b])
                    labels.append(lab)
        dropped = 0
        if clusters:
            bad = self.intra.degenerate(batch.coord, Proposals.from_lists(clusters, labels))
            dropped = int(bad.sum())
            if dropped:
                keep = np.flatnonzero(~bad.numpy())
                clusters = [clusters[i] for i in keep]
                labels = [labels[i] for i in keep]
        cap = cfg.max_proposals if max_proposals is None else max_proposals
        if len(clusters) > cap:
            order = np.argsort([-len(c) for c in clusters], kind="stable")[:cap]
            clusters = [clusters[i] for i in order]
            labels = [labels[i] for i in order]
        props = Proposals.from_lists(clusters, labels)
        props.dropped = dropped
        return props

    def check_trainable(self, batch: HAISBatch) -> None:
        """Raise InputError when the batch fits in one cell of the backbone's coarsest level
        (training-mode BatchNorm there would see a single value per channel)."""
        from instgs.pointcloud.batch import check_trainable_grid

        check_trainable_grid(batch.grid, len(self.backbone.unet.widths), self.cfg.voxel_size,
                             batch.names)

    # -- training loss ------------------------------------------------------------------------
    def loss(self, batch: HAISBatch, progress: float) -> tuple[torch.Tensor, dict[str, float]]:
        """HAIS total loss (Eq. 6) at training ``progress`` in [0, 1].

        Before ``prepare_fraction`` only L_seg + L_shift (code ``prepare_epochs``); after it
        also L_mask + L_score on point-aggregation proposals. From ``mask_iou_fraction`` the
        IoU used for GT matching / score targets is that of the predicted mask and the score
        features are mask-filtered (code ``cal_iou_based_on_mask_start_epoch``).

        Returns:
            (loss, logs) with logs of every term and the number of proposals.
        """
        cfg = self.cfg
        w_seg, w_off, w_mask, w_score = cfg.loss_weights
        if self.training:
            self.check_trainable(batch)
        out = self(batch)
        l_seg = L.semantic_loss(out["semantic_logits"], batch.semantic, cfg.ignore_index)
        l_off, off_logs = L.offset_loss(out["offsets"], batch.coord, batch.instance,
                                        weighted=cfg.offset_weighted,
                                        dir_weight=cfg.offset_dir_weight)
        loss = w_seg * l_seg + w_off * l_off
        logs = {"seg": float(l_seg.detach()), "offset": float(l_off.detach()), **off_logs}
        if progress >= cfg.prepare_fraction:
            use_mask = progress >= cfg.mask_iou_fraction
            sem_pred = out["semantic_logits"].detach().argmax(1)
            props = self.make_proposals(batch, sem_pred, out["offsets"])
            logs["proposals"] = float(props.num)
            if props.dropped:
                logs["degenerate"] = float(props.dropped)
            if props.num > 0:
                pf = out["point_feats"] if cfg.intra_backprop else out["point_feats"].detach()
                mask_logits, score_logits = self.intra(pf, batch.coord, props,
                                                       mask_filter=use_mask)
                keep = (torch.sigmoid(mask_logits.detach()) > 0.5) if use_mask else None
                iou = L.proposal_gt_iou(props.point_idx, props.proposal_id, props.num,
                                        batch.instance, keep)
                tgt, wgt, best = L.mask_targets(props.point_idx, props.proposal_id, iou,
                                                batch.instance)
                l_mask = L.mask_loss(mask_logits, tgt, wgt)
                l_score = L.score_loss(score_logits, best)
                loss = loss + w_mask * l_mask + w_score * l_score
                logs.update(mask=float(l_mask.detach()), score=float(l_score.detach()),
                            mean_iou=float(best.mean()))
        logs["loss"] = float(loss.detach())
        return loss, logs
