"""The training loop: data in, checkpoints and metrics out. No math lives here.

Stages (seed 004 §3.2, scaled by ``--steps``) are explicit objects (:data:`STAGES`), not
``if iteration == ...`` branches. Run directory layout::

    runs/<scene>/
      config.json      resolved TrainConfig (plain data)
      manifest.json    versions, git sha, stage timestamps
      scene.json       cameras, split, image names
      ckpt/latest.pt   atomic checkpoint (model, optimiser, statistics, step, rng)
      metrics.json     held-out PSNR / SSIM, wall time, Gaussian counts
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from instgs.core.artifacts import (atomic_torch_save, config_to_dict, update_manifest,
                                   write_json)
from instgs.core.cameras import Cameras
from instgs.core.checks import InputError
from instgs.model.scaffold import ScaffoldModel
from instgs.train.config import TrainConfig
from instgs.train.densify import AnchorStats, grow_anchors, prune_anchors
from instgs.train.losses import (instance_feature_losses, photometric_loss,
                                 projected_instance_losses, psnr, ssim)

__all__ = ["Stage", "STAGES", "stage_at", "expon_lr", "build_optimizer", "Trainer", "train",
           "load_run", "config_from_dict", "LoadedRun", "load_label_maps"]


@dataclass(frozen=True)
class Stage:
    """One phase of the progressive schedule.

    Attributes:
        name: ``appearance`` | ``separate`` | ``joint``.
        semantic: instance-feature losses are active.
        detach_geometry: the feature render uses detached geometry (losses reach only the
            instance features), InstanceGaussian 10k-20k.
    """

    name: str
    semantic: bool
    detach_geometry: bool


STAGES = (
    Stage("appearance", semantic=False, detach_geometry=False),
    Stage("separate", semantic=True, detach_geometry=True),
    Stage("joint", semantic=True, detach_geometry=False),
)


def stage_at(step: int, cfg: TrainConfig, semantics: bool) -> Stage:
    """The stage active at ``step`` (0-based) under ``cfg``'s scaled schedule."""
    if not semantics or step < cfg.scale(cfg.schedule.semantic_start):
        return STAGES[0]
    if step < cfg.scale(cfg.schedule.joint_start):
        return STAGES[1]
    return STAGES[2]


def expon_lr(lr_init: float, lr_final: float, max_steps: int) -> Callable[[int], float]:
    """Log-linear decay from ``lr_init`` to ``lr_final`` over ``max_steps`` (3DGS
    ``get_expon_lr_func`` without delay)."""

    def fn(step: int) -> float:
        if lr_init == lr_final:
            return lr_init
        if lr_init <= 0 or lr_final <= 0:
            return 0.0
        t = min(max(step / max(max_steps, 1), 0.0), 1.0)
        return math.exp(math.log(lr_init) * (1 - t) + math.log(lr_final) * t)

    return fn


def build_optimizer(model: ScaffoldModel, cfg: TrainConfig, extent: float
                    ) -> tuple[torch.optim.Adam, dict[str, Callable[[int], float]]]:
    """Adam with one named group per parameter set, and the per-group LR schedules.

    Returns:
        (optimizer, {group name: step -> lr}).
    """
    o = cfg.optim
    n = cfg.steps
    sched = {
        "offsets": expon_lr(o.offset_lr * extent, o.offset_lr_final * extent, n),
        "anchor_feat": expon_lr(o.feature_lr, o.feature_lr, n),
        "log_scaling": expon_lr(o.scaling_lr, o.scaling_lr, n),
        "mlp_opacity": expon_lr(o.mlp_opacity_lr, o.mlp_opacity_lr_final, n),
        "mlp_cov": expon_lr(o.mlp_cov_lr, o.mlp_cov_lr_final, n),
        "mlp_color": expon_lr(o.mlp_color_lr, o.mlp_color_lr_final, n),
    }
    groups = [
        {"params": [model.offsets], "name": "offsets"},
        {"params": [model.anchor_feat], "name": "anchor_feat"},
        {"params": [model.log_scaling], "name": "log_scaling"},
        {"params": list(model.mlp_opacity.parameters()), "name": "mlp_opacity"},
        {"params": list(model.mlp_cov.parameters()), "name": "mlp_cov"},
        {"params": list(model.mlp_color.parameters()), "name": "mlp_color"},
    ]
    if model.ins_feat is not None:
        joint = cfg.scale(cfg.schedule.joint_start)
        sched["ins_feat"] = lambda s: o.ins_feat_lr if s < joint else o.ins_feat_lr_joint
        groups.append({"params": [model.ins_feat], "name": "ins_feat"})
    if model.appearance is not None:
        sched["appearance"] = expon_lr(o.appearance_lr, o.appearance_lr_final, n)
        groups.append({"params": list(model.appearance.parameters()), "name": "appearance"})
    for g in groups:
        g["lr"] = sched[g["name"]](0)
    return torch.optim.Adam(groups, lr=0.0, eps=1e-15), sched


