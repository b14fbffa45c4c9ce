"""Bake a trained Semantic-Scaffold-GS run into static 3DGS Gaussians with SH colour.

The Scaffold decoders take the view direction (and an appearance embedding per training
image), so a neural Gaussian's opacity, shape and colour change with the view. A standard
3DGS file holds one opacity, scale and rotation per Gaussian and a colour that varies with
the view only through spherical harmonics. :func:`bake` decodes every child of every anchor
from every training camera that sees the anchor (the frustum test of
:meth:`~instgs.model.scaffold.ScaffoldModel.visible_anchors`, each view with its own
appearance embedding) and reduces those samples:

* **positions**: anchor + offset x scaling (view independent, exact);
* **kept children**: those that some training view activates (decoded opacity > 0); the
  others are never drawn by the Scaffold renderer and are dropped;
* **opacity** (``BakeConfig.opacity``): ``mean-seen`` = mean of max(o, 0) over the views that
  see the anchor (the expected opacity over training views); ``mean-active`` = mean over
  the views that draw the child; ``max``;
* **scale and rotation** (``BakeConfig.weights``): weighted mean over the views, scales in log
  space (geometric mean), quaternions sign-aligned then normalised; weights ``active`` (1
  where the view draws the child), ``opacity`` (max(o, 0)) or ``seen`` (1);
* **colour**: SH of ``sh_degree`` fitted by weighted least squares to the decoded colours at
  the directions ``normalize(mean - camera centre)`` of those views, with a ridge
  ``BakeConfig.ridge x sum(weights)`` on the non-DC coefficients (fewer views than
  coefficients stay well posed). The fit targets ``rgb - 0.5`` as 3DGS's ``SH2RGB``.

References: Scaffold-GS ``generate_neural_gaussians`` (what is decoded); the SH fitting of
Octree-AnyGS and of the open Scaffold-GS PR #113 (the idea; no code from them). The choices
are measured against each other in docs/export.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from instgs.core.checks import InputError
from instgs.render.sh import num_sh_bases, sh_basis
from instgs.run import InstanceLabels, LoadedRun

from .splats import Splats

__all__ = ["BakeConfig", "bake", "with_instance_ids"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BakeConfig:
    """How a Scaffold run becomes static Gaussians (module docstring; docs/export.md)."""

    sh_degree: int = 3
    """SH degree of the colour, 0..3 (3DGS uses 3)."""
    opacity: Literal["mean-seen", "mean-active", "max"] = "mean-seen"
    """Canonical opacity: mean of max(o, 0) over the views that see the anchor, mean over
    the views that draw the child, or the maximum."""
    weights: Literal["active", "opacity", "seen"] = "active"
    """Per-view weights of the colour fit and the scale / rotation means."""
    ridge: float = 1e-3
    """Ridge on the non-DC SH coefficients, relative to the summed weights."""
    views: Literal["train", "all"] = "train"
    """Views to sample: the training views (each with its appearance embedding) or all."""
    chunk: int = 8192
    """Anchors per pass (memory: ~(K^2 + 3K) floats per child)."""
    progress: bool = True
    """Show a progress bar."""


def _check(cfg: BakeConfig) -> None:
    num_sh_bases(cfg.sh_degree)
    if cfg.opacity not in ("mean-seen", "mean-active", "max"):
        raise InputError(f"unknown opacity rule {cfg.opacity!r}",
                         fix="use mean-seen, mean-active or max")
    if cfg.weights not in ("active", "opacity", "seen"):
        raise InputError(f"unknown weight rule {cfg.weights!r}", fix="use active, opacity or seen")
    if cfg.ridge < 0 or cfg.chunk < 1:
        raise InputError(f"ridge must be >= 0 and chunk >= 1, got {cfg.ridge}, {cfg.chunk}")


class _Accumulator:
    """Per-child running sums of one anchor chunk (A anchors x k children)."""

    def __init__(self, a: int, k: int, nb: int):
        z = torch.zeros
        self.seen = z(a, k)
        self.n_active = z(a, k)
        self.o_clamped = z(a, k)
        self.o_active = z(a, k)
        self.o_max = z(a, k)
        self.w = z(a, k)
        self.log_scale = z(a, k, 3)
        self.quat = z(a, k, 4)
        self.ref = z(a, k, 4)
        self.btb = z(a, k, nb, nb)
        self.btc = z(a, k, nb, 3)

    def add(self, rows: Tensor, attrs: dict[str, Tensor], basis: Tensor, rule: str) -> None:
        o = attrs["opacity"]
        active = (o > 0).float()
        w = {"active": active, "opacity": o.clamp(min=0), "seen": torch.ones_like(o)}[rule]
        self.seen[rows] += 1
        self.n_active[rows] += active
        self.o_clamped[rows] += o.clamp(min=0)
        self.o_active[rows] += o * active
        self.o_max[rows] = torch.maximum(self.o_max[rows], o)
        self.w[rows] += w
        self.log_scale[rows] += w[..., None] * attrs["scales"].clamp(min=1e-12).log()
        q = attrs["quats"]
        ref = self.ref[rows]
        fresh = (ref.abs().sum(-1) == 0) & (w > 0)
        ref = torch.where(fresh[..., None], q, ref)
        self.ref[rows] = ref
        sign = torch.where((q * ref).sum(-1) < 0, -1.0, 1.0)
        self.quat[rows] += (w * sign)[..., None] * q
        wb = w[..., None] * basis  # [A, k, nb]
        self.btb[rows] += wb[..., :, None] * basis[..., None, :]
        self.btc[rows] += wb[..., :, None] * (attrs["colors"] - 0.5)[..., None, :]


def _solve(acc: _Accumulator, cfg: BakeConfig) -> dict[str, Tensor]:
    """Reduce the sums to one opacity, scale, rotation and SH per child."""
    w = acc.w.clamp(min=1e-12)
    nb = acc.btb.shape[-1]
    reg = torch.ones(nb)
    reg[0] = 0.0
    lhs = acc.btb + (cfg.ridge * w)[..., None, None] * torch.diag(reg) + \
        1e-9 * torch.eye(nb)
    sh = torch.linalg.solve(lhs.double(), acc.btc.double()).float()  # [A, k, nb, 3]
    opacity = {"mean-seen": acc.o_clamped / acc.seen.clamp(min=1),
               "mean-active": acc.o_active / acc.n_active.clamp(min=1),
               "max": acc.o_max}[cfg.opacity]
    return {"opacity": opacity, "scales": torch.exp(acc.log_scale / w[..., None]),
            "quats": torch.nn.functional.normalize(acc.quat, dim=-1), "sh": sh,
            "keep": acc.n_active > 0}


def _views(run: LoadedRun, which: str) -> list[int]:
    views = list(run.scene.train_ids) if which == "train" else list(range(len(run.scene)))
    if not views:
        raise InputError("the run's scene has no training view to bake from", run.run_dir,
                         "train the run on a scene with training views")
    return views


@torch.no_grad()
def bake(run: LoadedRun, cfg: BakeConfig | None = None,
         instances: InstanceLabels | None = None) -> Splats:
    """Bake a run's neural Gaussians into static Gaussians (module docstring).

    Args:
        run: :class:`~instgs.run.LoadedRun` (its model is moved to the CPU copy it is on).
        cfg: :class:`BakeConfig`.
        instances: the run's instance labels; their ``gaussian_labels`` (or anchor labels)
            become ``instance_ids`` (-1 without).

    Returns:
        :class:`~instgs.export.splats.Splats` of the kept children, in child order.

    Raises:
        InputError: bad settings, a scene without training views, instance labels of
            another size than the model.
    """
    from tqdm import tqdm

    cfg = cfg or BakeConfig()
    _check(cfg)
    model = run.model
    k, n = model.cfg.n_offsets, model.num_anchors
    nb = num_sh_bases(cfg.sh_degree)
    views = _views(run, cfg.views)
    cams = run.scene.cameras.to(model.anchors.device)
    centers = cams.centers
    vis = torch.stack([model.visible_anchors(cams.viewmats[v], cams.Ks[v], cams.width,
                                             cams.height) for v in views])  # [V, N]
    app = {v: (run.app_index[v] if v in run.scene.train_ids else None) for v in views}
    parts = []
    bar = tqdm(total=math.ceil(n / cfg.chunk) * len(views), desc="bake",
               disable=not cfg.progress, leave=False)
    for a0 in range(0, n, cfg.chunk):
        idx = torch.arange(a0, min(n, a0 + cfg.chunk), device=model.anchors.device)
        acc = _Accumulator(len(idx), k, nb)
        for vi, v in enumerate(views):
            rows = torch.nonzero(vis[vi, idx]).squeeze(1)
            bar.update(1)
            if rows.numel() == 0:
                continue
            attrs = {key: t.float().cpu() for key, t in model.child_attributes(
                idx[rows], centers[v], app[v]).items()}
            dirs = torch.nn.functional.normalize(attrs["means"] - centers[v].cpu(), dim=-1)
            acc.add(rows.cpu(), attrs, sh_basis(dirs, cfg.sh_degree), cfg.weights)
        res = _solve(acc, cfg)
        means = model.child_attributes(idx, centers[views[0]])["means"].float().cpu()
        keep = res["keep"].reshape(-1)
        child = (idx.cpu()[:, None] * k + torch.arange(k)[None]).reshape(-1)
        parts.append({"means": means.reshape(-1, 3)[keep], "child": child[keep],
                      **{key: res[key].reshape(len(idx) * k, *res[key].shape[2:])[keep]
                         for key in ("opacity", "scales", "quats", "sh")}})
    bar.close()
    cat = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
    log.info("baked %d of %d neural Gaussians (the rest no training view draws), SH degree "
             "%d, from %d views", len(cat["child"]), n * k, cfg.sh_degree, len(views))
    s = Splats(cat["means"], cat["quats"], cat["scales"],
               cat["opacity"].clamp(1e-6, 1 - 1e-6), cat["sh"],
               torch.full((len(cat["child"]),), -1, dtype=torch.int32), cat["child"])
    return with_instance_ids(s, instances, run)


def with_instance_ids(s: Splats, inst: InstanceLabels | None, run: LoadedRun) -> Splats:
    """``s`` with ``instance_ids`` from the run's instance labels (per neural Gaussian,
    ``child_ids`` indexing ``gaussian_labels``; -1 everywhere without labels).

    Raises:
        InputError: labels of another anchor count than the run's model (stale).
    """
    from dataclasses import replace

    if inst is None:
        return replace(s, instance_ids=torch.full((len(s),), -1, dtype=torch.int32))
    n, k = run.model.num_anchors, run.model.cfg.n_offsets
    if len(inst.anchor_labels) != n:
        raise InputError(f"{len(inst.anchor_labels)} instance labels for {n} anchors",
                         run.paths.instances, f"rerun `instgs segment {run.run_dir}`")
    g = inst.gaussian_labels
    labels = g if g is not None and len(g) == n * k else np.repeat(inst.anchor_labels, k)
    ids = torch.as_tensor(np.asarray(labels)[s.child_ids.numpy()], dtype=torch.int32)
    return replace(s, instance_ids=ids)
