"""Render-based helpers of the segmentation stage (they need a trained run and the renderer).

* :func:`observed_anchors`: anchors that are the top contributor of some masked pixel in some
  training view (InstanceGaussian ``get_well_optimized_pc``, reference-implementations.md
  §1.4 step 1), or, for runs trained with the ``projected`` target, anchors that pass the
  depth test of :mod:`instgs.render.visibility` on a masked pixel. Anchors never observed
  are left out of seeding and merging and get the label of their nearest observed
  neighbour afterwards.
* :func:`codebook_refine_fn`: the released code's render-supervised codebook (§1.4 step 3):
  one learnable feature per sub-object, rendered in place of the anchors' features and
  trained with the same cohesion + separation losses on the SAM masks, geometry frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from instgs.core.checks import InputError
from instgs.run import LoadedRun

__all__ = ["observed_anchors", "codebook_refine_fn", "load_view_masks", "MaskHits",
           "collect_mask_hits", "vote_unobserved"]


def load_view_masks(run: LoadedRun, views: list[int]) -> dict[int, Tensor]:
    """SAM label maps [H, W] int64 (-1 = none) of the run's level, at the run's resolution.

    Raises:
        InputError: no mask folder in the scene, or unreadable / mis-sized mask files.
    """
    from instgs.masks.io import read_label_maps

    feat_dir = run.scene.root / run.cfg.masks_dir
    if not feat_dir.is_dir():
        raise InputError("no SAM masks for the scene", feat_dir,
                         f"run `instgs masks --data {run.scene.root}`")
    stems = {i: run.scene.image_paths[i].stem for i in views}
    maps = read_label_maps(feat_dir, stems, run.cfg.sam_level, run.scene.height,
                           run.scene.width)
    return {i: torch.from_numpy(m) for i, m in maps.items()}


@torch.no_grad()
def observed_anchors(run, views: list[int] | None = None, require_mask: bool = True,
                     progress: bool = True, rule: str = "auto") -> np.ndarray:
    """Anchors that some training view observes (the ones whose features were trained).

    Args:
        run: a :class:`~instgs.run.LoadedRun`.
        views: view indices (default: the training views).
        require_mask: count only pixels covered by a SAM mask (released behaviour).
        rule: ``top``: the anchor owns the top-contributing Gaussian of a pixel (released
            ``get_well_optimized_pc``, for the ``rendered`` instance target); ``projected``:
            the anchor passes the depth test of :func:`instgs.render.visibility.visible_points`
            with the run's tolerances, and its occlusion test if the run trained with one
            (the ``projected`` / ``both`` targets train exactly these anchors); ``auto``:
            from the run's ``loss.instance_target``.

    Returns:
        [N] bool over the run's anchors.

    Raises:
        ValueError: unknown ``rule``.
    """
    from tqdm import tqdm

    from instgs.render import render

    if rule == "auto":
        rule = "top" if run.cfg.loss.instance_target == "rendered" else "projected"
    if rule not in ("top", "projected"):
        raise ValueError(f"unknown observed-anchor rule {rule!r} (top | projected)")
    n = run.model.num_anchors
    seen = np.zeros(n, dtype=bool)
    if rule == "projected":
        hits = collect_mask_hits(run, views, loose_factor=1.0, require_mask=require_mask,
                                 progress=progress)
        seen[hits.anchor[hits.strict]] = True
        return seen
    views = list(run.scene.train_ids) if views is None else views
    masks = load_view_masks(run, views) if require_mask else {}
    for i in tqdm(views, desc="observed anchors", disable=not progress, leave=False):
        ng = run.decode(i)
        out = render(ng.gaussians, run.scene.cameras[i], return_top_ids=True,
                     backend=run.render_backend)
        top = out.top_ids[0]
        ok = top >= 0
        if require_mask:
            ok &= masks[i] >= 0
        seen[ng.anchor_ids[top[ok]].unique().numpy()] = True
    return seen


@dataclass(frozen=True)
class MaskHits:
    """Anchors seen on SAM-masked pixels: one row per (anchor, view) sighting.

    Attributes:
        anchor: [R] int64 anchor index. view: [R] int64 view index.
        mask: [R] int64 local mask id of that view's label map (-1 only for the unmasked
            sightings that ``require_mask=False`` keeps).
        strict: [R] bool, the sighting passes the run's own depth tolerance and, when the
            run trained with ``loss.occlusion_border_px > 0``, its occlusion test (the
            samples the ``projected`` target trained on); the others pass only the looser
            voting tolerance.
        occluded: [R] bool or None, the anchor lies more than ``vote_max_dz`` behind the
            anchor z-buffer at its pixel (:func:`collect_mask_hits` with the occlusion test
            on); such rows are left out of :func:`vote_unobserved`. None = no such test.
    """

    anchor: np.ndarray
    view: np.ndarray
    mask: np.ndarray
    strict: np.ndarray
    occluded: np.ndarray | None = None

    def select(self, keep: np.ndarray) -> MaskHits:
        """The rows where ``keep`` [R] bool is True."""
        return MaskHits(self.anchor[keep], self.view[keep], self.mask[keep], self.strict[keep],
                        None if self.occluded is None else self.occluded[keep])


@torch.no_grad()
def collect_mask_hits(run, views: list[int] | None = None, loose_factor: float = 2.0,
                      require_mask: bool = True, progress: bool = True,
                      vote_max_dz: float = 0.02) -> MaskHits:
    """Render every view once and record which anchors land on which SAM mask.

    An anchor is recorded when it passes :func:`instgs.render.visibility.visible_points`
    with the run's tolerances (``loss.visibility_tol_abs`` / ``_rel``) times
    ``loose_factor`` and the pixel under it carries a mask; ``strict`` marks the rows that
    pass the unscaled tolerances and, if the run used it, the occlusion test of
    :func:`instgs.render.visibility.occluded_near_border`. With that test on, ``occluded``
    marks the rows whose anchor another anchor hides by more than ``vote_max_dz`` (scene
    units) at its pixel (:func:`~instgs.render.visibility.hidden_by_points`), whatever the
    border distance (they do not vote).

    Args:
        run: a :class:`~instgs.run.LoadedRun`. views: default the training views.
        loose_factor: >= 1, widening of the depth tolerance for the looser rows.
        require_mask: keep only sightings on masked pixels (else unmasked ones have mask -1).
        vote_max_dz: depth margin of the ``occluded`` flag.

    Returns:
        :class:`MaskHits`.

    Raises:
        InputError: no mask folder for the scene. ValueError: ``loose_factor < 1``.
    """
    from tqdm import tqdm

    from instgs.render import render
    from instgs.render.visibility import (hidden_by_points, occluded_near_border,
                                          point_footprint_radii, point_zbuffer,
                                          visible_points)

    if loose_factor < 1:
        raise ValueError(f"loose_factor must be >= 1, got {loose_factor}")
    lc = run.cfg.loss
    views = list(run.scene.train_ids) if views is None else views
    masks = load_view_masks(run, views) if require_mask else {}
    anchors = run.model.anchors.detach()
    occlusion = require_mask and lc.occlusion_border_px > 0
    radii = point_footprint_radii(anchors).to(anchors.device) if occlusion else None
    cols: list[list[np.ndarray]] = [[], [], [], [], []]
    for i in tqdm(views, desc="anchor/mask hits", disable=not progress, leave=False):
        cam = run.scene.cameras[i]
        out = render(run.decode(i).gaussians, cam, backend=run.render_backend)
        args = (anchors, cam.viewmats[0], cam.Ks[0], out.depth[0], out.alpha[0])
        idx, pix = visible_points(*args, tol_abs=lc.visibility_tol_abs * loose_factor,
                                  tol_rel=lc.visibility_tol_rel * loose_factor)
        strict_idx, strict_pix = (idx, pix) if loose_factor == 1 else visible_points(
            *args, tol_abs=lc.visibility_tol_abs, tol_rel=lc.visibility_tol_rel)
        hidden = torch.zeros(len(idx), dtype=torch.bool)
        if occlusion and len(idx):
            h, w = masks[i].shape[-2:]
            zbuf = point_zbuffer(anchors, radii, cam.viewmats[0], cam.Ks[0], h, w)
            hidden = hidden_by_points(anchors, radii, idx, pix, cam.viewmats[0], cam.Ks[0], h,
                                      w, vote_max_dz, zbuf=zbuf).cpu()
            drop = occluded_near_border(anchors, radii, strict_idx, strict_pix, cam.viewmats[0],
                                        cam.Ks[0], masks[i], min_dz=lc.occlusion_min_dz,
                                        border_px=lc.occlusion_border_px, zbuf=zbuf)
            strict_idx = strict_idx[~drop]
        if require_mask:
            m = masks[i].reshape(-1)[pix]
            on = m >= 0
            idx, m, hidden = idx[on].numpy(), m[on].numpy(), hidden[on].numpy()
        else:
            idx, m, hidden = idx.numpy(), np.full(len(idx), -1, np.int64), hidden.numpy()
        cols[0].append(idx)
        cols[1].append(np.full(len(idx), i, np.int64))
        cols[2].append(m.astype(np.int64))
        cols[3].append(np.isin(idx, strict_idx.numpy()))
        cols[4].append(hidden)
    cat = [np.concatenate(c) if c else np.zeros(0, t) for c, t in
           zip(cols, (np.int64, np.int64, np.int64, bool, bool))]
    return MaskHits(*cat[:4], occluded=cat[4] if occlusion else None)


def vote_unobserved(labels: np.ndarray, observed: np.ndarray, hits: MaskHits,
                    min_votes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Label anchors whose features were never trained by the masks they fall into.

    Every (view, mask) with at least ``min_votes`` observed anchors takes the majority
    instance label of those anchors, with confidence = the majority's share. An unobserved
    anchor then takes the label with the largest summed confidence over all its sightings;
    anchors with no usable sighting keep their label (the nearest observed anchor's, from
    :func:`~instgs.segment.segment_anchors`). instgs addition (docs/instance-features.md);
    the released code relabels every point with an MLP on (RGB, PE(xyz)) instead.

    Args:
        labels: [N] int64 instance labels (>= 0) from :func:`segment_anchors`.
        observed: [N] bool, the anchors seeding and merging used.
        hits: :class:`MaskHits` over the same anchors; rows flagged ``occluded`` and rows
            with mask -1 are ignored.
        min_votes: observed anchors a mask needs before it may vote.

    Returns:
        (new labels [N] int64, voted [N] bool: the unobserved anchors a vote labelled).

    Raises:
        InputError: shape mismatch or negative labels.
    """
    labels = np.asarray(labels, np.int64).reshape(-1)
    observed = np.asarray(observed, bool).reshape(-1)
    if observed.shape != labels.shape:
        raise InputError(f"observed has {observed.shape[0]} entries, labels {labels.shape[0]}")
    if len(labels) and labels.min() < 0:
        raise InputError("labels must be >= 0 (run segment_anchors first)")
    out = labels.copy()
    if len(hits.anchor) == 0 or len(labels) == 0:
        return out, np.zeros(len(labels), bool)
    k = int(labels.max()) + 1
    keep = hits.mask >= 0
    if hits.occluded is not None:
        keep &= ~hits.occluded
    hits = hits.select(keep)
    if len(hits.anchor) == 0:
        return out, np.zeros(len(labels), bool)
    _, group = np.unique(np.stack([hits.view, hits.mask], 1), axis=0, return_inverse=True)
    group = group.reshape(-1)
    g = int(group.max()) + 1
    obs_row = observed[hits.anchor]
    votes = np.zeros((g, k), np.float64)
    np.add.at(votes, (group[obs_row], labels[hits.anchor[obs_row]]), 1.0)
    total = votes.sum(1)
    usable = total >= min_votes
    g_label = votes.argmax(1)
    g_conf = votes.max(1) / np.maximum(total, 1.0)
    rows = ~obs_row & usable[group]
    if not rows.any():
        return out, np.zeros(len(labels), bool)
    a = hits.anchor[rows]
    ua, ai = np.unique(a, return_inverse=True)
    score = np.zeros((len(ua), k), np.float64)
    np.add.at(score, (ai, g_label[group[rows]]), g_conf[group[rows]])
    out[ua] = score.argmax(1)
    voted = np.zeros(len(labels), bool)
    voted[ua] = True
    return out, voted