def _random_points(cameras: Cameras, n: int, seed: int) -> Tensor:
    """Points uniform in a ball around the cameras' common focus (no point cloud given).

    The focus is the least-squares point closest to all optical axes; the radius is 0.6 x
    the median camera distance to it.
    """
    c2w = cameras.c2w
    origins = c2w[:, :3, 3].double()
    dirs = torch.nn.functional.normalize(c2w[:, :3, 2].double(), dim=-1)
    eye = torch.eye(3, dtype=torch.float64)
    proj = eye[None] - dirs[:, :, None] * dirs[:, None, :]
    focus = torch.linalg.lstsq(proj.sum(0), (proj @ origins[:, :, None]).sum(0)).solution[:, 0]
    radius = 0.6 * float((origins - focus).norm(dim=-1).median())
    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    r = radius * torch.rand(n, 1, generator=g, dtype=torch.float64) ** (1 / 3)
    return (focus + d * r).float()


def appearance_index(scene) -> dict[int, int]:
    """View index -> appearance-embedding row: training views use their own row (in
    ``train_ids`` order); held-out views borrow the nearest training camera's row."""
    app = {i: k for k, i in enumerate(scene.train_ids)}
    centers = scene.cameras.centers
    for i in scene.test_ids:
        app[i] = int((centers[scene.train_ids] - centers[i]).norm(dim=-1).argmin())
    return app


