"""The segment stage: a run folder in, ``instances.npz`` out (hloc style).

``instgs.segment.run(run_dir, cfg)`` is what ``instgs segment RUN`` does, as a function:

1. read the checkpoint's anchors and instance features (through :mod:`instgs.run`);
2. with ``valid="observed"`` (the default when the run's scene has masks): load the run,
   render every training view once and keep the anchors seen on masked pixels
   (:mod:`instgs.segment.render_support`);
3. :func:`~instgs.segment.pipeline.segment_anchors` on them;
4. label the other anchors by the masks they fall into (``unobserved="masks"``), then along
   surfaces (``surface_propagation``, by the ``propagation`` rule), the rest by the nearest
   labelled anchor; absorb fragments;
4b. join touching instances that one mask covers in most views that see both
   (``consensus_together``, :mod:`instgs.segment.consensus`);
5. write ``instances.npz`` with its ``source`` record, under the run's lock.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from instgs.core.artifacts import config_to_dict, update_manifest
from instgs.core.checks import InputError
from instgs.run import (Checkpoint, FolderLock, RunPaths, expand_to_gaussians, load_run,
                        load_run_checkpoint, read_run_config, save_instances, source_of)

from .merge import relabel_by_size
from .pipeline import (SegmentConfig, SegmentResult, check_instance_features, cluster_means,
                       finish_labels, segment_anchors)

__all__ = ["run", "segment_run", "checkpoint_anchors"]

log = logging.getLogger(__name__)


def checkpoint_anchors(ckpt: Checkpoint) -> dict[str, Any]:
    """The plain fields the segment stage needs from a run's checkpoint.

    Returns:
        dict with ``anchors`` [N, 3] float32 numpy, ``ins_feat`` [N, F] float32 or None,
        ``n_offsets`` int, ``anchor_valid`` [N] bool or None.

    Raises:
        InputError: anchors of the wrong shape.
    """
    def arr(v):
        return None if v is None else (v.detach().cpu().numpy() if hasattr(v, "detach")
                                       else np.asarray(v))

    d = ckpt.data
    out = {"anchors": arr(d["anchors"]).astype(np.float32), "ins_feat": arr(d.get("ins_feat")),
           "n_offsets": int(d["n_offsets"]), "anchor_valid": arr(d.get("anchor_valid"))}
    if out["anchors"].ndim != 2 or out["anchors"].shape[1] != 3:
        raise InputError(f"anchors must be [N, 3], got {out['anchors'].shape}", ckpt.path)
    if out["anchor_valid"] is not None:
        out["anchor_valid"] = out["anchor_valid"].astype(bool).reshape(-1)
    return out


def _valid_mode(run_dir: Path, cfg: SegmentConfig) -> str:
    """Resolve ``valid="auto"``: observed when the run's scene has its masks folder."""
    if cfg.valid != "auto":
        return cfg.valid
    if not RunPaths(run_dir).config.is_file():
        return "all"
    tcfg = read_run_config(run_dir)
    return "observed" if (Path(tcfg.data) / tcfg.masks_dir).is_dir() else "all"


def _observed(loaded, ck: dict, cfg: SegmentConfig, timings: dict):
    """(valid mask [N] bool, MaskHits or None) of the observed anchors."""
    from .render_support import collect_mask_hits, observed_anchors

    t0 = time.perf_counter()
    rule = "top" if loaded.cfg.loss.instance_target == "rendered" else "projected"
    hits = None
    if rule == "projected" or cfg.unobserved == "masks":
        hits = collect_mask_hits(loaded, progress=cfg.progress)
    if rule == "projected":
        seen = np.zeros(len(ck["anchors"]), bool)
        seen[hits.anchor[hits.strict]] = True
    else:
        seen = observed_anchors(loaded, rule="top", progress=cfg.progress)
    valid = seen if ck["anchor_valid"] is None else (ck["anchor_valid"] & seen)
    timings["observed_anchors"] = time.perf_counter() - t0
    log.info("  observed anchors (%s): %d / %d (%.1fs)", rule, int(seen.sum()), len(seen),
             timings["observed_anchors"])
    return valid, hits


