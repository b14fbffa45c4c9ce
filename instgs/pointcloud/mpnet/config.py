"""MPNet hyper-parameters (memory-augmented prototype network, seed 002;
pointcloud-methods.md §P2). Defaults = the paper where it gives a value; no official code
was found. Every ambiguity of §2.10 is a field:

=====================================  =====================================================
§2.10 item                             resolved by
=====================================  =====================================================
1 PointNet++ config, D, decoders,      PointNet++ SSG sem-seg (Qi et al. 2017, ASIS
  G and fc                             vanilla) x ``width_scale``; D = last FP width (128);
                                       two FP decoders; G = MLP(D, D, 3); fc = Linear(D, C)
2 grouping, BlockMerging, label,       mean shift, ``bandwidth`` = sigma_v (ASIS); SGPN
  confidence                           ``merge_min_overlap`` 7 / ``merge_min_new_size`` 30,
                                       then ``merge_join_share`` (instgs); majority class;
                                       mean class probability
3 cosine "distance", temperature       cosine similarity, ``temperature`` (paper: none = 1)
4 lambda 0.1 vs 0.01                   ``lambda_ins`` = 0.1 (Sec. 3.5)
5 R_ins norm, frame; R_seg reduction   L2 (not squared), block-local frame; mean over
                                       points, sum over the other classes (as printed)
6 squash then softmax-CE?              softmax CE on the squashed vector times
                                       ``logit_scale`` (1 = literal)
7 lr, momentum, epochs                 TrainConfig (Adam, beta1 0.9 = "momentum")
8 input channels                       rgb features + block-local xyz positions
                                       (x, y minus the block centre, z minus the block's
                                       lowest point: translation invariant); the ASIS 9-d
                                       room-normalised xyz are not used
=====================================  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from instgs.core.checks import InputError
from instgs.pointcloud.netconfig import LabelSpaceFields

__all__ = ["MPNetConfig"]


@dataclass
class MPNetConfig(LabelSpaceFields):
    """All MPNet settings."""

    label_space: str = "scannet20"
    """Classes (``scannet20`` or ``semantickitti``)."""
    block_size: float = 1.0
    """Block edge in metres (paper: 1 m)."""
    block_stride: float = 0.5
    """Stride of the inference blocks (paper: 0.5 m)."""
    block_points: int = 4096
    """Points sampled per block (paper: 4096)."""
    room_coords: bool = True
    """Input features: rgb plus the room-normalised xyz (PointNet / ASIS / SGPN 9-d block
    input with the block-local xyz as positions; the paper's list "R, G, B, X, Y, Z . . . ."
    is cut off, pointcloud-methods.md §2.10.8). False: rgb only. Without them a 1 m block
    of wall and one of a cabinet front look alike: 700 overfit steps reached AP50 19.6
    (docs/pointcloud-networks.md)."""
    width_scale: float = 1.0
    """Multiplies every PointNet++ SSG width (1 = the standard 64..512 / 128 widths)."""
    sa_npoints: tuple[int, ...] = (1024, 256, 64, 16)
    """Centroids of the four set-abstraction levels (PointNet++ SSG for 4096 points)."""
    sa_radii: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8)
    """Ball-query radii in metres (PointNet++ SSG)."""
    sa_nsample: int = 32
    """Neighbours per ball query (PointNet++ SSG)."""
    memory_per_class: int = 150
    """N_c prototypes per class (paper: 150)."""
    memory_init_std: float | None = None
    """Standard deviation of the random initial memory rows (the paper: "randomly
    initialized", no scale). None = sqrt(N_c), so that each class centroid (the mean of N_c
    rows) starts with unit variance per dimension; 1.0 = plain ``randn`` rows, whose
    centroids start 1/sqrt(N_c) as long: the squash then sees tiny vectors and the semantic
    loss barely moves (24 fixed ScanNet blocks, 50 steps: CE 1.35 against 0.37;
    docs/pointcloud-networks.md)."""
    temperature: float = 1.0
    """Softmax temperature of both memory readers (paper: none = 1)."""
    emb_dim: int = 5
    """Instance embedding c' (paper: 5)."""
    sigma_v: float = 0.5
    """Pull margin of L_dis (paper, = ASIS)."""
    sigma_d: float = 1.5
    """Push margin of L_dis (paper, = ASIS)."""
    margin_seg: float = 5.0
    """Margin m of R_seg (paper)."""
    lambda_ins: float = 0.1
    """Weight of R_ins (Sec. 3.5: 0.1; Sec. 4.3 says 0.01)."""
    logit_scale: float = 1.0
    """The squashed vector times this is the softmax-CE input (1 = paper literal)."""
    bandwidth: float | None = None
    """Mean-shift bandwidth (None = sigma_v, ASIS)."""
    group_unit: Literal["block", "chunk"] = "block"
    """What mean shift groups (ASIS) and BlockMerging merges: ``block`` = all points of a
    1 m block, with the embedding of the last forward pass (chunk of ``block_points``) that
    holds each point; ``chunk`` = each forward pass on its own, so that only embeddings
    of one pass, the unit the discriminative loss trains (a ``block_points`` sample of a
    block), are compared (instgs; as the SGPN / ASIS test code, which merges its
    ``num_point`` samples as blocks). The groups of a block's chunks are then joined where
    they sample the same object (:func:`instgs.pointcloud.ops.blocks.link_chunk_groups`)."""
    chunk_link_share: float = 0.5
    """``group_unit="chunk"``: share of a chunk group's points whose nearest neighbours in
    another chunk of the block must lie in one group (and back) for the two to be joined."""
    merge_min_overlap: int = 7
    """BlockMerging: shared points needed to join an existing instance (SGPN: 7)."""
    merge_min_new_size: int = 30
    """BlockMerging: points a new instance needs (SGPN: 30)."""
    merge_join_share: float = 0.1
    """After BlockMerging, join the room instances of one class that a single block group
    spans, each holding at least this share of the group's points
    (:func:`instgs.pointcloud.ops.blocks.join_shared_groups`; instgs; 0 = SGPN only, the
    ``mpnet-paper`` preset). SGPN left objects split into 3-4 ids across blocks: with the
    join, ``mpnet-tiny`` after 3000 steps scores AP50 78.4 instead of 56.5 on its training
    scan and 63.6 instead of 43.6 on scene0000_01; 0.02-0.1 is a plateau, 0.15 joins less
    (docs/pointcloud-networks.md)."""
    other_class: bool = False
    """Learn one more semantic class, "other object", for annotated points outside the
    label space (ScanNet: instances of otherprop, ceiling, ... whose semantic label is -100
    but whose instance id is kept), and treat it like wall / floor at inference: no mean
    shift, no instances (instgs). False: those points are ignored by the CE loss (paper),
    take a neighbour's class and the join step merges them into it (a table absorbing
    four such objects on scene0000_00, docs/pointcloud-networks.md). ``mpnet-tiny``: on
    (overfit AP50 81.6 instead of 77.9). SemanticKITTI has no such points (instance ids
    only on its thing classes): leave it off there."""
    min_points: int = 100
    """Drop final instances with fewer points (ScanNet benchmark minimum)."""
    infer_batch: int = 16
    """Blocks per forward pass at inference (memory / speed only)."""

    def __post_init__(self) -> None:
        from instgs.pointcloud.data.labels import label_space

        label_space(self.label_space)
        self.sa_npoints = tuple(int(v) for v in self.sa_npoints)
        self.sa_radii = tuple(float(v) for v in self.sa_radii)
        if len(self.sa_npoints) != len(self.sa_radii) or not self.sa_npoints:
            raise InputError("sa_npoints and sa_radii need one entry per level")
        if not (0 < self.block_stride <= self.block_size) or self.block_points < 1:
            raise InputError("need 0 < block_stride <= block_size and block_points >= 1")
        if self.memory_init_std is not None and self.memory_init_std <= 0:
            raise InputError(f"memory_init_std must be > 0, got {self.memory_init_std}")
        if self.group_unit not in ("block", "chunk"):
            raise InputError(f"group_unit must be 'block' or 'chunk', got {self.group_unit!r}")
        if not 0 < self.chunk_link_share <= 1:
            raise InputError(f"chunk_link_share must be in (0, 1], got {self.chunk_link_share}")
        if not 0 <= self.merge_join_share <= 1:
            raise InputError(f"merge_join_share must be in [0, 1], got {self.merge_join_share}")
        if self.width_scale <= 0 or self.memory_per_class < 1 or self.temperature <= 0:
            raise InputError("width_scale, memory_per_class and temperature must be > 0")

    @property
    def mean_shift_bandwidth(self) -> float:
        """``bandwidth`` or sigma_v."""
        return self.bandwidth if self.bandwidth is not None else self.sigma_v

    @property
    def out_classes(self) -> int:
        """Semantic outputs of the network: C, plus 1 with ``other_class`` (the last)."""
        return self.num_classes + int(self.other_class)

    @property
    def no_instance_classes(self) -> tuple[int, ...]:
        """Output classes that get no instances: the label space's background classes,
        plus the "other object" class C with ``other_class``."""
        extra = (self.num_classes,) if self.other_class else ()
        return tuple(self.background_classes) + extra

    @property
    def in_channels(self) -> int:
        """Input feature channels: 3 (rgb) + 3 with ``room_coords``."""
        return 6 if self.room_coords else 3

    def widths(self) -> tuple[list[list[int]], list[list[int]]]:
        """(SA MLP widths per level, FP MLP widths per level) after ``width_scale``."""
        sa = [[32, 32, 64], [64, 64, 128], [128, 128, 256], [256, 256, 512]]
        fp = [[256, 256], [256, 256], [256, 128], [128, 128, 128]]
        L = len(self.sa_npoints)
        sa, fp = sa[:L], fp[-L:]

        def sc(v: int) -> int:
            return max(4, int(round(v * self.width_scale)))

        return [[sc(v) for v in m] for m in sa], [[sc(v) for v in m] for m in fp]