class Trainer:
    """Semantic-Scaffold-GS trainer (appearance + progressive instance features).

    Args:
        cfg: the resolved training configuration.

    Raises:
        InputError: unreadable scene, missing masks when ``semantics="on"``, a resume with
            no checkpoint.
    """

    def __init__(self, cfg: TrainConfig):
        from instgs.data import read_scene

        # absolute scene path: later stages (segment, language) reload the scene from the run
        cfg = dataclasses.replace(cfg, data=Path(cfg.data).resolve())
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto"
            else cfg.device)
        self.scene = read_scene(cfg.data, format=cfg.format, downscale=cfg.downscale,
                                images_dir=cfg.images_dir, test_every=cfg.test_every,
                                max_images=cfg.max_images)
        self.run_dir = Path(cfg.run_dir) if cfg.run_dir else Path("runs") / self.scene.name
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.cams = self.scene.cameras.to(self.device)
        self.train_ids = list(self.scene.train_ids)
        self.test_ids = list(self.scene.test_ids)
        self.app_index = appearance_index(self.scene)
        self.images = self._load_images(self.train_ids + self.test_ids)
        self.masks = self._load_masks()
        self.semantics = self.masks is not None
        self.step = 0
        ckpt_path = self.run_dir / "ckpt" / "latest.pt"
        if cfg.resume:
            if not ckpt_path.is_file():
                raise InputError("no checkpoint to resume from", ckpt_path,
                                 "train without --resume first, or point --run-dir at the run")
            self._load(ckpt_path)
        else:
            self._init_model()

    # ------------------------------------------------------------------ setup
    def _load_images(self, ids: list[int]) -> dict[int, Tensor]:
        from tqdm import tqdm

        out = {}
        for i in tqdm(ids, desc="loading images", disable=not self.cfg.progress, leave=False):
            img = self.scene.load_image(i)
            out[i] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
        return out

    def _load_masks(self) -> dict[int, Tensor] | None:
        cfg = self.cfg
        if cfg.semantics == "off" or cfg.model.ins_feat_dim == 0:
            return None
        feat_dir = self.scene.root / cfg.masks_dir
        if not feat_dir.is_dir():
            if cfg.semantics == "on":
                raise InputError("no SAM masks for instance-feature training", feat_dir,
                                 f"run `instgs masks --data {self.scene.root}` first")
            return None
        from instgs.masks.io import list_feature_stems

        masks = load_label_maps(self.scene, feat_dir, cfg.sam_level, self.train_ids)
        # documented skips, never a crash deep inside the loop
        stems = {p.stem for p in self.scene.image_paths}
        orphans = [s for s in list_feature_stems(feat_dir) if s not in stems]
        if orphans:
            warnings.warn(f"{feat_dir}: {len(orphans)} mask file(s) have no image in the scene "
                          f"(e.g. {orphans[:3]}); they are ignored", stacklevel=2)
        empty = [self.scene.image_paths[i].name for i, m in masks.items() if m.max() < 0]
        if empty:
            warnings.warn(f"{feat_dir}: {len(empty)} training view(s) have no valid mask pixel at "
                          f"level {cfg.sam_level!r} (e.g. {empty[:3]}); the instance losses "
                          "skip them and they train appearance only", stacklevel=2)
        if len(empty) == len(masks):
            raise InputError(f"no training view has a valid mask pixel at level "
                             f"{cfg.sam_level!r}", feat_dir,
                             "choose another --sam-level or regenerate the masks")
        return masks

    def _init_model(self) -> None:
        cfg, scene = self.cfg, self.scene
        points = scene.points
        if points is None or len(points) == 0:
            points = _random_points(scene.cameras, cfg.random_init_points, cfg.seed)
        model_cfg = cfg.model
        if not self.semantics and model_cfg.ins_feat_dim and cfg.semantics == "off":
            model_cfg = dataclasses.replace(model_cfg, ins_feat_dim=0)
        self.model = ScaffoldModel(model_cfg, points, num_images=len(self.train_ids),
                                   fixed_anchors=scene.fixed_anchors,
                                   colors=scene.points_rgb).to(self.device)
        self.extent = float(scene.scene_scale)
        self.optimizer, self.sched = build_optimizer(self.model, cfg, self.extent)
        self.stats = AnchorStats(self.model.num_anchors, model_cfg.n_offsets, self.device)
        self.elapsed = 0.0
        write_json(self.run_dir / "config.json", config_to_dict(cfg))
        write_json(self.run_dir / "scene.json", scene.to_json())

    @property
    def densify_on(self) -> bool:
        return self.cfg.densify.enabled and not self.model.fixed_anchors

    # ------------------------------------------------------------------ one step
    def render_view(self, i: int, *, background: Tensor | None = None,
                    features: str | None = None, detach_features: bool = False,
                    return_top_ids: bool = False):
        """Decode and render view ``i``.

        Args:
            i: image index into the scene.
            background: [3] colour; None = black.
            features: None, or ``"instance"`` to render the instance features as extra
                channels in the same pass (joint) / a second pass (``detach_features``).

        Returns:
            (NeuralGaussians, RenderOutput for RGB, RenderOutput for features or None)
        """
        from instgs.render import render

        cam = self.cams[i]
        vm, K = cam.viewmats[0], cam.Ks[0]
        ng = self.model.decode(vm, K, cam.width, cam.height, image_id=self.app_index[i])
        bg = None if background is None else background[None]
        feat = None
        if features == "instance" and ng.ins_feat is not None:
            feat = (ng.ins_feat + 1) / 2 if self.cfg.render_mapped_features else ng.ins_feat
        if feat is not None and detach_features:
            out = render(ng.gaussians, cam, backgrounds=bg, backend=self.cfg.backend,
                         return_top_ids=return_top_ids)
            fout = render(ng.gaussians.detached(), cam, features=feat,
                          backend=self.cfg.backend)
            return ng, out, fout
        out = render(ng.gaussians, cam, features=feat, backgrounds=bg,
                     backend=self.cfg.backend, return_top_ids=return_top_ids)
        return ng, out, (out if feat is not None else None)

    def anchor_radii(self) -> Tensor:
        """[N] footprint radius of every anchor (mean distance to its 4 nearest anchors),
        recomputed when the anchor set changes (growing or pruning replaces the anchor
        tensor); used by the occlusion test."""
        from instgs.render.visibility import point_footprint_radii

        anchors = self.model.anchors.detach()
        key = (anchors.data_ptr(), anchors.shape[0])
        if getattr(self, "_radii_key", None) != key:
            self._radii = point_footprint_radii(anchors).to(self.device)
            self._radii_key = key
        return self._radii

    def projected_losses(self, i: int, out, phase: str) -> dict[str, Tensor]:
        """The ``projected`` instance-feature target for view ``i`` (see
        :func:`instgs.train.losses.projected_instance_losses`): anchors that pass the depth
        test against this step's render (``out``, detached) take the SAM mask id under them.
        """
        from instgs.render.visibility import occluded_near_border, visible_points

        cam, lc = self.cams[i], self.cfg.loss
        idx, pix = visible_points(self.model.anchors.detach(), cam.viewmats[0], cam.Ks[0],
                                  out.depth[0].detach(), out.alpha[0].detach(),
                                  tol_abs=lc.visibility_tol_abs, tol_rel=lc.visibility_tol_rel)
        masks = self.masks[i].to(self.device)
        ids = masks.reshape(-1)[pix]
        on = ids >= 0
        idx, ids = idx[on], ids[on]
        if lc.occlusion_border_px > 0 and len(idx):
            drop = occluded_near_border(
                self.model.anchors.detach(), self.anchor_radii(), idx, pix[on],
                cam.viewmats[0], cam.Ks[0], masks,
                min_dz=lc.occlusion_min_dz, border_px=lc.occlusion_border_px)
            idx, ids = idx[~drop], ids[~drop]
        f = F.normalize(self.model.ins_feat[idx], dim=-1)
        if self.cfg.render_mapped_features:
            f = (f + 1) / 2
        return projected_instance_losses(f, ids, lc, phase,
                                         mapped=self.cfg.render_mapped_features)

    def _set_lr(self) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = self.sched[g["name"]](self.step)

    def train_step(self, i: int) -> dict[str, float]:
        """One optimisation step on training image ``i``; returns scalar logs."""
        cfg = self.cfg
        stage = stage_at(self.step, cfg, self.semantics)
        self._set_lr()
        bg = (torch.rand(3, device=self.device) if cfg.random_background
              else torch.zeros(3, device=self.device))
        target = cfg.loss.instance_target
        rendered = stage.semantic and target in ("rendered", "both")
        ng, out, fout = self.render_view(
            i, background=bg, features="instance" if rendered else None,
            detach_features=stage.detach_geometry)
        gt = self.images[i].to(self.device).float() / 255.0
        rgb = out.rgb[0]
        loss = photometric_loss(rgb, gt, cfg.loss.lambda_dssim)
        logs = {"l_rgb": float(loss.detach())}
        if cfg.loss.lambda_scale_reg > 0 and len(ng.gaussians):
            loss = loss + cfg.loss.lambda_scale_reg * ng.gaussians.scales.prod(dim=1).mean()
        if stage.semantic and fout is not None:
            sem = instance_feature_losses(fout.features[0], fout.alpha[0],
                                          self.masks[i].to(self.device), cfg.loss,
                                          stage.name, mapped=cfg.render_mapped_features)
            loss = loss + cfg.loss.lambda_separation * sem["separation"] \
                + cfg.loss.lambda_cohesion * sem["cohesion"]
            logs["l_sep"] = float(sem["separation"].detach())
            logs["l_coh"] = float(sem["cohesion"].detach())
        if stage.semantic and target in ("projected", "both") and self.model.ins_feat is not None:
            sem = self.projected_losses(i, out, stage.name)
            loss = loss + cfg.loss.lambda_separation * sem["separation"] \
                + cfg.loss.lambda_cohesion * sem["cohesion"]
            logs["l_sep_proj"] = float(sem["separation"].detach())
            logs["l_coh_proj"] = float(sem["cohesion"].detach())
        means2d = out.means2d
        track = self.densify_on and self.step >= cfg.scale(cfg.densify.start_stat) \
            and self.step <= cfg.scale(cfg.densify.update_until) and means2d.requires_grad
        if track:
            means2d.retain_grad()
        loss.backward()
        with torch.no_grad():
            logs["psnr"] = psnr(rgb.detach(), gt)
            if track and means2d.grad is not None:
                self.stats.update(ng, means2d.grad[0], out.radii[0], self.cams.width,
                                  self.cams.height)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        logs["num_gs"] = len(ng.gaussians)
        self._densify()
        return logs

    def _densify(self) -> None:
        cfg, d = self.cfg, self.cfg.densify
        s = self.step
        if not self.densify_on or s > cfg.scale(d.update_until) or s < cfg.scale(d.update_from):
            return
        if s % d.update_interval != 0:
            return
        grow_anchors(self.model, self.optimizer, self.stats, d)
        prune_anchors(self.model, self.optimizer, self.stats, d)

    # ------------------------------------------------------------------ loop
    def train(self) -> Path:
        """Run until ``steps`` or ``max_minutes``; evaluate; save. Returns the run dir."""
        from tqdm import tqdm

        cfg = self.cfg
        rng = np.random.default_rng(cfg.seed + self.step)
        order: list[int] = []
        t0 = time.time() - self.elapsed
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", disable=not cfg.progress,
                   dynamic_ncols=True)
        stopped_early = False
        while self.step < cfg.steps:
            if not order:
                order = list(rng.permutation(self.train_ids))
            i = int(order.pop())
            logs = self.train_step(i)
            self.step += 1
            self.elapsed = time.time() - t0
            bar.update(1)
            if self.step % 10 == 0 or self.step == cfg.steps:
                bar.set_postfix(loss=f"{logs['l_rgb']:.4f}", psnr=f"{logs['psnr']:.2f}",
                                gs=logs["num_gs"], anchors=self.model.num_anchors,
                                stage=stage_at(self.step - 1, cfg, self.semantics).name)
            if cfg.eval_every and self.step % cfg.eval_every == 0 and self.test_ids:
                m = self.evaluate()
                bar.write(f"step {self.step}: test PSNR {m['psnr']:.2f} SSIM {m['ssim']:.4f}")
            if cfg.save_every and self.step % cfg.save_every == 0:
                self.save()
            if cfg.max_minutes is not None and self.elapsed > cfg.max_minutes * 60:
                bar.write(f"wall-clock budget of {cfg.max_minutes} min reached at step "
                          f"{self.step}")
                stopped_early = True
                break
        bar.close()
        self.save()
        metrics = self.evaluate() if self.test_ids else {}
        metrics.update(step=self.step, steps=cfg.steps, wall_seconds=round(self.elapsed, 1),
                       stopped_by_time_budget=stopped_early,
                       num_anchors=self.model.num_anchors, semantics=self.semantics)
        write_json(self.run_dir / "metrics.json", metrics)
        update_manifest(self.run_dir, "train", data=str(cfg.data), **{
            k: v for k, v in metrics.items() if k in ("psnr", "ssim", "step", "wall_seconds")})
        if metrics.get("psnr") is not None:
            print(f"held-out PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f} "
                  f"({len(self.test_ids)} views) after {self.step} steps, "
                  f"{self.elapsed / 60:.1f} min")
        return self.run_dir

    @torch.no_grad()
    def evaluate(self, ids: list[int] | None = None) -> dict:
        """Mean PSNR / SSIM over held-out views (black background)."""
        ids = self.test_ids if ids is None else ids
        ps, ss = [], []
        for i in ids:
            _, out, _ = self.render_view(i)
            rgb = out.rgb[0].clamp(0, 1)
            gt = self.images[i].to(self.device).float() / 255.0
            ps.append(psnr(rgb, gt))
            ss.append(float(ssim(rgb, gt)))
        return {"psnr": float(np.mean(ps)) if ps else None,
                "ssim": float(np.mean(ss)) if ss else None,
                "per_view_psnr": [round(p, 3) for p in ps]}

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> Path:
        """Atomically write ``ckpt/latest.pt`` (resumable) and return its path."""
        m = self.model
        ckpt = {
            "step": self.step, "elapsed": self.elapsed, "extent": self.extent,
            "model": m.state_for_checkpoint(),
            "optimizer": self.optimizer.state_dict(),
            "stats": {k: getattr(self.stats, k).cpu() for k in
                      ("opacity_accum", "anchor_denom", "grad_accum", "grad_denom")},
            "rng": torch.get_rng_state(), "config": config_to_dict(self.cfg),
            "semantics": self.semantics,
            # plain fields for downstream stages (segment, language, export)
            "anchors": m.anchors.detach().cpu(),
            "ins_feat": None if m.ins_feat is None else m.ins_feat.detach().cpu(),
            "n_offsets": m.cfg.n_offsets,
            "fixed_anchors": m.fixed_anchors,
        }
        return atomic_torch_save(ckpt, self.run_dir / "ckpt" / "latest.pt")

    def _load(self, path: Path) -> None:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        self.model = ScaffoldModel.from_checkpoint(ckpt["model"]).to(self.device)
        self.extent = ckpt["extent"]
        self.optimizer, self.sched = build_optimizer(self.model, self.cfg, self.extent)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.stats = AnchorStats(0, self.model.cfg.n_offsets, self.device)
        for k, v in ckpt["stats"].items():
            setattr(self.stats, k, v.to(self.device))
        torch.set_rng_state(ckpt["rng"])
        self.step = int(ckpt["step"])
        self.elapsed = float(ckpt.get("elapsed", 0.0))


