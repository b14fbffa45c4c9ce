"""``segment_anchors``: per-anchor instance features -> one instance id per anchor.

Stages (InstanceGaussian §3.3; released ``train_scannet.py::post_training_processing``,
``reference-implementations.md`` §1.4):

1. ``seed``:    FPS seeds (k = 1000) on ``[normalize(ins_feat), normalize(PE(xyz))]``.
2. ``assign``:  nearest seed for every anchor (released) or k-means from the seeds (paper).
3. ``refine``:  sub-object features: the optional ``refine_fn`` callback (the render-supervised
   codebook of the released code, supplied by the trainer) or the mean normalised
   instance feature of each sub-object.
4. ``merge``:   graph with edges where the [0,1]-mapped feature distance < 0.15 AND the
   sub-objects touch at 0.1 m voxels (sub-objects < 10 anchors get no edges);
   connected components (``method="graph"``), or HDBSCAN on the anchors (``"hdbscan"``).
4b. ``borders`` (instgs, optional): border anchors move to the touching instance whose mean
   feature fits theirs best (:mod:`instgs.segment.borders`).
5. ``cleanup``: instances < 5 anchors and invalid anchors take the label of the nearest
   valid anchor (stands in for the released MLP smoothing).
6. ``fragments`` (instgs): instances under max(``fragment_size``, ``fragment_fraction`` x N)
   anchors join the neighbouring instance they touch most with a similar feature (mean
   over the observed anchors, :mod:`instgs.segment.fragments`); ids compacted, biggest
   first.

The stage around it (:mod:`instgs.segment.stage`) adds the mask vote, surface propagation
and the mask-consensus join (:mod:`instgs.segment.consensus`), which need the run's views.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Literal
from collections.abc import Callable

import numpy as np
import torch

from instgs.core.checks import InputError, check_finite

from .fragments import FragmentReport
from .hdbscan import hdbscan_baseline
from .merge import merge_clusters, reassign_small_clusters, relabel_by_size, voxel_adjacency
from .seeds import assign_to_seeds, fps, seed_points

__all__ = ["SegmentConfig", "SegmentResult", "segment_anchors", "cluster_means",
           "check_instance_features", "finish_labels", "fragment_min_size", "seed_count"]

log = logging.getLogger(__name__)

RefineFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SegmentConfig:
    """Bottom-up instantiation settings (defaults = released InstanceGaussian, ScanNet).

    The fields up to ``hdbscan_pos_weight`` drive :func:`segment_anchors`; the rest drive the
    stage around it (:func:`instgs.segment.run`: which anchors are trusted, how the others
    are labelled)."""

    method: Literal["graph", "hdbscan"] = "graph"
    """'graph': FPS over-segmentation + feature/voxel graph merge (the paper); 'hdbscan': the
    Tab. 13 baseline on the same features."""
    num_seeds: int = 1000
    """Farthest-point seeds = number of sub-objects (InstanceGaussian uses 1000), capped by
    ``anchors_per_seed``."""
    anchors_per_seed: int = 25
    """Use at most one seed per this-many valid anchors (instgs; 0 = always ``num_seeds``, as
    released). Sub-objects under ``min_cluster_size_edges`` anchors get no merge edge, so
    1000 seeds on the ~4k observed anchors of a photo run (4 per seed) left 73 instances for
    7 GT instances; the cap gives 154 seeds there and changes nothing on the 30k-anchor demo or
    the 81k-anchor ScanNet scene (docs/evaluation.md, "Seeds on sparse anchors")."""
    seed_pool: int = 200_000
    """FPS runs on the first this-many valid anchors (released ScanNet: 200k); all anchors
    are then assigned."""
    pe_freqs: int = 8
    """Frequencies of the positional encoding of anchor positions."""
    pe_dims: Literal["xy", "xyz"] = "xy"
    """Encoded axes: released code encodes x and y only; 'xyz' adds z. On the rendered
    ScanNet scene0000_00 (docs/evaluation.md): with ``projected``-target features trained
    without the occlusion test and nearest labelling of the unobserved anchors, the
    released setting scores instance mIoU 81.9, ``xyz`` 82.1 and ``--assign kmeans
    --pe-dims xyz`` 81.0; with the released ``rendered`` target's features kmeans + xyz
    scored 52.1 against 17.5. On the synthetic box rooms of the tests the released setting
    is better."""
    pe_weight: float = 1.0
    """Weight of the unit-norm positional part against the unit-norm feature part."""
    assign: Literal["nearest", "kmeans"] = "nearest"
    """'nearest': one nearest-seed assignment (released); 'kmeans': Lloyd iterations (paper)."""
    kmeans_iters: int = 10
    """k-means iterations when assign='kmeans'."""
    merge_feat_threshold: float = 0.15
    """Max L2 distance between [0,1]-mapped normalised sub-object features for an edge
    (0.15 ScanNet, 0.1 LeRF)."""
    merge_feature_space: Literal["released", "raw"] = "released"
    """'released': compare (normalize(f)+1)/2; 'raw': compare the features as given."""
    merge_voxel_size: float = 0.10
    """Voxel edge in metres for the adjacency test between sub-objects."""
    merge_connectivity: Literal[6, 26] = 6
    """Voxel neighbourhood: 6 = Manhattan <= 1 (released), 26 = Chebyshev <= 1."""
    min_cluster_size_edges: int = 10
    """Sub-objects with fewer anchors never get merge edges (released: 10)."""
    min_cluster_size_valid: int = 5
    """Final instances with fewer anchors are dissolved into their neighbours (released: 5)."""
    hdbscan_min_cluster_size: int = 50
    """HDBSCAN baseline: smallest cluster (anchors)."""
    hdbscan_min_samples: int = 10
    """HDBSCAN baseline: core-distance neighbourhood."""
    hdbscan_pos_weight: float = 0.5
    """HDBSCAN baseline: metres -> feature units for the position columns."""
    fragment_size: int = 20
    """Instances with fewer anchors than ``max(fragment_size, fragment_fraction x N)`` join
    the neighbouring instance they touch most whose feature (the mean over its observed
    anchors) is within ``fragment_feat_dist`` (:mod:`instgs.segment.fragments`; instgs);
    0 = off (released: only instances under
    ``min_cluster_size_valid`` are dissolved)."""
    fragment_fraction: float = 0.0025
    """The fragment size as a share of the N anchors (0.25 %: 204 anchors on the 81k-vertex
    ScanNet scene, 75 on the 30k-anchor demo), so that it follows the anchor density; the
    plateau measured on both is 0.2-0.25 % with a feature distance of 0.4-0.55
    (docs/evaluation.md, "No fragments"). An object smaller than this that looks like its
    neighbour joins it."""
    fragment_feat_dist: float = 0.4
    """Largest released-space feature distance for a fragment to join a neighbour (the
    bottom-up merge itself uses 0.15)."""
    border_iters: int = 0
    """Contact-border iterations (:mod:`instgs.segment.borders`; instgs; 0 = off, released):
    after the merge, valid anchors with a kNN neighbour in another instance move to the
    touching instance whose mean feature fits theirs best, one ring per iteration. Off by
    default: on the rendered ScanNet scene it moved 4.5k anchors for at most +0.02 text-query
    mIoU and lost published mIoU and F1 on both training seeds; the text-query error sits in
    anchors that no view labels (docs/evaluation.md, "Contact borders")."""
    border_margin: float = 0.05
    """Cosine-similarity gain an anchor needs to move in the border step."""

    # -- the stage around segment_anchors (instgs.segment.run; used only there)
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
    get their label along the surfaces (a kNN graph whose edges join anchors with agreeing
    PCA normals, at most 4 median spacings long; :mod:`instgs.segment.propagate`) by the
    ``propagation`` rule, instead of the nearest labelled anchor in xyz; anchors the graph
    does not connect keep the xyz-nearest label. instgs addition (docs/instance-features.md)."""
    propagation: Literal["harmonic", "geodesic"] = "harmonic"
    """``harmonic`` (default): label propagation, every unlabelled anchor's label scores are
    the weighted mean of its neighbours' with the labelled anchors clamped (one sparse
    solve), on the surface graph plus ``propagation_knn_weight`` x a plain kNN graph;
    ``geodesic``: the label of the geodesically nearest labelled anchor on the surface graph
    (the rule before). On the rendered ScanNet scene harmonic took published mIoU 85.63 /
    85.09 to 86.69 / 85.98 and the 19-class text query 90.84 / 89.37 to 91.43 / 90.40 on
    two training seeds (docs/evaluation.md, "Hidden anchors by label propagation")."""
    propagation_knn_weight: float = 0.1
    """Weight of the plain kNN edges (k = 8) beside the surface edges (weight 1) in the
    ``harmonic`` rule; 0 = surface graph only."""
    consensus_together: float = 0.5
    """Mask-consensus join (instgs; 0 = off, released): with the training views' masks
    (``valid="observed"``), after the fragment step, two touching instances are joined when
    one mask holds at least ``consensus_share`` of each one's sightings in at least this
    share of the (at least ``consensus_min_views``) views that see both
    (:mod:`instgs.segment.consensus`). Noisy masks split some objects in some views; the
    features learn the split and both halves are too large for the fragment step. On the
    rendered ScanNet scene it took two training seeds from 86 / 84 to 67 instances for 67
    GT, published mIoU 84.35 / 83.36 to 85.63 / 85.09; 0.4 joins real objects
    (docs/evaluation.md, "Masks that agree")."""
    consensus_share: float = 0.5
    """Share of an instance's masked sightings in a view that one mask must hold."""
    consensus_min_views: int = 2
    """Views that must see both instances of a pair (``consensus_min_sightings`` each)."""
    consensus_min_sightings: int = 2
    """Depth-tested sightings on masked pixels an instance needs in a view to count as seen
    there (5 left the small pieces of sparse photo scenes apart; 1 joins real objects on
    ScanNet)."""
    progress: bool = True
    """Show progress bars over the training views (no effect on the result)."""