def _label_unobserved(res: SegmentResult, anchors: np.ndarray, valid: np.ndarray, hits,
                      cfg: SegmentConfig) -> tuple[SegmentResult, int, int]:
    """Mask vote and surface propagation for the anchors outside ``valid``."""
    from .propagate import (harmonic_labels, propagate_labels, propagation_graph,
                            surface_graph)
    from .render_support import vote_unobserved

    labels, n_voted, n_prop = res.anchor_labels, 0, 0
    labelled = valid.copy()
    if cfg.unobserved == "masks":
        t1 = time.perf_counter()
        labels, voted = vote_unobserved(labels, valid, hits)
        n_voted, labelled = int(voted.sum()), labelled | voted
        res.timings["vote_unobserved"] = time.perf_counter() - t1
    if cfg.surface_propagation:
        t2 = time.perf_counter()
        if cfg.propagation == "harmonic":
            graph = propagation_graph(anchors, cfg.propagation_knn_weight)
            labels, reached = harmonic_labels(labels, labelled, graph)
        else:
            labels, reached = propagate_labels(labels, labelled, surface_graph(anchors))
        n_prop = int(reached.sum())
        res.timings["surface_propagation"] = time.perf_counter() - t2
    log.info("  unobserved anchors: %d; labelled by their masks %d, along surfaces %d, the "
             "rest by the nearest labelled anchor", int((~valid).sum()), n_voted, n_prop)
    return dataclasses.replace(res, anchor_labels=labels), n_voted, n_prop


def _consensus(res: SegmentResult, anchors: np.ndarray, feats: np.ndarray, hits,
               cfg: SegmentConfig):
    """The mask-consensus join (:mod:`instgs.segment.consensus`) on the final labels."""
    from .consensus import mask_consensus_merge
    from .propagate import knn_graph

    t = time.perf_counter()
    labels, rep = mask_consensus_merge(res.anchor_labels, hits, knn_graph(anchors),
                                       cfg.consensus_share, cfg.consensus_together,
                                       cfg.consensus_min_views, cfg.consensus_min_sightings)
    labels, k = relabel_by_size(labels)
    res.timings["consensus"] = time.perf_counter() - t
    log.info("  mask consensus: %d touching pairs seen by the views, %d joins in %d rounds, "
             "%d -> %d instances (%.2fs)", rep.pairs, rep.joined, rep.rounds, rep.before,
             rep.after, res.timings["consensus"])
    return dataclasses.replace(res, anchor_labels=labels, num_instances=k,
                               cluster_feats=cluster_means(labels, feats, k)), rep


