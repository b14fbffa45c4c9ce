"""Scaffold-GS anchor growing and pruning with the optimiser state kept in sync.

Follows Scaffold-GS ``GaussianModel.training_statis``, ``anchor_growing`` and ``adjust_anchor``
(reference-implementations.md §3.4); the Adam-state surgery follows the pattern of gsplat's
``strategy/ops.py`` (``_update_param_with_optimizer``): every per-anchor parameter is replaced
by a new ``nn.Parameter`` and its ``exp_avg`` / ``exp_avg_sq`` are indexed or zero-extended the
same way, so training continues seamlessly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from instgs.model.scaffold import NeuralGaussians, ScaffoldModel

__all__ = ["DensifyConfig", "AnchorStats", "ANCHOR_PARAMS", "update_anchor_params",
           "grow_anchors", "prune_anchors"]

ANCHOR_PARAMS = ("anchors", "offsets", "anchor_feat", "log_scaling", "ins_feat")
"""Per-anchor parameters (first dimension = anchor)."""


@dataclass(frozen=True)
class DensifyConfig:
    """Anchor growing / pruning (Scaffold-GS defaults; iterations refer to the 30k schedule
    and are scaled with ``--steps``)."""

    enabled: bool = True
    """Grow and prune anchors (forced off for fixed anchors, e.g. the ScanNet protocol)."""
    start_stat: int = 500
    """Start accumulating gradient / opacity statistics."""
    update_from: int = 1500
    """First growing/pruning step."""
    update_interval: int = 100
    """Steps between growing/pruning (not scaled: statistics need this many views)."""
    update_until: int = 15_000
    """Last growing/pruning step."""
    grad_threshold: float = 0.0002
    """Mean 2D positional gradient (NDC units, as Scaffold-GS/3DGS) that triggers growth."""
    min_opacity: float = 0.005
    """Prune anchors whose mean accumulated opacity per visit is below this."""
    success_threshold: float = 0.8
    """Fraction of ``update_interval`` visits an anchor needs before it may be pruned."""
    update_depth: int = 3
    update_init_factor: int = 16
    update_hierachy_factor: int = 4
    max_anchors: int = 2_000_000
    """Hard cap on the number of anchors (memory safety on laptops)."""


class AnchorStats:
    """Running statistics for growing/pruning (Scaffold-GS ``training_statis``).

    Attributes:
        opacity_accum: [N] summed child opacities per anchor visit.
        anchor_denom: [N] number of views in which the anchor was visible.
        grad_accum: [N * K] summed 2D positional gradient norms per child.
        grad_denom: [N * K] number of views in which the child was rendered.
    """

    def __init__(self, num_anchors: int, n_offsets: int, device=None):
        self.n_offsets = n_offsets
        self.opacity_accum = torch.zeros(num_anchors, device=device)
        self.anchor_denom = torch.zeros(num_anchors, device=device)
        self.grad_accum = torch.zeros(num_anchors * n_offsets, device=device)
        self.grad_denom = torch.zeros(num_anchors * n_offsets, device=device)

    @torch.no_grad()
    def update(self, ng: NeuralGaussians, means2d_grad: Tensor, radii: Tensor,
               width: int, height: int) -> None:
        """Accumulate one view.

        Args:
            ng: the decoded neural Gaussians of this view.
            means2d_grad: [M, 2] gradient of the loss w.r.t. projected means, pixels.
            radii: [M] projected radii (0 = culled).
            width, height: image size; pixel gradients are converted to NDC units
                (x W/2, x H/2) so ``grad_threshold`` keeps its 3DGS meaning.
        """
        op = ng.child_opacity.detach().clamp(min=0)  # [V, K]
        vis = ng.visible_anchors
        self.opacity_accum[vis] += op.sum(dim=1)
        self.anchor_denom[vis] += 1
        rendered = radii > 0
        g = means2d_grad.detach().clone()
        g[:, 0] *= width / 2.0
        g[:, 1] *= height / 2.0
        norm = g.norm(dim=-1)
        ids = ng.child_ids[rendered]
        self.grad_accum.index_add_(0, ids, norm[rendered])
        self.grad_denom.index_add_(0, ids, torch.ones_like(norm[rendered]))

    def keep(self, mask: Tensor) -> None:
        """Keep the anchors in ``mask`` [N] bool (after pruning)."""
        k = self.n_offsets
        self.opacity_accum = self.opacity_accum[mask]
        self.anchor_denom = self.anchor_denom[mask]
        cm = mask.repeat_interleave(k)
        self.grad_accum = self.grad_accum[cm]
        self.grad_denom = self.grad_denom[cm]

    def extend(self, n_new: int) -> None:
        """Append zeroed statistics for ``n_new`` new anchors."""
        k = self.n_offsets
        z = self.opacity_accum.new_zeros
        self.opacity_accum = torch.cat([self.opacity_accum, z(n_new)])
        self.anchor_denom = torch.cat([self.anchor_denom, z(n_new)])
        self.grad_accum = torch.cat([self.grad_accum, z(n_new * k)])
        self.grad_denom = torch.cat([self.grad_denom, z(n_new * k)])


def _find_group(optimizer: torch.optim.Optimizer, name: str):
    for group in optimizer.param_groups:
        if group.get("name") == name:
            return group
    return None


def update_anchor_params(model: ScaffoldModel, optimizer: torch.optim.Optimizer,
                         select: Tensor | None = None,
                         extend: dict[str, Tensor] | None = None) -> None:
    """Replace every per-anchor parameter by ``param[select]`` and/or ``cat(param, new)``.

    Adam moments are indexed with the same ``select`` and zero-extended for new rows; the
    step counter is kept. Parameters without an optimiser group (e.g. frozen anchors) are
    updated too.

    Args:
        model: the Scaffold model (modified in place).
        optimizer: an optimiser whose groups carry ``name`` keys equal to the parameter names.
        select: [N] bool or int64 rows to keep; None keeps all.
        extend: name -> [n_new, ...] rows to append (must cover every non-None anchor param).
    """
    for name in ANCHOR_PARAMS:
        p = getattr(model, name)
        if p is None:
            continue
        new = p.detach()
        if select is not None:
            new = new[select]
        if extend is not None:
            new = torch.cat([new, extend[name].to(new)], dim=0)
        param = nn.Parameter(new.contiguous(), requires_grad=p.requires_grad)
        group = _find_group(optimizer, name)
        if group is not None:
            state = optimizer.state.pop(p, None)
            group["params"][0] = param
            if state:
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in state:
                        v = state[key]
                        if select is not None:
                            v = v[select]
                        if extend is not None:
                            v = torch.cat([v, torch.zeros_like(extend[name]).to(v)], dim=0)
                        state[key] = v.contiguous()
                optimizer.state[param] = state
        setattr(model, name, param)


@torch.no_grad()
def grow_anchors(model: ScaffoldModel, optimizer: torch.optim.Optimizer, stats: AnchorStats,
                 cfg: DensifyConfig) -> int:
    """Add anchors where neural Gaussians had large view-space gradients (Scaffold-GS §3.3).

    For each level i < ``update_depth``: candidates are children with mean gradient >=
    ``grad_threshold * (hierachy_factor // 2) ** i`` that were rendered in more than
    ``0.5 * success_threshold * update_interval`` views, kept with probability
    ``1 - 0.5 ** (i + 1)``; their positions are quantised to voxels of
    ``voxel_size * init_factor // hierachy_factor ** i`` and voxels not already holding an
    anchor become new anchors (feature = max over the parent features in that voxel, offsets 0,
    scaling = the voxel size, instance feature = the first parent's).

    Returns:
        Number of anchors added.
    """
    k = model.cfg.n_offsets
    n0 = model.num_anchors
    grads = stats.grad_accum / stats.grad_denom.clamp(min=1)
    enough = stats.grad_denom > cfg.update_interval * cfg.success_threshold * 0.5
    all_xyz = (model.anchors.unsqueeze(1) + model.offsets * model.scaling[:, None, :3])
    all_xyz = all_xyz.reshape(-1, 3)
    feats_rep = model.anchor_feat.repeat_interleave(k, dim=0)
    ins_rep = model.ins_feat.repeat_interleave(k, dim=0) if model.ins_feat is not None else None
    added = 0
    existing = model.anchors.detach()
    new_rows: dict[str, list[Tensor]] = {n: [] for n in ("anchors", "offsets", "anchor_feat",
                                                            "log_scaling", "ins_feat")}
    for i in range(cfg.update_depth):
        if n0 + added >= cfg.max_anchors:
            break
        thr = cfg.grad_threshold * ((cfg.update_hierachy_factor // 2) ** i)
        cand = (grads >= thr) & enough
        cand &= torch.rand_like(grads) > 0.5 ** (i + 1)
        if not cand.any():
            continue
        size = model.voxel_size * (cfg.update_init_factor // (cfg.update_hierachy_factor ** i))
        if size <= 0:
            size = model.voxel_size
        occ = torch.round(existing / size).long()
        sel_xyz = all_xyz[cand]
        sel_grid = torch.round(sel_xyz / size).long()
        uniq, inverse = torch.unique(sel_grid, dim=0, return_inverse=True)
        # drop voxels that already hold an anchor
        both = torch.cat([occ, uniq], dim=0)
        _, inv_both, counts = torch.unique(both, dim=0, return_inverse=True, return_counts=True)
        free = counts[inv_both[occ.shape[0]:]] == 1
        if not free.any():
            continue
        limit = cfg.max_anchors - (n0 + added)
        free_idx = torch.nonzero(free).squeeze(1)[:limit]
        keep = torch.zeros_like(free)
        keep[free_idx] = True
        n_new = int(keep.sum())
        centres = uniq[keep].float() * size
        # feature of a new anchor = elementwise max over the candidate parents in its voxel
        dev = grads.device  # every new row is built on the model's device (CUDA runs)
        feat = torch.full((uniq.shape[0], feats_rep.shape[1]), -torch.inf, device=dev,
                          dtype=feats_rep.dtype)
        feat = feat.scatter_reduce(0, inverse[:, None].expand(-1, feats_rep.shape[1]),
                                   feats_rep[cand], reduce="amax", include_self=True)[keep]
        new_rows["anchors"].append(centres)
        new_rows["offsets"].append(torch.zeros(n_new, k, 3, device=dev))
        new_rows["anchor_feat"].append(feat)
        log_size = float(torch.log(torch.tensor(size)))
        new_rows["log_scaling"].append(torch.full((n_new, 6), log_size, device=dev))
        if ins_rep is not None:
            first = torch.full((uniq.shape[0],), -1, dtype=torch.long, device=dev)
            order = torch.arange(inverse.shape[0], device=dev)
            first = first.scatter_reduce(0, inverse, order, reduce="amax", include_self=True)
            new_rows["ins_feat"].append(ins_rep[cand][first[keep]])
        existing = torch.cat([existing, centres], dim=0)
        added += n_new
    # Scaffold-GS resets the gradient statistics of the children it has evaluated
    stats.grad_accum[enough] = 0
    stats.grad_denom[enough] = 0
    if added == 0:
        return 0
    extend = {n: torch.cat(v, dim=0) for n, v in new_rows.items() if v}
    update_anchor_params(model, optimizer, extend=extend)
    stats.extend(added)
    return added


@torch.no_grad()
def prune_anchors(model: ScaffoldModel, optimizer: torch.optim.Optimizer, stats: AnchorStats,
                  cfg: DensifyConfig) -> int:
    """Remove anchors whose children stay transparent (Scaffold-GS ``adjust_anchor``).

    Anchors seen in more than ``update_interval * success_threshold`` views whose accumulated
    opacity is below ``min_opacity * visits`` are removed; statistics of the anchors that were
    evaluated are reset. Returns the number of anchors removed.
    """
    seen = stats.anchor_denom > cfg.update_interval * cfg.success_threshold
    prune = (stats.opacity_accum < cfg.min_opacity * stats.anchor_denom) & seen
    # reset the statistics of evaluated anchors
    stats.opacity_accum[seen] = 0
    stats.anchor_denom[seen] = 0
    cm = seen.repeat_interleave(stats.n_offsets)
    stats.grad_accum[cm] = 0
    stats.grad_denom[cm] = 0
    n_prune = int(prune.sum())
    if n_prune == 0 or n_prune >= model.num_anchors:
        return 0
    keep = ~prune
    update_anchor_params(model, optimizer, select=keep)
    stats.keep(keep)
    return n_prune