@dataclass
class SegmentResult:
    """Output of :func:`segment_anchors`.

    Attributes:
        anchor_labels: [N] int64 instance id per anchor in [0, K), biggest instance first.
        num_instances: K.
        cluster_feats: [K, F] float32, mean L2-normalised instance feature per instance.
        subobject_labels: [N] int64 over-segmentation id per anchor (-1 = invalid anchor);
            all -1 for the HDBSCAN method.
        num_subobjects: number of sub-objects (seeds) used.
        timings: seconds per stage (seed, assign, refine, merge, cleanup, fragments, total).
        fragments: what the fragment step did (None when off).
    """

    anchor_labels: np.ndarray
    num_instances: int
    cluster_feats: np.ndarray
    subobject_labels: np.ndarray
    num_subobjects: int
    timings: dict[str, float] = field(default_factory=dict)
    fragments: FragmentReport | None = None


def check_instance_features(ins_feat, n: int | None = None, path=None) -> np.ndarray:
    """Validate per-anchor instance features; appearance-only runs get a clear error.

    Args:
        ins_feat: [N, F] float or None.
        n: expected N.
        path: file the features came from, for the message.

    Returns:
        [N, F] float32 numpy array.

    Raises:
        InputError: None (appearance-only run), wrong shape, NaN/Inf, or all rows equal
            (features never trained: nothing to segment).
    """
    fix = ("train with instance features (the instance_features stage) before running "
           "`instgs segment`")
    if ins_feat is None:
        raise InputError("this run has no instance features (appearance-only training); "
                         "segmentation needs per-anchor instance features", path, fix)
    f = ins_feat.detach().cpu().numpy() if isinstance(ins_feat, torch.Tensor) \
        else np.asarray(ins_feat)
    if f.ndim != 2 or (n is not None and f.shape[0] != n) or f.shape[1] < 1:
        raise InputError(f"instance features must be [N, F] with N={n}, got {f.shape}", path)
    check_finite("instance features", torch.from_numpy(np.ascontiguousarray(f, np.float32)),
                 path)
    if f.shape[0] > 1 and np.ptp(f, axis=0).max() <= 1e-8:
        raise InputError("all anchors have the same instance feature (untrained or "
                         "appearance-only run); there is nothing to segment", path, fix)
    return f.astype(np.float32)


