"""The render-based helpers of ``instgs segment`` on a tiny trained run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from instgs.render import render
from instgs.render.visibility import occluded_near_border, point_footprint_radii, visible_points
from instgs.segment.render_support import load_view_masks, observed_anchors
from instgs.run import load_instances, load_run
from instgs.train.config import train_preset
from instgs.train.trainer import Trainer


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from instgs.data.synthetic import make_synthetic_scene

    root = tmp_path_factory.mktemp("rs")
    make_synthetic_scene(root / "scene", num_views=6, num_test_views=1, width=48, height=36,
                         num_points=3000, num_objects=2, progress=False)
    cfg = dataclasses.replace(train_preset("scannet"), data=root / "scene", run_dir=root / "run",
                              steps=20, progress=False, save_every=0, backend="cpu")
    Trainer(cfg).train()
    return load_run(root / "run")


def test_projected_rule_is_the_union_of_depth_tested_masked_anchors(tiny_run):
    run = tiny_run
    got = observed_anchors(run, progress=False)  # auto -> projected for this preset
    assert got.dtype == bool and got.shape == (run.model.num_anchors,)
    assert 0 < got.sum() < len(got)
    views = list(run.scene.train_ids)
    masks = load_view_masks(run, views)
    want = np.zeros(len(got), bool)
    with torch.no_grad():
        for i in views:
            cam = run.scene.cameras[i]
            out = render(run.decode(i).gaussians, cam, backend="cpu")
            idx, pix = visible_points(run.model.anchors, cam.viewmats[0], cam.Ks[0],
                                      out.depth[0], out.alpha[0])
            on = masks[i].reshape(-1)[pix] >= 0
            idx, pix = idx[on], pix[on]
            # the scannet preset also drops samples hidden by other anchors near a border
            lc = run.cfg.loss
            assert lc.occlusion_border_px > 0
            drop = occluded_near_border(run.model.anchors, point_footprint_radii(
                run.model.anchors), idx, pix, cam.viewmats[0], cam.Ks[0], masks[i],
                lc.occlusion_min_dz, lc.occlusion_border_px)
            want[idx[~drop].numpy()] = True
    assert (got == want).all()
    # without the mask requirement at least as many anchors are observed
    assert (observed_anchors(run, require_mask=False, progress=False) >= got).all()


def test_top_rule_and_unknown_rule(tiny_run):
    top = observed_anchors(tiny_run, rule="top", progress=False)
    assert top.dtype == bool and 0 < top.sum() < len(top)
    with pytest.raises(ValueError, match="unknown observed-anchor rule"):
        observed_anchors(tiny_run, rule="nearest", progress=False)


def test_segment_command_with_observed_anchors(tiny_run, caplog, monkeypatch):
    from instgs import segment
    from instgs.segment import SegmentConfig, fragments

    seen = []
    absorb = fragments.absorb_fragments

    def spy(*args, observed=None, **kw):
        seen.append(observed)
        return absorb(*args, observed=observed, **kw)

    monkeypatch.setattr(fragments, "absorb_fragments", spy)
    caplog.set_level("INFO", logger="instgs")
    path = segment.run(tiny_run.run_dir, SegmentConfig(num_seeds=50, valid="auto"))
    got = load_instances(path)
    # the fragment step judges features by the observed anchors only
    assert len(seen) == 1 and seen[0] is not None
    assert (seen[0] == observed_anchors(tiny_run, progress=False)).all() and not seen[0].all()
    assert got.meta["valid"] == "observed" and got.meta["unobserved"] == "masks"
    assert len(got.anchor_labels) == tiny_run.model.num_anchors
    assert (got.anchor_labels >= 0).all()
    assert got.meta["surface_propagation"] and got.meta["num_propagated"] > 0
    assert got.meta["propagation"] == "harmonic"
    out = caplog.text
    assert "observed anchors" in out and "along surfaces" in out
    # the mask-consensus join ran on the final labels and is recorded
    cons = got.meta["consensus"]
    assert cons["before"] >= cons["after"] == len(np.unique(got.anchor_labels))
    assert cons["before"] - cons["after"] == cons["joined"] and cons["rounds"] <= cons["joined"]
    assert "mask consensus" in out
    # without propagation the anchors it labelled fall back to the nearest observed one
    path = segment.run(tiny_run.run_dir, SegmentConfig(num_seeds=50, valid="auto",
                                                       surface_propagation=False))
    plain = load_instances(path)
    assert not plain.meta["surface_propagation"] and plain.meta["num_propagated"] == 0
    assert plain.meta["propagation"] is None
    geo = load_instances(segment.run(tiny_run.run_dir, SegmentConfig(
        num_seeds=50, valid="auto", propagation="geodesic")))
    assert geo.meta["propagation"] == "geodesic" and geo.meta["num_propagated"] > 0
    off = load_instances(segment.run(tiny_run.run_dir, SegmentConfig(
        num_seeds=50, valid="auto", consensus_together=0)))
    assert off.meta["consensus"] is None
    assert (plain.anchor_labels >= 0).all()


def _hits(rows):
    from instgs.segment.render_support import MaskHits

    a = np.array(rows, np.int64).reshape(-1, 3)
    return MaskHits(a[:, 0], a[:, 1], a[:, 2], np.ones(len(a), bool))


def test_vote_unobserved_toy():
    from instgs.segment.render_support import vote_unobserved

    labels = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0])
    observed = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0], bool)
    hits = _hits([
        # view 0: mask 0 holds anchors 0, 1, 2 (instance 0) and unobserved 6
        [0, 0, 0], [1, 0, 0], [2, 0, 0], [6, 0, 0],
        # view 0: mask 1 holds anchors 3, 4, 5 (instance 1) and unobserved 7
        [3, 0, 1], [4, 0, 1], [5, 0, 1], [7, 0, 1],
        # view 1: mask 0 has only two observed anchors (< min_votes): no vote for 8
        [3, 1, 0], [4, 1, 0], [8, 1, 0],
        # an unmasked sighting never votes
        [0, 2, -1], [8, 2, -1]])
    out, n = vote_unobserved(labels, observed, hits, min_votes=3)
    assert out.tolist() == [0, 0, 0, 1, 1, 1, 0, 1, 0]
    assert np.flatnonzero(n).tolist() == [6, 7]
    assert vote_unobserved(labels, observed, hits, min_votes=2)[0][8] == 1


@pytest.mark.parametrize("seed,occluded", [(0, False), (1, False), (2, True)])
def test_vote_unobserved_matches_reference(seed, occluded):
    from instgs.segment.render_support import MaskHits, vote_unobserved, vote_unobserved_ref

    rng = np.random.default_rng(seed)
    n, r = 300, 3000
    labels = rng.integers(0, 6, n)
    observed = rng.random(n) < 0.7
    hits = MaskHits(rng.integers(0, n, r), rng.integers(0, 5, r), rng.integers(-1, 8, r),
                    rng.random(r) < 0.5, (rng.random(r) < 0.3) if occluded else None)
    out, voted = vote_unobserved(labels, observed, hits)
    ref = vote_unobserved_ref(labels, observed, hits)
    assert out.tolist() == ref
    if occluded:  # occluded rows do not vote: same result as without them
        plain = hits.select(~hits.occluded)
        assert out.tolist() == vote_unobserved(labels, observed, MaskHits(
            plain.anchor, plain.view, plain.mask, plain.strict))[0].tolist()
    assert voted.any() and not (voted & observed).any()
    assert (out[observed] == labels[observed]).all()


def test_collect_mask_hits_strict_rows_are_the_observed_anchors(tiny_run):
    from instgs.segment.render_support import collect_mask_hits

    hits = collect_mask_hits(tiny_run, loose_factor=2.0, progress=False)
    assert (hits.mask >= 0).all() and hits.strict.any() and not hits.strict.all()
    seen = np.zeros(tiny_run.model.num_anchors, bool)
    seen[hits.anchor[hits.strict]] = True
    assert (seen == observed_anchors(tiny_run, progress=False)).all()
    assert hits.occluded is not None  # the scannet preset trains with the occlusion test
    with pytest.raises(ValueError, match="loose_factor"):
        collect_mask_hits(tiny_run, loose_factor=0.5, progress=False)


def test_collect_mask_hits_with_the_occlusion_test(tiny_run):
    import dataclasses

    from instgs.segment.render_support import collect_mask_hits

    cfg = tiny_run.cfg
    off = dataclasses.replace(tiny_run, cfg=dataclasses.replace(cfg, loss=dataclasses.replace(
        cfg.loss, occlusion_border_px=0.0)))
    plain = collect_mask_hits(off, loose_factor=2.0, progress=False)
    assert plain.occluded is None
    run = dataclasses.replace(tiny_run, cfg=dataclasses.replace(cfg, loss=dataclasses.replace(
        cfg.loss, occlusion_border_px=1e6, occlusion_min_dz=-1.0)))
    # with a negative margin every sample whose anchor covers >= 1 pixel is "hidden" (its own
    # disk is in front of it), and every pixel is "near a border": exactly those rows go
    hits = collect_mask_hits(run, loose_factor=2.0, progress=False, vote_max_dz=-1.0)
    assert np.array_equal(hits.anchor, plain.anchor) and np.array_equal(hits.mask, plain.mask)
    radii = point_footprint_radii(tiny_run.model.anchors).double()
    resolved = np.zeros(len(hits.anchor), bool)
    for i in np.unique(hits.view):
        cam, rows = tiny_run.scene.cameras[int(i)], np.flatnonzero(hits.view == i)
        vm = cam.viewmats[0].double()
        z = tiny_run.model.anchors.detach().double()[hits.anchor[rows]] @ vm[2, :3] + vm[2, 3]
        resolved[rows] = (radii[hits.anchor[rows]] * cam.Ks[0, 0, 0] >= z).numpy()
    assert resolved.any() and not resolved.all()
    assert np.array_equal(hits.occluded, resolved)
    assert np.array_equal(hits.strict, plain.strict & ~resolved)
    run = dataclasses.replace(tiny_run, cfg=dataclasses.replace(cfg, loss=dataclasses.replace(
        cfg.loss, occlusion_border_px=3.0)))
    hits = collect_mask_hits(run, loose_factor=2.0, progress=False)
    assert hits.strict.sum() <= plain.strict.sum()
    assert not (hits.strict & ~plain.strict).any()


def test_a_run_trained_with_gsplat_segments_on_the_cpu(tiny_run):
    # A GPU run records backend "gsplat"; `instgs segment` loads it on the CPU, where the
    # render helpers must fall back to the CPU kernel instead of refusing CPU tensors.
    gpu_trained = dataclasses.replace(tiny_run,
                                      cfg=dataclasses.replace(tiny_run.cfg, backend="gsplat"))
    assert gpu_trained.render_backend == "auto"
    for rule in ("projected", "top"):
        np.testing.assert_array_equal(observed_anchors(gpu_trained, rule=rule, progress=False),
                                      observed_anchors(tiny_run, rule=rule, progress=False))
