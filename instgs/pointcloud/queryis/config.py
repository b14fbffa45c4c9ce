"""3D-QueryIS hyper-parameters (query-based 3D instance segmentation, seed 001;
pointcloud-methods.md §P1). Defaults = the paper where it gives a value; no official code
exists. Every ambiguity of §1.10 is a field:

=====================================  =====================================================
§1.10 item                             resolved by
=====================================  =====================================================
1 voxel, aug., normalisation, wd,      ``voxel_size`` 0.02 (family), ``use_coords``,
  poly power                           ``TrainConfig.weight_decay`` / ``poly_power`` 0.9
2 which decoder layer is t = 5         ``rpg_layer`` counted from the bottleneck (0) up:
                                       t = 5 of 7 levels = one level above full resolution
3 E and normalisation of s_j           ``E = Linear(C, J)`` + sigmoid; ``rpg_normalize``
                                       divides by sum_m z_jm (SparseInst); per scene
4 decoder internals, width             ``nn.TransformerDecoderLayer`` (self-attn, cross-attn,
                                       FFN, post-norm), ``d_model`` = C, ``ffn_dim`` 4C,
                                       ``dropout`` 0, no positional encoding
5 class head, mask MLP width           ``Linear(C, G+1)``; 2 hidden layers of ``C``
6 auxiliary losses                     ``aux_loss`` (every decoder layer, DETR)
7 c_k with no-object; kept preds       c_k = max over the G real classes; all K kept, empty
                                       masks and < ``min_points`` dropped, no threshold
8 masks on points or voxels            points (Eq. 4)
=====================================  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from instgs.core.checks import InputError
from instgs.pointcloud.netconfig import SparseNetConfig

__all__ = ["QueryISConfig"]


@dataclass
class QueryISConfig(SparseNetConfig):
    """All 3D-QueryIS settings (3D-QueryIS-S: ``width`` C = 16; -L: 32)."""

    width: int = 16
    """Channel unit C of the UNet (paper: 16 for -S, 32 for -L)."""
    rpg_layer: int = 5
    """Decoder layer t feeding the representative points, counted from the bottleneck
    (0) towards full resolution (levels - 1) (paper t = 5 of 7)."""
    num_points: int = 2000
    """J, representative points (paper: 2000)."""
    num_queries: int = 100
    """K, learnable instance queries (paper: 100)."""
    dec_layers: int = 3
    """L, transformer decoder layers (paper: 3)."""
    heads: int = 4
    """H, attention heads (paper: 4)."""
    d_model: int | None = None
    """Attention width (None = C, the paper's literal reading)."""
    ffn_dim: int | None = None
    """Feed-forward width of the decoder layers (None = 4 d_model)."""
    dropout: float = 0.0
    """Decoder dropout (not given; 0 for the small data this runs on)."""
    rpg_normalize: bool = True
    """s_j = sum_m z_jm O_m / sum_m z_jm (True) or the unnormalised sum of Eq. 2."""
    aux_loss: bool = True
    """Supervise the output of every decoder layer (DETR; not stated in the paper)."""
    w_ce: float = 2.0
    """lambda_ce (paper)."""
    w_bce: float = 5.0
    """lambda_bce (paper)."""
    w_dice: float = 5.0
    """lambda_dice (paper)."""
    no_object_weight: float = 0.1
    """Class weight of "no object" in L_ce (paper)."""
    mask_threshold: float = 0.5
    """tau: a point is in b_k when m_k > tau (paper)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.rpg_layer < self.levels:
            raise InputError(f"rpg_layer must lie in 0..levels-1 = {self.levels - 1}, got "
                             f"{self.rpg_layer}")
        if min(self.num_points, self.num_queries, self.dec_layers, self.heads) < 1:
            raise InputError("num_points, num_queries, dec_layers and heads must be >= 1")
        if self.model_dim % self.heads:
            raise InputError(f"d_model {self.model_dim} is not divisible by {self.heads} heads")

    @property
    def model_dim(self) -> int:
        """The attention width (``d_model`` or C)."""
        return self.d_model or self.width

    @property
    def num_query_classes(self) -> int:
        """G, the instance classes of the label space (ScanNet: 18)."""
        return len(self.classes.instance_classes)