def load_label_maps(scene, feat_dir: Path, level: str, views: list[int]) -> dict[int, Tensor]:
    """SAM label maps of ``views`` at the scene's camera resolution.

    Args:
        scene: a :class:`~instgs.data.SceneData`. feat_dir: the LangSplat-layout folder.
        level: SAM level name (``default``/``small``/``medium``/``large``).
        views: view indices.

    Returns:
        view index -> [H, W] int64 local mask ids, -1 = no mask.

    Raises:
        InputError: a missing or unreadable mask file, or one whose aspect ratio disagrees
            with the image (named by :func:`instgs.masks.io.read_level` / ``_resize_labels``).
    """
    from instgs.masks.io import read_level

    h, w = scene.cameras.height, scene.cameras.width
    out = {}
    for i in views:
        stem = scene.image_paths[i].stem
        labels, _ = read_level(feat_dir, stem, level)
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.shape != (h, w):
            labels = _resize_labels(labels, h, w, feat_dir / f"{stem}_s.npy")
        out[i] = labels
    return out


def _resize_labels(labels: Tensor, h: int, w: int, path: Path) -> Tensor:
    """Nearest-neighbour resize of a label map; integer factors use strided slicing like
    InstanceGaussian's ``loadCam``. Raises InputError when the aspect ratio disagrees."""
    lh, lw = labels.shape
    if abs(lh / lw - h / w) > 0.02:
        raise InputError(f"mask map is {lw}x{lh} but the image is {w}x{h} (aspect ratios "
                         "differ)", path, "regenerate the masks with `instgs masks --overwrite`")
    if lh % h == 0 and lw % w == 0 and lh // h == lw // w:
        r = lh // h
        return labels[::r, ::r].contiguous()
    ys = (torch.arange(h) * lh / h).long().clamp(max=lh - 1)
    xs = (torch.arange(w) * lw / w).long().clamp(max=lw - 1)
    return labels[ys][:, xs].contiguous()


