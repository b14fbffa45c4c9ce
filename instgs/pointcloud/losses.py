"""Losses shared by several point-cloud networks (pointcloud-methods.md §C.2.6).

* :func:`discriminative_loss` — the one parametrised discriminative (metric-learning) loss
  of the embedding networks: SSEN (Zhang et al., seed 003, Eq. 1-4: unsquared hinges,
  p-weighted pull) and MPNet (seed 002, Eq. 6 = ASIS / De Brabandere: squared hinges,
  per-instance mean). The readable twin is
  :func:`instgs.pointcloud.ops._reference_methods.discriminative_loss`.
* :func:`dice_loss` — the +1-smoothed Dice of 3D-QueryIS Eq. 6.

Packed batches: points of B scenes (or MPNet blocks) are concatenated; ``batch [N]`` gives
each point's scene, instance ids are compared within a scene only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from instgs.core.checks import InputError, check_shape

__all__ = ["discriminative_loss", "dice_loss"]


def _scene_instances(instance: torch.Tensor, batch: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(point mask with an instance, global instance index per such point [P], scene of
    each global instance [K]) -- instances are (scene, id) pairs, ordered by (scene, id)."""
    valid = instance >= 0
    key = batch[valid] * (int(instance.max()) + 1 if valid.any() else 1) + instance[valid]
    uniq, inv = torch.unique(key, return_inverse=True)
    scene_of = uniq // (int(instance.max()) + 1 if valid.any() else 1)
    return valid, inv, scene_of


def discriminative_loss(emb: torch.Tensor, instance: torch.Tensor,
                        batch: torch.Tensor | None = None, *, delta_pull: float,
                        delta_push: float, hinge_power: int = 1, size_power: float = 1.0,
                        pull_weight: float = 1.0, push_weight: float = 1.0,
                        reg_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Discriminative embedding loss, per scene, averaged over the scenes with instances.

    For one scene with instances ``I`` (points ``E_i``, mean embedding ``mu_i``)::

        l_i  = 1/|E_i| sum_{e in E_i} [ ||mu_i - e|| - delta_pull ]_+ ^ h
        pull = sum_i w_i l_i,     w_i = |E_i|^p / sum_j |E_j|^p
        push = 1/(|I|(|I|-1)) sum_{i != j} [ 2 delta_push - ||mu_i - mu_j|| ]_+ ^ h   (0 if |I| < 2)
        reg  = 1/|I| sum_i ||mu_i||
        L    = pull_weight * pull + push_weight * push + reg_weight * reg

    SSEN (seed 003 Eq. 1-4; its "L_inter" is our pull, "L_intra" our push): ``h = 1``,
    ``p = 1``, ``delta_pull = delta_inter = 0.1``, ``delta_push = delta_intra = 0.5``,
    ``push_weight = gamma_intra = 10``; Eq. 3 without a leading 1/|I| (official code) and
    Eq. 2 normalised by |I|(|I|-1) as printed (the code divides by 2|I|(|I|-1)). MPNet
    (seed 002 Eq. 6, ASIS): ``h = 2``, ``p = 0`` (every instance weighs the same),
    ``delta_pull = sigma_v = 0.5``, ``delta_push = sigma_d = 1.5``, no regulariser.

    Args:
        emb: [N, D] float embeddings.
        instance: [N] int64 instance id per point; < 0 (e.g. -100) = no instance (ignored).
        batch: [N] int64 scene index per point (default: one scene).
        delta_pull, delta_push: margins (embedding units).
        hinge_power: 1 (SSEN) or 2 (MPNet / De Brabandere).
        size_power: p of the per-instance weights (0 = per instance, 1 = per point).
        pull_weight, push_weight, reg_weight: term weights.

    Returns:
        ``(loss, logs)``: scalar tensor (0 with a graph when no scene has an instance) and
        floats ``pull``, ``push``, ``reg``, ``instances`` (means over scenes).

    Raises:
        ShapeError: shapes disagree. InputError: negative margins or powers.
    """
    check_shape("emb", emb, "N D")
    check_shape("instance", instance, "N", N=emb.shape[0])
    if batch is None:
        batch = torch.zeros_like(instance)
    check_shape("batch", batch, "N", N=emb.shape[0])
    if delta_pull < 0 or delta_push < 0 or hinge_power < 1 or size_power < 0:
        raise InputError("margins and size_power must be >= 0 and hinge_power >= 1")
    valid, inv, scene_of = _scene_instances(instance, batch)
    if not valid.any():
        zero = emb.sum() * 0.0
        return zero, {"pull": 0.0, "push": 0.0, "reg": 0.0, "instances": 0.0}
    e = emb[valid]
    K = int(scene_of.shape[0])
    cnt = torch.bincount(inv, minlength=K).to(emb.dtype)
    mu = torch.zeros(K, e.shape[1], dtype=emb.dtype).index_add(0, inv, e) / cnt[:, None]
    hinge = F.relu(torch.linalg.vector_norm(e - mu[inv], dim=1) - delta_pull) ** hinge_power
    l_i = torch.zeros(K, dtype=emb.dtype).index_add(0, inv, hinge) / cnt
    scenes, scene_idx = torch.unique(scene_of, return_inverse=True)
    S = int(scenes.shape[0])
    w = cnt ** size_power
    w = w / torch.zeros(S, dtype=emb.dtype).index_add(0, scene_idx, w)[scene_idx]
    pull = torch.zeros(S, dtype=emb.dtype).index_add(0, scene_idx, w * l_i)
    reg = torch.zeros(S, dtype=emb.dtype).index_add(0, scene_idx, mu.norm(dim=1))
    n_inst = torch.bincount(scene_idx, minlength=S).to(emb.dtype)
    reg = reg / n_inst
    push = []
    for s in range(S):
        m = mu[scene_idx == s]
        k = m.shape[0]
        if k < 2:
            push.append(emb.sum() * 0.0)
            continue
        d = torch.linalg.vector_norm(m[:, None, :] - m[None, :, :], dim=2)
        off = ~torch.eye(k, dtype=torch.bool)
        push.append((F.relu(2 * delta_push - d[off]) ** hinge_power).sum() / (k * (k - 1)))
    push_t = torch.stack(push)
    per_scene = pull_weight * pull + push_weight * push_t + reg_weight * reg
    loss = per_scene.mean()
    logs = {"pull": float(pull.mean().detach()), "push": float(push_t.mean().detach()),
            "reg": float(reg.mean().detach()), "instances": float(n_inst.mean())}
    return loss, logs


def dice_loss(mask_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-mask Dice loss with +1 smoothing (3D-QueryIS Eq. 6)::

        1 - (2 sum(m * g) + 1) / (sum(m) + sum(g) + 1),  m = sigmoid(logits)

    Args:
        mask_logits: [M, N] float logits; target: [M, N] float in {0, 1}.

    Returns:
        [M] float (0 for a perfect mask of a non-empty target as the logits grow).
    """
    check_shape("mask_logits", mask_logits, "M N")
    check_shape("target", target, "M N", M=mask_logits.shape[0], N=mask_logits.shape[1])
    m = torch.sigmoid(mask_logits)
    num = 2 * (m * target).sum(1) + 1
    den = m.sum(1) + target.sum(1) + 1
    return 1 - num / den
