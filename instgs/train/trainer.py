"""The training loop: data in, checkpoints and metrics out. No math and no file layout here.

Stages (seed 004 §3.2, scaled by ``--steps``) are explicit objects (:data:`STAGES`), not
``if iteration == ...`` branches. The run folder is written through :mod:`instgs.run`
(``config.json``, ``scene.json``, ``ckpt/latest.pt``, ``metrics.json``, ``manifest.json``),
under the run's lock: a second ``instgs train`` into the same folder stops at once.
A fresh run refuses a folder that already holds a checkpoint unless ``overwrite``; a
``resume`` refuses a scene or settings other than the run's
(:func:`instgs.run.check_resumable`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from instgs.core.artifacts import update_manifest, write_json
from instgs.core.checks import InputError
from instgs.losses import (instance_feature_losses, photometric_loss, projected_instance_losses,
                           psnr, ssim)
from instgs.model.scaffold import ScaffoldModel
from instgs.render.visibility import FootprintCache, mask_samples
from instgs.run import (FolderLock, RunPaths, appearance_index, check_resumable,
                        load_run_checkpoint, save_metrics, save_run_checkpoint, scaffold_from,
                        write_run_config)
from instgs.train.config import TrainConfig, default_run_dir
from instgs.train.densify import AnchorStats, grow_anchors, prune_anchors
from instgs.train.optim import build_optimizer, random_points

__all__ = ["Stage", "STAGES", "stage_at", "Trainer", "train"]

log = logging.getLogger(__name__)


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


class Trainer:
    """Semantic-Scaffold-GS trainer (appearance + progressive instance features).

    Holds the run folder's lock from construction until :meth:`train` returns (or
    :meth:`close`).

    Args:
        cfg: the resolved training configuration.

    Raises:
        InputError: unreadable scene, missing masks when ``semantics="on"``, a resume with
            no checkpoint or with other settings / another scene, a fresh run into a folder
            holding a checkpoint (without ``overwrite``), a folder in use by another process.
    """

    def __init__(self, cfg: TrainConfig):
        from instgs.data import read_scene

        # absolute scene path: later stages (segment, language) reload the scene from the run
        cfg = dataclasses.replace(cfg, data=Path(cfg.data).resolve())
        self.run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg.data)
        self.paths = RunPaths(self.run_dir)
        self._check_start(cfg)
        self._lock: FolderLock | None = FolderLock(self.run_dir, "instgs train")
        self._lock.__enter__()
        try:
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
            if cfg.resume:
                check_resumable(self.run_dir, cfg, self.scene)
            self.cams = self.scene.cameras.to(self.device)
            self.train_ids = list(self.scene.train_ids)
            self.test_ids = list(self.scene.test_ids)
            self.app_index = appearance_index(self.scene)
            self.images = self._load_images(self.train_ids + self.test_ids)
            self.masks = self._load_masks()
            self.semantics = self.masks is not None
            self.step = 0
            self.radii = FootprintCache()
            if cfg.resume:
                self._load()
            else:
                self._init_model()
        except BaseException:
            self.close()
            raise

    def _check_start(self, cfg: TrainConfig) -> None:
        """Refuse a resume without a checkpoint, and a fresh run over an existing one."""
        ckpt = self.paths.checkpoint
        if cfg.resume and not ckpt.is_file():
            raise InputError("no checkpoint to resume from", ckpt,
                             "train without --resume first, or point --run-dir at the run")
        if not cfg.resume and not cfg.overwrite and ckpt.is_file():
            raise InputError("this run folder already holds a trained run", self.run_dir,
                             "pass --resume to continue it, --overwrite to start it over "
                             "(its instances and language features become stale), or "
                             "another --run-dir")

    def close(self) -> None:
        """Release the run folder's lock (idempotent)."""
        if getattr(self, "_lock", None) is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    def __del__(self) -> None:  # best effort; train() and close() release it explicitly
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # ------------------------------------------------------------------ setup
    def _load_images(self, ids: list[int]) -> dict[int, Tensor]:
        from tqdm import tqdm

        out = {}
        for i in tqdm(ids, desc="loading images", disable=not self.cfg.progress, leave=False):
            img = self.scene.load_image(i)
            out[i] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
        return out

    def _load_masks(self) -> dict[int, Tensor] | None:
        """SAM label maps of the training views at the training resolution, or None when the
        run trains appearance only (documented skips for orphan files and empty views)."""
        from instgs.masks.io import list_feature_stems, read_label_maps

        cfg, scene = self.cfg, self.scene
        if cfg.semantics == "off" or cfg.model.ins_feat_dim == 0:
            return None
        feat_dir = scene.root / cfg.masks_dir
        if not feat_dir.is_dir():
            if cfg.semantics == "on":
                raise InputError("no SAM masks for instance-feature training", feat_dir,
                                 f"run `instgs masks --data {scene.root}` first")
            return None
        stems = {i: scene.image_paths[i].stem for i in self.train_ids}
        maps = read_label_maps(feat_dir, stems, cfg.sam_level, scene.height, scene.width)
        masks = {i: torch.from_numpy(m) for i, m in maps.items()}
        known = {p.stem for p in scene.image_paths}
        orphans = [s for s in list_feature_stems(feat_dir) if s not in known]
        if orphans:
            log.warning("%s: %d mask file(s) have no image in the scene (e.g. %s); they are "
                        "ignored", feat_dir, len(orphans), orphans[:3])
        empty = [scene.image_paths[i].name for i, m in masks.items() if m.max() < 0]
        if empty:
            log.warning("%s: %d training view(s) have no valid mask pixel at level %r (e.g. "
                        "%s); the instance losses skip them and they train appearance only",
                        feat_dir, len(empty), cfg.sam_level, empty[:3])
        if len(empty) == len(masks):
            raise InputError(f"no training view has a valid mask pixel at level "
                             f"{cfg.sam_level!r}", feat_dir,
                             "choose another --sam-level or regenerate the masks")
        return masks

    def _init_model(self) -> None:
        cfg, scene = self.cfg, self.scene
        points = scene.points
        if points is None or len(points) == 0:
            points = random_points(scene.cameras, cfg.random_init_points, cfg.seed)
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
        for p in (self.paths.checkpoint, self.paths.checkpoint_info):
            p.unlink(missing_ok=True)  # --overwrite: the old model is gone from here on
        write_run_config(self.run_dir, cfg)
        write_json(self.paths.scene, scene.to_json())

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

    def projected_losses(self, i: int, out, phase: str) -> dict[str, Tensor]:
        """The ``projected`` instance-feature target for view ``i`` (see
        :func:`instgs.losses.projected_instance_losses`): anchors that pass the depth test
        against this step's render (``out``, detached) take the SAM mask id under them
        (:func:`instgs.render.visibility.mask_samples`).
        """
        cam, lc = self.cams[i], self.cfg.loss
        anchors = self.model.anchors.detach()
        idx, ids = mask_samples(
            anchors, cam.viewmats[0], cam.Ks[0], out.depth[0].detach(), out.alpha[0].detach(),
            self.masks[i].to(self.device), tol_abs=lc.visibility_tol_abs,
            tol_rel=lc.visibility_tol_rel,
            radii=self.radii(anchors) if lc.occlusion_border_px > 0 else None,
            border_px=lc.occlusion_border_px, min_dz=lc.occlusion_min_dz)
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
        """Run until ``steps`` or ``max_minutes``; evaluate; save; release the run's lock.

        Returns:
            The run folder.
        """
        try:
            stopped_early = self._loop()
            self.save()
            self._finish(stopped_early)
        finally:
            self.close()
        return self.run_dir

    def _loop(self) -> bool:
        """The optimisation loop; returns whether the time budget stopped it."""
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
        return stopped_early

    def _finish(self, stopped_early: bool) -> None:
        """Evaluate the held-out views and write ``metrics.json`` and the manifest."""
        cfg = self.cfg
        metrics = self.evaluate() if self.test_ids else {}
        metrics.update(step=self.step, steps=cfg.steps, wall_seconds=round(self.elapsed, 1),
                       stopped_by_time_budget=stopped_early,
                       num_anchors=self.model.num_anchors, semantics=self.semantics)
        save_metrics(self.run_dir, metrics)
        update_manifest(self.run_dir, "train", data=str(cfg.data), **{
            k: v for k, v in metrics.items() if k in ("psnr", "ssim", "step", "wall_seconds")})
        if metrics.get("psnr") is not None:
            log.info("held-out PSNR %.2f dB, SSIM %.4f (%d views) after %d steps, %.1f min",
                     metrics["psnr"], metrics["ssim"], len(self.test_ids), self.step,
                     self.elapsed / 60)

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
        """Atomically write ``ckpt/latest.pt`` (resumable) and its record; return its path."""
        m = self.model
        ckpt = {
            "step": self.step, "elapsed": self.elapsed, "extent": self.extent,
            "model": m.state_for_checkpoint(),
            "optimizer": self.optimizer.state_dict(),
            "stats": {k: getattr(self.stats, k).cpu() for k in
                      ("opacity_accum", "anchor_denom", "grad_accum", "grad_denom")},
            "rng": torch.get_rng_state(),
            "semantics": self.semantics,
            # plain fields for downstream stages (segment, language, export)
            "anchors": m.anchors.detach().cpu(),
            "ins_feat": None if m.ins_feat is None else m.ins_feat.detach().cpu(),
            "n_offsets": m.cfg.n_offsets,
            "fixed_anchors": m.fixed_anchors,
        }
        return save_run_checkpoint(self.run_dir, ckpt, self.cfg)

    def _load(self) -> None:
        """Restore model, optimiser, statistics, RNG and step from the run's checkpoint, and
        record the (runtime) settings of this resumption in ``config.json``."""
        ck = load_run_checkpoint(self.run_dir, self.cfg)
        data = ck.data
        self.model = scaffold_from(ck).to(self.device)
        self.extent = float(data["extent"])
        self.optimizer, self.sched = build_optimizer(self.model, self.cfg, self.extent)
        self.optimizer.load_state_dict(data["optimizer"])
        self.stats = AnchorStats(0, self.model.cfg.n_offsets, self.device)
        for k, v in data["stats"].items():
            setattr(self.stats, k, v.to(self.device))
        torch.set_rng_state(data["rng"])
        self.step = int(data["step"])
        self.elapsed = float(data.get("elapsed", 0.0))
        write_run_config(self.run_dir, self.cfg)
        log.info("resuming from step %d of %d (%s)", self.step, self.cfg.steps, ck.path)


def train(cfg: TrainConfig) -> Path:
    """Train a scene with ``cfg``; returns the run directory (see :class:`Trainer`).

    Raises:
        InputError: see :class:`Trainer`.
    """
    return Trainer(cfg).train()