def train(cfg: TrainConfig) -> Path:
    """Train a scene with ``cfg``; returns the run directory (see :class:`Trainer`)."""
    return Trainer(cfg).train()


def config_from_dict(d: dict) -> TrainConfig:
    """Rebuild a :class:`TrainConfig` from ``config.json`` (plain data).

    Raises:
        InputError: on keys the current TrainConfig does not know (a config from another
            instgs version) — nothing is silently dropped.
    """

    def build(cls, data: dict):
        kw = {}
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(names)
        if unknown:
            raise InputError(f"unknown config keys {sorted(unknown)} for {cls.__name__}", None,
                             "use the instgs version that wrote this run")
        for k, v in data.items():
            sub = getattr(cls, "__dataclass_fields__")[k].default_factory  # type: ignore
            if isinstance(v, dict) and sub is not dataclasses.MISSING:
                kw[k] = build(sub, v)
            elif k in ("data", "run_dir") and v is not None:
                kw[k] = Path(v)
            else:
                kw[k] = v
        return cls(**kw)

    return build(TrainConfig, d)


@dataclass
class LoadedRun:
    """A finished (or checkpointed) training run.

    Attributes:
        run_dir: the run folder. cfg: its TrainConfig. scene: the scene it was trained on.
        model: the Scaffold model (eval mode). ckpt: the raw checkpoint dict.
        app_index: view index -> appearance-embedding index (test views: nearest train view).
    """

    run_dir: Path
    cfg: TrainConfig
    scene: object
    model: ScaffoldModel
    ckpt: dict
    app_index: dict

    def decode(self, i: int):
        """Neural Gaussians of view ``i`` (see :meth:`ScaffoldModel.decode`)."""
        cam = self.scene.cameras[i].to(self.model.anchors.device)
        return self.model.decode(cam.viewmats[0], cam.Ks[0], cam.width, cam.height,
                                 image_id=self.app_index[i])


