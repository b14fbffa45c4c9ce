"""``instgs segment RUN``: bottom-up 3D instances from a trained run's anchors."""

from __future__ import annotations

import dataclasses
import pickle
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import tyro

from instgs.core.artifacts import config_to_dict, update_manifest
from instgs.core.checks import InputError

from .labels import INSTANCES_FILE, expand_to_gaussians, save_instances
from .pipeline import SegmentConfig, check_instance_features, segment_anchors

__all__ = ["SegmentCommand", "load_checkpoint_anchors"]

CKPT = Path("ckpt") / "latest.pt"


def load_checkpoint_anchors(run_dir: str | Path) -> dict[str, Any]:
    """Read the plain fields the segment stage needs from ``RUN/ckpt/latest.pt``.

    Returns:
        dict with ``anchors`` [N, 3] float32 numpy, ``ins_feat`` [N, F] float32 or None,
        ``n_offsets`` int, ``anchor_valid`` [N] bool or None.

    Raises:
        InputError: missing/unreadable checkpoint or missing keys.
    """
    import torch

    path = Path(run_dir) / CKPT
    if not path.is_file():
        raise InputError("no checkpoint found", path, "train the run first (`instgs train`)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # The run's own checkpoint; it may hold plain Python objects the safe loader refuses.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as e:
        raise InputError(f"cannot read checkpoint ({e})", path, "retrain or restore it") from e
    if not isinstance(ckpt, dict) or "anchors" not in ckpt or "n_offsets" not in ckpt:
        keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise InputError(f"checkpoint lacks 'anchors'/'n_offsets' (has {keys})", path,
                         "write it with the current `instgs train`")

    def arr(v):
        return None if v is None else (v.detach().cpu().numpy() if hasattr(v, "detach")
                                       else np.asarray(v))

    out = {"anchors": arr(ckpt["anchors"]).astype(np.float32),
           "ins_feat": arr(ckpt.get("ins_feat")),
           "n_offsets": int(ckpt["n_offsets"]),
           "anchor_valid": arr(ckpt.get("anchor_valid"))}
    if out["anchors"].ndim != 2 or out["anchors"].shape[1] != 3:
        raise InputError(f"anchors must be [N, 3], got {out['anchors'].shape}", path)
    if out["anchor_valid"] is not None:
        out["anchor_valid"] = out["anchor_valid"].astype(bool).reshape(-1)
    return out


def _has_scene_masks(run_dir: str | Path) -> bool:
    """True when the run records its scene and that scene has ``language_features/``."""
    import json

    cfg = Path(run_dir) / "config.json"
    if not cfg.is_file():
        return False
    d = json.loads(cfg.read_text())
    data = d.get("data")
    return data is not None and (Path(data) / d.get("masks_dir", "language_features")).is_dir()


@dataclass
class SegmentCommand:
    """Group a trained run's anchors into class-agnostic 3D instances (InstanceGaussian §3.3)
    and write RUN/instances.npz (anchor_labels, gaussian_labels, cluster_feats)."""

    run_dir: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN")]
    """Run folder holding ckpt/latest.pt."""
    config: Annotated[SegmentConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=SegmentConfig)
    """Segmentation settings."""
    overwrite: bool = True
    """Replace an existing RUN/instances.npz (--no-overwrite refuses)."""
    valid: Literal["auto", "observed", "all"] = "auto"
    """Anchors that seed and merge: ``observed`` = seen on a masked pixel of some training
    view (needs the run's scene and masks and renders every training view once): the top
    contributor there (released ``get_well_optimized_pc``) for runs trained with the
    ``rendered`` instance target, or the depth-tested projection for ``projected``/``both``;
    ``all`` = every anchor; ``auto`` = ``observed`` when the run has its config.json and the
    scene has masks, else ``all``. The others take the label of the nearest valid anchor."""
    refine_iters: int = 0
    """Render-supervised codebook refinement steps (released: 10000; 0 = mean features)."""
    unobserved: Literal["masks", "nearest"] = "masks"
    """How anchors outside the observed set get a label (with ``observed`` only):
    ``nearest`` = the nearest observed anchor's; ``masks`` (instgs) = the majority instance
    of the SAM masks they project into at twice the depth tolerance (for runs trained with
    the occlusion test, not where another anchor hides them by more than 2 cm), nearest
    where no mask covers them (docs/instance-features.md)."""

    surface_propagation: bool = True
    """With ``observed``: anchors that neither training nor ``--unobserved masks`` labelled
    take the label of the geodesically nearest labelled anchor on a surface graph (kNN
    edges between anchors with agreeing PCA normals, at most 4 median spacings long;
    :mod:`instgs.segment.propagate`) instead of the nearest one in xyz; anchors the graph
    does not connect keep the xyz-nearest label. instgs addition (docs/instance-features.md)."""

    def segment(self):
        """Load, segment, expand and save; returns (path, SegmentResult, n_offsets)."""
        ck = load_checkpoint_anchors(self.run_dir)
        ckpt_path = Path(self.run_dir) / CKPT
        feats = check_instance_features(ck["ins_feat"], ck["anchors"].shape[0], ckpt_path)
        valid_mask, refine_fn, t0 = ck["anchor_valid"], None, time.perf_counter()
        hits = None
        mode = self.valid
        if mode == "auto":
            mode = "observed" if _has_scene_masks(self.run_dir) else "all"
            print(f"  valid anchors: {mode}")
        if mode == "observed" or self.refine_iters > 0:
            from instgs.train.trainer import load_run

            from .render_support import (codebook_refine_fn, collect_mask_hits,
                                         observed_anchors, vote_unobserved)

            loaded = load_run(self.run_dir)
            if mode == "observed":
                rule = "top" if loaded.cfg.loss.instance_target == "rendered" else "projected"
                if rule == "projected" or self.unobserved == "masks":
                    hits = collect_mask_hits(loaded)
                if rule == "projected":
                    seen = np.zeros(len(ck["anchors"]), bool)
                    seen[hits.anchor[hits.strict]] = True
                else:
                    seen = observed_anchors(loaded, rule="top")
                valid_mask = seen if valid_mask is None else (valid_mask & seen)
                print(f"  observed anchors ({rule}): {int(seen.sum())} / {len(seen)} "
                      f"({time.perf_counter() - t0:.1f}s)")
            if self.refine_iters > 0:
                refine_fn = codebook_refine_fn(loaded, self.refine_iters)
        res = segment_anchors(ck["anchors"], feats, self.config, valid_mask=valid_mask,
                              refine_fn=refine_fn)
        labels, n_voted, n_prop = res.anchor_labels, 0, 0
        if mode == "observed" and (self.unobserved == "masks" or self.surface_propagation):
            t1 = time.perf_counter()
            labelled = valid_mask.copy()
            if self.unobserved == "masks":
                labels, voted = vote_unobserved(labels, valid_mask, hits)
                n_voted, labelled = int(voted.sum()), labelled | voted
                res.timings["vote_unobserved"] = time.perf_counter() - t1
            if self.surface_propagation:
                from .propagate import propagate_labels, surface_graph

                t2 = time.perf_counter()
                labels, reached = propagate_labels(labels, labelled,
                                                   surface_graph(ck["anchors"]))
                n_prop = int(reached.sum())
                res.timings["surface_propagation"] = time.perf_counter() - t2
            res = dataclasses.replace(res, anchor_labels=labels)
            print(f"  unobserved anchors: {int((~valid_mask).sum())}; labelled by their masks "
                  f"{n_voted}, along surfaces {n_prop}, the rest by the nearest labelled "
                  "anchor")
        gauss = expand_to_gaussians(labels, ck["n_offsets"])
        meta = {"config": config_to_dict(self.config), "timings": res.timings,
                "valid": mode, "refine_iters": self.refine_iters,
                "unobserved": self.unobserved if mode == "observed" else "nearest",
                "num_voted": n_voted, "num_propagated": n_prop,
                "surface_propagation": self.surface_propagation and mode == "observed",
                "num_anchors": int(len(res.anchor_labels)), "n_offsets": ck["n_offsets"],
                "num_subobjects": res.num_subobjects, "num_instances": res.num_instances,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        path = save_instances(self.run_dir, res.anchor_labels, gauss, res.cluster_feats, meta)
        return path, res, ck["n_offsets"]

    def run(self) -> Path:
        """Segment the run and write ``RUN/instances.npz``; print a summary; return the path.

        Raises:
            InputError: no checkpoint, appearance-only run (no instance features), or
                instances exist and ``--no-overwrite``.
        """
        out = Path(self.run_dir) / INSTANCES_FILE
        if out.exists() and not self.overwrite:
            raise InputError("instances already exist", out, "pass --overwrite to replace them")
        path, res, n_off = self.segment()
        sizes = np.bincount(res.anchor_labels[res.anchor_labels >= 0])
        print(f"instgs segment: {len(res.anchor_labels)} anchors -> {res.num_subobjects} "
              f"sub-objects -> {res.num_instances} instances ({self.config.method})")
        if len(sizes):
            print(f"  instance sizes (anchors): max {sizes.max()}, "
                  f"median {int(np.median(sizes))}, min {sizes.min()}")
        print("  stage timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in res.timings.items()))
        print(f"  wrote {path} (anchor_labels [{len(res.anchor_labels)}], gaussian_labels "
              f"[{len(res.anchor_labels) * n_off}], "
              f"cluster_feats {tuple(res.cluster_feats.shape)})")
        update_manifest(self.run_dir, "segment", num_instances=res.num_instances,
                        timings=res.timings, config=self.config)
        sys.stdout.flush()
        return path
