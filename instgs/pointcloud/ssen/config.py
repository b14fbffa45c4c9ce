"""SSEN hyper-parameters ("SSEN: Spatial Semantic Embedding Network", seed 003;
pointcloud-methods.md §P3). Defaults = the paper where it gives a value, else the official
``96lives/ssen`` code (reference reading only). Every ambiguity of §3.10 is a field:

=====================================  =====================================================
§3.10 item                             resolved by
=====================================  =====================================================
1 Eq. 3 leading 1/|I|?                 none (code): pull = sum_i w_i l_i, w_i = n_i^p/sum n^p
2 swapped L_intra / L_inter names      ``gamma_intra`` weighs the push term (paper naming)
3 batch reduction                      per scene, then the mean over scenes (code)
4 background filter in training        ``train_bg_filter`` (``gt``: no pretrained net here)
5 HDBSCAN params, label, score, noise  ``min_cluster_size``, ``min_samples``, majority
                                       class, ``score``, noise dropped (``cluster_on``)
6 f = 6 vs colours only; scale range   ``use_coords`` (paper f = 6); augment ``ssen`` =
                                       paper [0.8, 1.2]
7 TTA rotation angles                  ``tta_rotations`` evenly spaced about z (1 = off)
=====================================  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from instgs.core.checks import InputError
from instgs.pointcloud.netconfig import SparseNetConfig

__all__ = ["SSENConfig"]


@dataclass
class SSENConfig(SparseNetConfig):
    """All SSEN settings: two sparse UNets of the same size (semantic + embedding)."""

    emb_dim: int = 8
    """Embedding dimension d (paper)."""
    delta_inter: float = 0.1
    """Pull margin delta_inter of Eq. 4 (paper; SSEN calls the pull term L_inter)."""
    delta_intra: float = 0.5
    """Push margin delta_intra of Eq. 2 (means at least 2 delta_intra apart; paper)."""
    gamma_intra: float = 10.0
    """Weight of the push term L_intra (paper Eq. 1)."""
    size_power: float = 1.0
    """p of Eq. 3 (paper: 1 = every point weighs the same; 0 = every instance)."""
    semantic_weight: float = 1.0
    """Weight of the semantic network's cross-entropy (the paper trains it separately; here
    both networks train together, with disjoint parameters, so this only scales its lr)."""
    train_bg_filter: Literal["gt", "pred"] = "gt"
    """Which labels remove wall / floor before the embedding network in training: ``gt``
    (our choice: the semantic net trains at the same time, so its early predictions are
    noise) or ``pred`` (code: the pretrained semantic net). Inference always uses the
    prediction (paper)."""
    cluster_on: Literal["voxels", "points"] = "voxels"
    """HDBSCAN runs on foreground voxel embeddings (paper: voxels) or on every point."""
    min_cluster_size: int = 200
    """HDBSCAN ``min_cluster_size`` in voxels (or points) (code: 200 voxels at 2 cm)."""
    min_samples: int | None = 1
    """HDBSCAN ``min_samples`` (code: 0, which scikit-learn rejects; 1 is the nearest)."""
    score: Literal["semantic", "hdbscan", "one"] = "semantic"
    """Instance confidence (paper: none): mean semantic probability of the instance's class
    over its points, mean HDBSCAN membership probability, or 1."""
    tta_rotations: int = 1
    """Average the semantic probabilities over this many rotations about z by 2 pi k / R
    (paper's best result: 10; 1 = off)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.emb_dim < 1 or self.min_cluster_size < 2 or self.tta_rotations < 1:
            raise InputError("need emb_dim >= 1, min_cluster_size >= 2, tta_rotations >= 1")
        if min(self.delta_inter, self.delta_intra, self.gamma_intra, self.size_power) < 0:
            raise InputError("SSEN margins, gamma_intra and size_power must be >= 0")