def load_run(run_dir: str | Path, device: str = "cpu", data: str | Path | None = None
             ) -> LoadedRun:
    """Load ``run_dir/config.json`` + ``ckpt/latest.pt`` and re-read the scene.

    Args:
        run_dir: a run written by ``instgs train``.
        device: where to put the model.
        data: override the scene folder (when the data moved since training).

    Raises:
        InputError: missing config or checkpoint (names the file and the fix).
    """
    from instgs.core.artifacts import read_json
    from instgs.data import read_scene

    run_dir = Path(run_dir)
    cfg = config_from_dict(read_json(run_dir / "config.json"))
    if data is not None:
        cfg = dataclasses.replace(cfg, data=Path(data))
    ckpt_path = run_dir / "ckpt" / "latest.pt"
    if not ckpt_path.is_file():
        raise InputError("no checkpoint in this run", ckpt_path,
                         f"train first: instgs train --data {cfg.data} --run-dir {run_dir}")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = ScaffoldModel.from_checkpoint(ckpt["model"]).to(device).eval()
    scene = read_scene(cfg.data, format=cfg.format, downscale=cfg.downscale,
                       images_dir=cfg.images_dir, test_every=cfg.test_every,
                       max_images=cfg.max_images)
    return LoadedRun(run_dir, cfg, scene, model, ckpt, appearance_index(scene))
