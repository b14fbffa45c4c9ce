"""MPNet (memory-augmented prototype network, seed 002): PointNet++ with two decoders on
1 m blocks, prototype memory with cosine-softmax readers, squash + CE, R_seg, R_ins, the
discriminative loss, mean-shift grouping and SGPN block merging."""

from __future__ import annotations

from instgs.pointcloud.mpnet.config import MPNetConfig
from instgs.pointcloud.mpnet.inference import STAGES, block_chunks, predict
from instgs.pointcloud.mpnet.model import (MPNet, BlockBatch, block_local, collate_blocks,
                                          training_semantic)

__all__ = ["MPNet", "MPNetConfig", "BlockBatch", "STAGES", "block_chunks", "block_local",
           "collate_blocks", "training_semantic", "predict"]