def cluster_means(labels: np.ndarray, feats: np.ndarray, num: int) -> np.ndarray:
    """Mean L2-normalised feature per cluster. labels [N] in [0, num) (negatives ignored).

    Returns:
        [num, F] float32 (zero rows for empty clusters).
    """
    f = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    ok = labels >= 0
    sums = np.zeros((num, f.shape[1]))
    np.add.at(sums, labels[ok], f[ok])
    cnt = np.bincount(labels[ok], minlength=num)[:, None]
    return (sums / np.maximum(cnt, 1)).astype(np.float32)


def _tick(timings: dict, key: str, t0: float) -> float:
    t = time.perf_counter()
    timings[key] = t - t0
    log.debug("segment: %s %.3f s", key, t - t0)
    return t


def segment_anchors(anchor_xyz, ins_feat, cfg: SegmentConfig | None = None,
                    valid_mask=None, refine_fn: RefineFn | None = None,
                    graph=None) -> SegmentResult:
    """Bottom-up class-agnostic instances from per-anchor positions and instance features.

    Args:
        anchor_xyz: [N, 3] float, metres (tensor or array).
        ins_feat: [N, F] float instance features; None for an appearance-only run (error).
        cfg: :class:`SegmentConfig`.
        valid_mask: [N] bool; False anchors (never seen by a mask in the released code) are
            left out of seeding and merging and take the label of the nearest valid anchor.
        refine_fn: optional ``refine_fn(subobject_labels [N] int64 (-1 = invalid),
            ins_feat [N, F] float32) -> [S, F]`` returning one feature per sub-object (the
            render-supervised codebook of the released code); default: mean normalised
            feature per sub-object.
        graph: [N, N] sparse neighbour graph for the fragment step (default
            :func:`~instgs.segment.propagate.knn_graph` of ``anchor_xyz`` with no length
            cap, built only when ``cfg.fragment_size > 0``).

    Returns:
        :class:`SegmentResult`.

    Raises:
        InputError: missing/constant/non-finite features, shape mismatch, no valid anchor,
            or an unknown method.

    References:
        Li et al., InstanceGaussian, CVPR 2025, §3.3 and Alg. 1; supplementary Tab. 13.
    """
    cfg = cfg or SegmentConfig()
    t_start = t = time.perf_counter()
    timings: dict[str, float] = {}
    xyz = anchor_xyz.detach().cpu().numpy() if isinstance(anchor_xyz, torch.Tensor) \
        else np.asarray(anchor_xyz)
    xyz = xyz.astype(np.float32)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise InputError(f"anchor positions must be [N, 3], got {xyz.shape}")
    n = xyz.shape[0]
    feats = check_instance_features(ins_feat, n)
    valid = np.ones(n, bool) if valid_mask is None else np.asarray(valid_mask, bool).reshape(-1)
    if valid.shape != (n,):
        raise InputError(f"valid_mask must be [N={n}], got {valid.shape}")
    if not valid.any():
        raise InputError("no valid anchor to segment (valid_mask is all False)")
    if cfg.method not in ("graph", "hdbscan"):
        raise InputError(f"unknown segmentation method {cfg.method!r}; choose graph or hdbscan")
    vidx = np.flatnonzero(valid)
    xyz_v, f_v = xyz[vidx], feats[vidx]

    sub = np.full(n, -1, np.int64)
    num_sub = 0
    if cfg.method == "hdbscan":
        lab_v = hdbscan_baseline(xyz_v, f_v, cfg.hdbscan_min_cluster_size,
                                 cfg.hdbscan_min_samples, cfg.hdbscan_pos_weight)
        t = _tick(timings, "hdbscan", t)
    else:
        dims = (0, 1) if cfg.pe_dims == "xy" else (0, 1, 2)
        pts = seed_points(torch.from_numpy(xyz_v), torch.from_numpy(f_v), cfg.pe_freqs, dims,
                          cfg.pe_weight)
        seeds = fps(pts[: cfg.seed_pool], seed_count(cfg, len(vidx)))
        t = _tick(timings, "seed", t)
        lab_v = assign_to_seeds(pts, seeds, cfg.assign, cfg.kmeans_iters).numpy()
        num_sub = len(seeds)
        sub[vidx] = lab_v
        t = _tick(timings, "assign", t)
        if refine_fn is not None:
            sub_feats = np.asarray(refine_fn(sub.copy(), feats), np.float32)
            if sub_feats.shape != (num_sub, feats.shape[1]):
                raise InputError(f"refine_fn returned {sub_feats.shape}, expected "
                                 f"({num_sub}, {feats.shape[1]})")
        else:
            sub_feats = cluster_means(lab_v, f_v, num_sub)
        t = _tick(timings, "refine", t)
        adj = voxel_adjacency(xyz_v, lab_v, cfg.merge_voxel_size, num_sub,
                              cfg.merge_connectivity)
        sizes = np.bincount(lab_v, minlength=num_sub)
        comp = merge_clusters(sub_feats, adj, sizes, cfg.merge_feat_threshold,
                              cfg.min_cluster_size_edges, cfg.merge_feature_space)
        lab_v = comp[lab_v]
        t = _tick(timings, "merge", t)
    if cfg.border_iters > 0:
        from .borders import refine_borders
        from .propagate import knn_graph

        lab_v, borders = refine_borders(lab_v, f_v, knn_graph(xyz_v), iters=cfg.border_iters,
                                        margin=cfg.border_margin)
        log.info("segment: border step moved %d anchors in %d iterations", borders.anchors,
                 borders.iters)
        t = _tick(timings, "borders", t)

    labels = np.full(n, -1, np.int64)
    labels[vidx] = lab_v
    labels = reassign_small_clusters(xyz, labels, cfg.min_cluster_size_valid)
    t = _tick(timings, "cleanup", t)
    res = finish_labels(xyz, labels, feats, cfg, graph, timings,
                        observed=None if valid_mask is None else valid)
    timings["total"] = time.perf_counter() - t_start
    return dataclasses.replace(res, subobject_labels=sub, num_subobjects=num_sub)


