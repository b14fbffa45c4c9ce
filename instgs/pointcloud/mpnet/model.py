"""MPNet network (memory-augmented prototype network, seed 002 §3; pointcloud-methods.md
§P2): a PointNet++ SSG encoder with two feature-propagation decoders (semantic, instance),
the prototype memory M with its derived class centroids C and two cosine-softmax readers,
and the heads: fc + squash (semantic), a linear embedding (c' = 5), a centroid MLP G (only
for R_ins). Loss (Eq. 7): ``L = L_CE + L_dis + R_seg + lambda R_ins``.

Batches are blocks of equal size (:func:`collate_blocks`): block-local xyz positions
(x, y minus the block's xy centre, z minus its lowest point) and rgb (+ room-normalised
xyz, ``room_coords``) features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from instgs.core.checks import InputError
from instgs.pointcloud.losses import discriminative_loss
from instgs.pointcloud.mpnet import memory as mem
from instgs.pointcloud.mpnet.config import MPNetConfig
from instgs.pointcloud.pointnet2 import PointNet2Decoder, PointNet2Encoder

__all__ = ["MPNet", "BlockBatch", "collate_blocks", "training_semantic", "block_local",
           "block_features"]


@dataclass
class BlockBatch:
    """B blocks of P points.

    Attributes:
        xyz: [B, P, 3] float32 block-local coordinates (metres).
        feats: [B, P, F] float32: rgb in [-1, 1], then the room-normalised xyz in [0, 1]
            when ``cfg.room_coords`` (F = ``cfg.in_channels``).
        semantic: [B, P] int64 (-100 none; C = "other object" with ``cfg.other_class``).
        instance: [B, P] int64 per block (-100 none).
        names: scene name per block.
    """

    xyz: torch.Tensor
    feats: torch.Tensor
    semantic: torch.Tensor
    instance: torch.Tensor
    names: list[str]


def block_local(coord: np.ndarray) -> np.ndarray:
    """[P, 3] block coordinates -> block-local: x, y minus the xy bounding-box centre, z
    minus the lowest z (translation invariant). float32."""
    c = np.asarray(coord, dtype=np.float64)
    lo, hi = c.min(0), c.max(0)
    out = c - np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    return out.astype(np.float32)


def block_features(color: np.ndarray, room_xyz: np.ndarray | None, cfg: MPNetConfig
                   ) -> np.ndarray:
    """Per-point input features of a block: [P, 3] rgb in [-1, 1], then, with
    ``cfg.room_coords``, [P, 3] room-normalised xyz in [0, 1] -> [P, cfg.in_channels] float32.

    Raises:
        InputError: ``cfg.room_coords`` and no ``room_xyz`` (the block was not cut by
            ``transforms.RandomBlock`` or :func:`instgs.pointcloud.mpnet.predict`).
    """
    color = np.asarray(color, np.float32)
    if not cfg.room_coords:
        return color
    if room_xyz is None:
        raise InputError("MPNet block without room coordinates", None,
                         "cut blocks with transforms.RandomBlock, which adds them")
    return np.concatenate([color, np.asarray(room_xyz, np.float32)], 1)


def training_semantic(semantic: np.ndarray, instance: np.ndarray, cfg: MPNetConfig
                      ) -> np.ndarray:
    """The CE target of a block: ``semantic`` [P] int64, where ``cfg.other_class`` turns
    annotated points outside the label space (semantic -100, instance >= 0) into the
    "other object" class C = ``cfg.num_classes``. Returns [P] int64 (a new array)."""
    sem = np.array(semantic, dtype=np.int64)
    if cfg.other_class:
        sem[(sem < 0) & (np.asarray(instance) >= 0)] = cfg.num_classes
    return sem


def collate_blocks(scenes: Sequence, cfg: MPNetConfig) -> BlockBatch:
    """Stack blocks (``PointScene`` crops from ``transforms.RandomBlock``, all with
    ``cfg.block_points`` points) into a :class:`BlockBatch` (semantic targets by
    :func:`training_semantic`).

    Raises:
        InputError: no blocks, or blocks of different sizes.
    """
    if len(scenes) == 0:
        raise InputError("no blocks to collate", None, "pass at least one block")
    sizes = {s.num_points for s in scenes}
    if len(sizes) != 1:
        raise InputError(f"blocks of different sizes {sorted(sizes)}", None,
                         "crop every block with transforms.RandomBlock(size, block_points)")

    def t(a, dt):
        return torch.as_tensor(np.stack(a)).to(dt)

    return BlockBatch(
        xyz=t([block_local(s.coord) for s in scenes], torch.float32),
        feats=t([block_features(s.color, s.extra.get("room_xyz"), cfg) for s in scenes],
                torch.float32),
        semantic=t([training_semantic(s.semantic, s.instance, cfg) for s in scenes],
                   torch.int64),
        instance=t([np.asarray(s.instance) for s in scenes], torch.int64),
        names=[s.name for s in scenes])


class MPNet(nn.Module):
    """MPNet.

    Args:
        cfg: :class:`MPNetConfig` (``load_setup("mpnet-tiny").mpnet`` on a CPU).

    ``forward(xyz [B,P,3], feats [B,P,F]) -> dict`` with ``logits`` [B,P,C] (C =
    ``cfg.out_classes``; squashed x
    ``logit_scale``), ``embedding`` [B,P,c'], ``centroid`` [B,P,3], ``seg_feat`` [B,P,D]
    (calibrated semantic features), ``centroids`` [C,D] (class centroids C).
    """

    def __init__(self, cfg: MPNetConfig):
        super().__init__()
        self.cfg = cfg
        sa, fp = cfg.widths()
        self.encoder = PointNet2Encoder(cfg.in_channels, cfg.sa_npoints, cfg.sa_radii,
                                        cfg.sa_nsample, sa)
        self.dec_seg = PointNet2Decoder(self.encoder.channels, fp)
        self.dec_ins = PointNet2Decoder(self.encoder.channels, fp)
        D = self.dec_seg.out_channels
        C = cfg.out_classes
        std = (cfg.memory_per_class ** 0.5 if cfg.memory_init_std is None
               else cfg.memory_init_std)
        self.memory = nn.Parameter(torch.randn(C * cfg.memory_per_class, D) * std)
        self.fc = nn.Linear(D, C)
        self.embedding_head = nn.Linear(D, cfg.emb_dim)
        self.centroid_head = nn.Sequential(nn.Linear(D, D), nn.ReLU(inplace=True),
                                           nn.Linear(D, 3))

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        B, P, _ = xyz.shape
        levels = self.encoder(xyz, feats.transpose(1, 2))
        f_seg = self.dec_seg(levels).transpose(1, 2).reshape(B * P, -1)
        f_ins = self.dec_ins(levels).transpose(1, 2).reshape(B * P, -1)
        cents = mem.class_centroids(self.memory, cfg.memory_per_class)
        seg_hat, _ = mem.memory_read(f_seg, cents, cfg.temperature)
        ins_hat, _ = mem.memory_read(f_ins, self.memory, cfg.temperature)
        logits = mem.squash(self.fc(seg_hat)) * cfg.logit_scale
        return {"logits": logits.reshape(B, P, -1),
                "embedding": self.embedding_head(ins_hat).reshape(B, P, -1),
                "centroid": self.centroid_head(ins_hat).reshape(B, P, 3),
                "seg_feat": seg_hat.reshape(B, P, -1), "centroids": cents}

    def loss(self, batch: BlockBatch, progress: float) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 7: ``L_CE + L_dis + R_seg + lambda_ins R_ins`` over the blocks of a batch.

        L_CE: softmax cross-entropy of the squashed logits (-100 ignored); L_dis: squared
        hinges, sigma_v / sigma_d, every instance weighted equally, per block; R_seg and
        R_ins: :mod:`instgs.pointcloud.mpnet.memory`.

        Returns:
            ``(loss, logs)`` with ``ce``, ``dis``, ``rseg``, ``rins``, ``loss``.
        """
        cfg = self.cfg
        out = self(batch.xyz, batch.feats)
        B, P = batch.semantic.shape
        sem = batch.semantic.reshape(-1)
        ins = batch.instance.reshape(-1)
        blk = torch.arange(B).repeat_interleave(P)
        logits = out["logits"].reshape(B * P, -1)
        l_ce = (F.cross_entropy(logits, sem, ignore_index=-100) if (sem != -100).any()
                else logits.sum() * 0.0)
        l_dis, _ = discriminative_loss(out["embedding"].reshape(B * P, -1), ins, blk,
                                       delta_pull=cfg.sigma_v, delta_push=cfg.sigma_d,
                                       hinge_power=2, size_power=0.0)
        r_seg = mem.semantic_regularizer(out["seg_feat"].reshape(B * P, -1), out["centroids"],
                                         sem, cfg.margin_seg)
        r_ins = mem.instance_regularizer(out["centroid"].reshape(B * P, 3),
                                         batch.xyz.reshape(B * P, 3), ins, blk)
        loss = l_ce + l_dis + r_seg + cfg.lambda_ins * r_ins
        logs = {"ce": float(l_ce.detach()), "dis": float(l_dis.detach()),
                "rseg": float(r_seg.detach()), "rins": float(r_ins.detach()),
                "loss": float(loss.detach())}
        return loss, logs
