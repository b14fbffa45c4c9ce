"""Render-based helpers of the segmentation stage (they need a trained run and the renderer).

* :func:`observed_anchors`: anchors that are the top contributor of some masked pixel in some
  training view (InstanceGaussian ``get_well_optimized_pc``, reference-implementations.md
  §1.4 step 1). Anchors never observed are left out of seeding and merging and get the
  label of their nearest observed neighbour afterwards.
* :func:`codebook_refine_fn`: the released code's render-supervised codebook (§1.4 step 3):
  one learnable feature per sub-object, rendered in place of the anchors' features and
  trained with the same cohesion + separation losses on the SAM masks, geometry frozen.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from instgs.core.checks import InputError

__all__ = ["observed_anchors", "codebook_refine_fn", "load_view_masks"]


def load_view_masks(run, views: list[int]) -> dict[int, Tensor]:
    """SAM label maps [H, W] int64 (-1 = none) of the run's level, at the run's resolution.

    Raises:
        InputError: no ``language_features/`` folder in the scene.
    """
    from instgs.train.trainer import load_label_maps

    feat_dir = run.scene.root / run.cfg.masks_dir
    if not feat_dir.is_dir():
        raise InputError("no SAM masks for the scene", feat_dir,
                         f"run `instgs masks --data {run.scene.root}`")
    return load_label_maps(run.scene, feat_dir, run.cfg.sam_level, views)


@torch.no_grad()
def observed_anchors(run, views: list[int] | None = None, require_mask: bool = True,
                     progress: bool = True) -> np.ndarray:
    """Anchors that own the top-contributing Gaussian of at least one (masked) pixel.

    Args:
        run: a :class:`~instgs.train.trainer.LoadedRun`.
        views: view indices (default: the training views).
        require_mask: count only pixels covered by a SAM mask (released behaviour).

    Returns:
        [N] bool over the run's anchors.
    """
    from tqdm import tqdm

    from instgs.render import render

    views = list(run.scene.train_ids) if views is None else views
    masks = load_view_masks(run, views) if require_mask else {}
    n = run.model.num_anchors
    seen = torch.zeros(n, dtype=torch.bool)
    for i in tqdm(views, desc="observed anchors", disable=not progress, leave=False):
        ng = run.decode(i)
        out = render(ng.gaussians, run.scene.cameras[i], return_top_ids=True,
                     backend=run.cfg.backend)
        top = out.top_ids[0]
        ok = top >= 0
        if require_mask:
            ok &= masks[i] >= 0
        seen[ng.anchor_ids[top[ok]].unique()] = True
    return seen.numpy()


def codebook_refine_fn(run, iters: int = 300, lr: float = 1e-3, progress: bool = True):
    """Build the ``refine_fn`` of :func:`instgs.segment.segment_anchors` for a run.

    The codebook starts at the mean normalised feature of each sub-object and is trained for
    ``iters`` steps (one random training view each; released: 10k at lr 1e-3) with
    ``lambda_separation * separation + lambda_cohesion * cohesion`` of the run's loss config,
    rendering ``(normalize(codebook[sub(anchor)]) + 1) / 2``; anchors outside every sub-object
    keep their own (frozen) feature.

    Returns:
        ``refine_fn(sub [N] int64 (-1 invalid), ins_feat [N, F]) -> [S, F]``.
    """
    from tqdm import tqdm

    from instgs.render import render
    from instgs.train.losses import instance_feature_losses

    def refine(sub: np.ndarray, ins_feat: np.ndarray) -> np.ndarray:
        sub_t = torch.as_tensor(sub, dtype=torch.long)
        feats = F.normalize(torch.as_tensor(ins_feat, dtype=torch.float32), dim=-1)
        s = int(sub_t.max()) + 1
        valid = sub_t >= 0
        init = torch.zeros(s, feats.shape[1]).index_add(0, sub_t[valid], feats[valid])
        codebook = torch.nn.Parameter(F.normalize(init, dim=-1))
        if iters <= 0:
            return codebook.detach().numpy()
        opt = torch.optim.Adam([codebook], lr=lr)
        views = list(run.scene.train_ids)
        masks = load_view_masks(run, views)
        rng = np.random.default_rng(0)
        cfg = run.cfg.loss
        for _ in tqdm(range(iters), desc="codebook", disable=not progress, leave=False):
            i = int(rng.choice(views))
            with torch.no_grad():
                ng = run.decode(i)
            a_sub = sub_t[ng.anchor_ids]
            on = a_sub >= 0
            cb = F.normalize(codebook, dim=-1)
            f = torch.where(on[:, None], cb[a_sub.clamp(min=0)], feats[ng.anchor_ids])
            out = render(ng.gaussians.detached(), run.scene.cameras[i], features=(f + 1) / 2,
                         backend=run.cfg.backend)
            sem = instance_feature_losses(out.features[0], out.alpha[0], masks[i], cfg,
                                          "joint", mapped=True)
            loss = cfg.lambda_separation * sem["separation"] + \
                cfg.lambda_cohesion * sem["cohesion"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        return F.normalize(codebook.detach(), dim=-1).numpy()

    return refine