def seed_count(cfg: SegmentConfig, n_valid: int) -> int:
    """Farthest-point seeds for ``n_valid`` anchors: ``min(num_seeds, max(1, n_valid //
    anchors_per_seed))``, or ``num_seeds`` when ``anchors_per_seed`` is 0 (released)."""
    if cfg.anchors_per_seed <= 0:
        return int(cfg.num_seeds)
    return int(min(cfg.num_seeds, max(1, n_valid // cfg.anchors_per_seed)))


def fragment_min_size(cfg: SegmentConfig, n: int) -> int:
    """Anchors under which an instance is a fragment: ``max(fragment_size,
    ceil(fragment_fraction x n))``; 0 when ``fragment_size`` is 0 (off)."""
    if cfg.fragment_size <= 0:
        return 0
    return max(int(cfg.fragment_size), int(np.ceil(cfg.fragment_fraction * n)))


def finish_labels(xyz: np.ndarray, labels: np.ndarray, feats: np.ndarray, cfg: SegmentConfig,
                  graph=None, timings: dict[str, float] | None = None,
                  observed: np.ndarray | None = None) -> SegmentResult:
    """Absorb fragments (:func:`fragment_min_size`), compact ids biggest first, instance features.

    Args:
        xyz: [N, 3] anchors. labels: [N] int >= 0 (every anchor assigned). feats: [N, F].
        cfg: settings. graph: neighbour graph (default: the kNN graph of ``xyz``).
        timings: dict to add the ``fragments`` seconds to.
        observed: [N] bool, the anchors whose features were trained (the valid anchors);
            the fragment step judges features by these
            (:func:`~instgs.segment.fragments.absorb_fragments`). None = all anchors.

    Returns:
        :class:`SegmentResult` (no sub-object labels); ``fragments`` holds the
        :class:`~instgs.segment.fragments.FragmentReport`.
    """
    from .fragments import absorb_fragments

    timings = {} if timings is None else timings
    report = None
    if cfg.fragment_size > 0 and len(labels):
        t = time.perf_counter()
        if graph is None:
            from .propagate import knn_graph

            graph = knn_graph(xyz, max_edge=float("inf"))
        labels, report = absorb_fragments(labels, feats, graph, fragment_min_size(
            cfg, len(labels)), cfg.fragment_feat_dist, observed=observed)
        timings["fragments"] = time.perf_counter() - t
        log.info("segment: %d fragments merged, %d left (%d anchors), %.2f s", report.merged,
                 report.left, report.left_anchors, timings["fragments"])
    labels, k = relabel_by_size(labels)
    return SegmentResult(anchor_labels=labels, num_instances=k,
                         cluster_feats=cluster_means(labels, feats, k),
                         subobject_labels=np.full(len(labels), -1, np.int64), num_subobjects=0,
                         timings=timings, fragments=report)