def segment_run(run_dir: str | Path, cfg: SegmentConfig | None = None,
                ckpt: Checkpoint | None = None) -> tuple[SegmentResult, dict[str, Any]]:
    """Segment a run's anchors (steps 1-4 of the module docstring); write nothing.

    Args:
        run_dir: a run folder with ``ckpt/latest.pt``.
        cfg: settings (default :class:`~instgs.segment.pipeline.SegmentConfig`).
        ckpt: the run's checkpoint when already read.

    Returns:
        (:class:`~instgs.segment.pipeline.SegmentResult` with the final labels, the
        ``meta`` dict written into ``instances.npz``, with its ``source``).

    Raises:
        InputError: no / unsafe / corrupt checkpoint, appearance-only run, constant or
            non-finite features, no masks with ``valid="observed"``.
    """
    run_dir = Path(run_dir)
    cfg = cfg or SegmentConfig()
    ckpt = ckpt or load_run_checkpoint(run_dir, required=("anchors", "n_offsets"))
    ck = checkpoint_anchors(ckpt)
    feats = check_instance_features(ck["ins_feat"], ck["anchors"].shape[0], ckpt.path)
    mode = _valid_mode(run_dir, cfg)
    if cfg.valid == "auto":
        log.info("  valid anchors: %s", mode)
    timings: dict[str, float] = {}
    valid, hits, refine_fn, loaded = ck["anchor_valid"], None, None, None
    if mode == "observed" or cfg.refine_iters > 0:
        loaded = load_run(run_dir, checkpoint=ckpt)
        if mode == "observed":
            valid, hits = _observed(loaded, ck, cfg, timings)
        if cfg.refine_iters > 0:
            from .render_support import codebook_refine_fn

            refine_fn = codebook_refine_fn(loaded, cfg.refine_iters, progress=cfg.progress)
    relabel = mode == "observed" and (cfg.unobserved == "masks" or cfg.surface_propagation)
    # the fragment step runs once, after every anchor has its final label
    res = segment_anchors(ck["anchors"], feats, dataclasses.replace(
        cfg, fragment_size=0) if relabel else cfg, valid_mask=valid, refine_fn=refine_fn)
    res.timings.update(timings)
    n_voted = n_prop = 0
    if relabel:
        res, n_voted, n_prop = _label_unobserved(res, ck["anchors"], valid, hits, cfg)
        fin = finish_labels(ck["anchors"], res.anchor_labels, feats, cfg, None, res.timings,
                            observed=valid)
        res = dataclasses.replace(res, anchor_labels=fin.anchor_labels,
                                  num_instances=fin.num_instances,
                                  cluster_feats=fin.cluster_feats, fragments=fin.fragments)
    consensus = None
    if cfg.consensus_together > 0 and hits is not None:
        res, consensus = _consensus(res, ck["anchors"], feats, hits, cfg)
    tcfg = loaded.cfg if loaded is not None else (
        read_run_config(run_dir) if RunPaths(run_dir).config.is_file() else None)
    meta = {"config": config_to_dict(cfg), "timings": res.timings, "valid": mode,
            "refine_iters": cfg.refine_iters,
            "unobserved": cfg.unobserved if mode == "observed" else "nearest",
            "num_voted": n_voted, "num_propagated": n_prop,
            "surface_propagation": cfg.surface_propagation and mode == "observed",
            "propagation": cfg.propagation if cfg.surface_propagation and mode == "observed"
            else None,
            "num_anchors": int(len(res.anchor_labels)), "n_offsets": ck["n_offsets"],
            "num_subobjects": res.num_subobjects, "num_instances": res.num_instances,
            "fragments": None if res.fragments is None else dataclasses.asdict(res.fragments),
            "consensus": None if consensus is None else dataclasses.asdict(consensus),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "source": source_of(ckpt, tcfg)}
    return res, meta


def run(run_dir: str | Path, cfg: SegmentConfig | None = None, *,
        overwrite: bool = True) -> Path:
    """``instgs segment RUN``: segment the run and write ``RUN/instances.npz``.

    Args:
        run_dir: a run folder written by ``instgs train``.
        cfg: settings (default :class:`~instgs.segment.pipeline.SegmentConfig`).
        overwrite: replace existing instance labels (False refuses).

    Returns:
        The written ``instances.npz``.

    Raises:
        InputError: see :func:`segment_run`; instances exist and ``overwrite`` is False; the
            run is in use by another writer.
    """
    run_dir = Path(run_dir)
    cfg = cfg or SegmentConfig()
    paths = RunPaths(run_dir)
    if not run_dir.is_dir():
        raise InputError("run folder not found", run_dir, "pass a folder written by "
                         "`instgs train`")
    with FolderLock(run_dir, "instgs segment"):
        if paths.instances.exists() and not overwrite:
            raise InputError("instances already exist", paths.instances,
                             "pass --overwrite to replace them")
        res, meta = segment_run(run_dir, cfg)
        gauss = expand_to_gaussians(res.anchor_labels, meta["n_offsets"])
        path = save_instances(run_dir, res.anchor_labels, gauss, res.cluster_feats, meta)
        _summary(res, cfg, meta["n_offsets"], path)
        update_manifest(run_dir, "segment", num_instances=res.num_instances,
                        timings=res.timings, config=cfg)
    return path


def _summary(res: SegmentResult, cfg: SegmentConfig, n_off: int, path: Path) -> None:
    labels = res.anchor_labels
    sizes = np.bincount(labels[labels >= 0])
    log.info("instgs segment: %d anchors -> %d sub-objects -> %d instances (%s)", len(labels),
             res.num_subobjects, res.num_instances, cfg.method)
    if len(sizes):
        log.info("  instance sizes (anchors): max %d, median %d, min %d", sizes.max(),
                 int(np.median(sizes)), sizes.min())
    log.info("  stage timings: %s", ", ".join(f"{k} {v:.2f}s" for k, v in res.timings.items()))
    log.info("  wrote %s (anchor_labels [%d], gaussian_labels [%d], cluster_feats %s)", path,
             len(labels), len(labels) * n_off, tuple(res.cluster_feats.shape))