def vote_unobserved_ref(labels, observed, hits: MaskHits, min_votes: int = 3) -> list[int]:
    """Loop twin of :func:`vote_unobserved` (tests only); ties go to the smallest label."""
    if hits.occluded is not None:
        hits = hits.select(~hits.occluded)
    groups: dict[tuple[int, int], list[int]] = {}
    for a, v, m in zip(hits.anchor.tolist(), hits.view.tolist(), hits.mask.tolist()):
        if observed[a] and m >= 0:
            groups.setdefault((v, m), []).append(int(labels[a]))
    verdict = {}
    for key, labs in groups.items():
        if len(labs) >= min_votes:
            best = min(set(labs), key=lambda x: (-labs.count(x), x))
            verdict[key] = (best, labs.count(best) / len(labs))
    score: dict[int, dict[int, float]] = {}
    for a, v, m in zip(hits.anchor.tolist(), hits.view.tolist(), hits.mask.tolist()):
        if not observed[a] and (v, m) in verdict:
            lab, conf = verdict[(v, m)]
            score.setdefault(a, {}).setdefault(lab, 0.0)
            score[a][lab] += conf
    out = [int(x) for x in labels]
    for a, sc in score.items():
        out[a] = min(sc, key=lambda x: (-sc[x], x))
    return out


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
    from instgs.losses import instance_feature_losses

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
                         backend=run.render_backend)
            sem = instance_feature_losses(out.features[0], out.alpha[0], masks[i], cfg,
                                          "joint", mapped=True)
            loss = cfg.lambda_separation * sem["separation"] + \
                cfg.lambda_cohesion * sem["cohesion"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        return F.normalize(codebook.detach(), dim=-1).numpy()

    return refine
