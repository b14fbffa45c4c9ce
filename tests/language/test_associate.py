"""instgs.language.associate: silhouettes, matching, pooling, end-to-end association."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from instgs.core.cameras import Cameras
from instgs.core.checks import InputError
from instgs.core.gaussians import Gaussians
from instgs import language
from instgs.language.associate import LanguageConfig, associate
from instgs.language.matching import (ViewMatches, match_containment,
                                      match_containment_reference, match_masks,
                                      match_masks_reference, pool_matches)
from instgs.language.silhouettes import alone_alpha_reference, alone_log_transmittance
from instgs.run import load_instances, load_language, load_run, save_language
from instgs.render.projection import project

sys.path.insert(0, str(Path(__file__).parent))
from _fake_run import make_fake_run


# --------------------------------------------------------------------------- units
def _random_gaussians(n: int, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([0.6, 0.45, 0.3]) + torch.tensor(
        [0.0, 0.0, 3.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.15 + 0.03
    opac = torch.rand(n, generator=g) * 0.9 + 0.05
    return Gaussians(means, quats, scales, opac, torch.rand(n, 3, generator=g))


def _camera(w: int = 48, h: int = 36) -> Cameras:
    K = torch.tensor([[40.0, 0, w / 2], [0, 40.0, h / 2], [0, 0, 1]])
    return Cameras(torch.eye(4)[None], K[None], w, h)


@pytest.mark.parametrize("max_pairs", [500, 4_000_000])
def test_alone_splat_equals_rendering_each_group_alone(max_pairs):
    g, cam = _random_gaussians(150), _camera()
    groups = torch.randint(-1, 4, (150,), generator=torch.Generator().manual_seed(1))
    p = project(g.means, g.quats, g.scales, g.opacities, cam.viewmats, cam.Ks, cam.width,
                cam.height)
    logt = alone_log_transmittance(p.means2d[0], p.conics[0], g.opacities, p.extents[0], groups,
                                   4, cam.width, cam.height, max_pairs=max_pairs)
    fast = 1 - torch.exp(logt)
    ref = alone_alpha_reference(g, cam, groups, 4, backend="torch")
    assert fast.shape == ref.shape == (4, cam.width * cam.height)
    # equal up to float error, except where the renderer stopped at T <= 1e-4
    close = (fast - ref).abs() < 1e-4
    assert bool((close | (ref > 0.999)).all())
    assert float(ref.max()) > 0.9 and float((ref > 0.7).float().mean()) > 0.01


def _random_pairs():
    g = torch.Generator().manual_seed(0)
    sil = torch.rand(5, 120, generator=g) > 0.6
    sil[4] = False                                   # an empty silhouette scores 0
    labels = torch.randint(-1, 4, (120,), generator=g)
    return sil, labels, torch.rand(5, 6, generator=g), torch.rand(4, 6, generator=g)


@pytest.mark.parametrize("fast,ref", [(match_masks, match_masks_reference),
                                      (match_containment, match_containment_reference)])
def test_matching_scores_equal_reference(fast, ref):
    sil, labels, fi, fm = _random_pairs()
    s, ratio = fast(sil, labels, fi, fm)
    s_ref, ratio_ref = ref(sil, labels, fi, fm)
    torch.testing.assert_close(s, s_ref)
    torch.testing.assert_close(ratio, ratio_ref)
    assert float(s.min()) >= 0 and float(s.max()) <= 1
    assert float(ratio[4].abs().max()) == 0.0


def test_match_masks_extremes():
    _, labels, _, fm = _random_pairs()
    # identical silhouette and features -> score 1
    s1, _ = match_masks(labels[None] == 2, labels, fm[2:3], fm)
    assert abs(float(s1[0, 2]) - 1.0) < 1e-6
    # raw (unmapped) features use range 2: opposite unit components give score 0
    s2, _ = match_masks(labels[None] == 2, labels, torch.ones(1, 6), -torch.ones(4, 6),
                        feat_range=2.0)
    assert float(s2.abs().max()) == 0.0


def _vm(view, inst, px, rows, scores=None):
    n = len(inst)
    return ViewMatches(view, np.array(inst), np.zeros(n, np.int64),
                       np.array(scores if scores else [0.5] * n, np.float32),
                       np.zeros(n, np.float32), np.array(px), np.array(rows, np.float32))


def test_pool_matches_median_topk_and_mean():
    e = np.eye(4, dtype=np.float32)
    # instance 0 seen in 7 views: 5 large masks with e0 (x4) / e1 (x1), 2 small with e2
    ms = [_vm(v, [0], [100 + v], [e[0] if v < 4 else e[1]]) for v in range(5)]
    ms += [_vm(5 + v, [0], [5], [e[2]], [0.9]) for v in range(2)]
    ms += [_vm(9, [2], [50], [e[3]], [0.3])]
    f, cnt, sc = pool_matches(ms, 4, LanguageConfig(pooling="median_topk", top_k_views=5), dim=4)
    np.testing.assert_allclose(f[0], e[0])  # median of the 5 largest: e0
    np.testing.assert_allclose(f[2], e[3])
    assert (f[1] == 0).all() and (f[3] == 0).all()
    assert cnt.tolist() == [7, 0, 1, 0]
    assert abs(sc[0] - 0.5) < 1e-6 and abs(sc[2] - 0.3) < 1e-6
    fm, cntm, scm = pool_matches(ms, 4, LanguageConfig(pooling="mean"), dim=4)
    want = np.array([4, 1, 2, 0], np.float32)
    np.testing.assert_allclose(fm[0], want / np.linalg.norm(want), rtol=1e-6)
    assert cntm.tolist() == [7, 0, 1, 0]
    assert abs(scm[0] - (5 * 0.5 + 2 * 0.9) / 7) < 1e-6
    np.testing.assert_allclose(np.linalg.norm(fm[[0, 2]], axis=1), 1.0, rtol=1e-6)


# --------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    from instgs.data.synthetic import make_synthetic_scene

    root = tmp_path_factory.mktemp("lang")
    scene = make_synthetic_scene(root / "scene", num_views=6, width=64, height=48,
                                 num_points=4000, num_test_views=0, progress=False)
    run = make_fake_run(scene, root / "run", fmt="scannet")
    return scene, run


def _gt_classes(scene: Path) -> tuple[dict[int, str], dict[str, np.ndarray]]:
    inst = json.loads((scene / "gt" / "instances.json").read_text())
    tf = {k: np.asarray(v, np.float32) for k, v in
          json.loads((scene / "text_features.json").read_text()).items()}
    return {int(k) - 1: v["text_feature_name"] for k, v in inst.items()}, tf


def test_associate_recovers_every_instance_class(synthetic_run):
    scene, run_dir = synthetic_run
    path = language.run(run_dir, LanguageConfig(progress=False), cluster_lang=True)
    lang = load_language(path)
    cls, tf = _gt_classes(scene)
    k = len(lang.instance_ids)
    assert lang.instance_features.shape == (k, 512) and lang.instance_features.dtype == np.float32
    assert lang.instance_ids.tolist() == list(range(k)) and k == len(cls)
    assert lang.meta["clip_features_available"] and lang.config["pooling"] == "median_topk"
    assert (lang.view_counts >= 2).all(), lang.view_counts
    np.testing.assert_allclose(np.linalg.norm(lang.instance_features, axis=1), 1.0, rtol=1e-5)
    assert ((lang.match_scores > 0.1) & (lang.match_scores <= 1)).all()
    names = sorted(set(cls.values()))
    T = np.stack([tf[n] / np.linalg.norm(tf[n]) for n in names])
    pred = np.argmax(lang.instance_features @ T.T, axis=1)
    assert [names[p] for p in pred] == [cls[i] for i in range(k)]
    cl = np.load(run_dir / "cluster_lang.npz")
    assert set(cl.files) == {"leaf_feat", "leaf_score", "occu_count", "leaf_ind"}
    n = len(np.load(scene / "gt" / "instance_per_vertex.npy"))
    assert cl["leaf_ind"].shape == (n,) and cl["leaf_feat"].shape[1] == 512
    np.testing.assert_array_equal(
        cl["leaf_feat"][cl["leaf_ind"]][:, :4],
        lang.instance_features[np.load(scene / "gt" / "instance_per_vertex.npy") - 1][:, :4])
    np.testing.assert_array_equal(cl["occu_count"][:k], lang.view_counts)


def test_splat_and_render_reference_give_the_same_matches(synthetic_run):
    _, run_dir = synthetic_run
    run = load_run(run_dir)
    lab = load_instances(run_dir).anchor_labels
    kw = {"max_views": 2, "progress": False, "pooling": "mean"}
    a = associate(run, lab, LanguageConfig(silhouette="alone", alone_method="splat", **kw))
    b = associate(run, lab, LanguageConfig(silhouette="alone", alone_method="render", **kw))
    np.testing.assert_array_equal(a.view_counts, b.view_counts)
    np.testing.assert_allclose(a.match_scores, b.match_scores, atol=1e-4)
    np.testing.assert_allclose(a.instance_features, b.instance_features, atol=1e-5)
    assert a.view_counts.sum() > 0
    # occlusion-aware silhouettes also match every visible instance of those views
    c = associate(run, lab, LanguageConfig(silhouette="visible", **kw))
    assert LanguageConfig().silhouette == "visible"
    assert c.view_counts.sum() >= a.view_counts.sum() - 2 and c.view_counts.sum() > 0


def test_containment_fallback_matches_what_iou_misses(synthetic_run, tmp_path):
    scene, run_dir = synthetic_run
    run = load_run(run_dir)
    lab = load_instances(run_dir).anchor_labels
    # min_score = 1: no IoU match survives, so every feature comes from the fallback
    cfg = LanguageConfig(min_score=1.0, progress=False)
    got = associate(run, lab, cfg)
    assert got.meta["containment_fallback_instances"] == len(got.instance_ids)
    assert (got.view_counts >= 2).all()
    cls, tf = _gt_classes(scene)
    names = sorted(set(cls.values()))
    T = np.stack([tf[n] / np.linalg.norm(tf[n]) for n in names])
    pred = np.argmax(got.instance_features @ T.T, axis=1)
    assert [names[p] for p in pred] == [cls[i] for i in range(len(pred))]
    assert got.containment_only.all()
    # they are parts of objects to a query: ranked only on request
    from instgs.language.query import LoadedLanguage, query_instances

    loaded = LoadedLanguage(got, lab, run.model.cfg.n_offsets)
    with pytest.raises(InputError, match="no instance has a language feature"):
        query_instances(loaded, tf[names[0]][None])
    res = query_instances(loaded, tf[names[0]][None], include_parts=True)
    assert cls[int(res.matches[0].instance_ids[0])] == names[0]
    # the flag survives the run file
    save_language(tmp_path, got)
    assert load_language(tmp_path, fresh=False).containment_only.all()
    # instances already matched in enough views keep their IoU features
    base = associate(run, lab, LanguageConfig(progress=False, max_views=4))
    off = associate(run, lab, LanguageConfig(progress=False, max_views=4, fallback_min_views=0))
    keep = off.view_counts >= 2
    np.testing.assert_array_equal(base.instance_features[keep], off.instance_features[keep])
    assert not base.containment_only[keep].any() and not off.containment_only.any()


def test_containment_of_a_fragment():
    _, labels, _, fm = _random_pairs()
    # a fragment inside one mask: containment 1 while its IoU is small
    frag = (labels == 1) & (torch.arange(120) < 30)
    _, c1 = match_containment(frag[None], labels, fm[1:2], fm)
    _, iou = match_masks(frag[None], labels, fm[1:2], fm)
    assert float(c1[0, 1]) == 1.0 and float(iou[0, 1]) < 0.5


def test_thresholds_and_bad_inputs(synthetic_run):
    _, run_dir = synthetic_run
    run = load_run(run_dir)
    lab = load_instances(run_dir).anchor_labels
    none = associate(run, lab, LanguageConfig(min_score=1.0, max_views=2, progress=False,
                                              fallback_min_views=0))
    assert none.view_counts.sum() == 0 and (none.instance_features == 0).all()
    with pytest.raises(InputError, match="anchor labels"):
        associate(run, lab[:-1], LanguageConfig(progress=False))
    with pytest.raises(InputError, match="must lie in"):
        associate(run, lab, LanguageConfig(progress=False), num_instances=2)
    with pytest.raises(InputError, match="instgs segment"):
        language.run(run_dir.parent / "nothing")
    with pytest.raises(InputError, match="max_views"):
        associate(run, lab, LanguageConfig(max_views=0, progress=False))


def test_felzenszwalb_masks_give_zero_features_and_say_so(synthetic_run, tmp_path):
    import shutil

    from instgs.language.query import query_instances

    scene, _ = synthetic_run
    scene2 = tmp_path / "scene"
    shutil.copytree(scene, scene2)
    for f in (scene2 / "language_features").glob("*_f.npy"):
        np.save(f, np.zeros((0, 512), np.float32))
    run2 = make_fake_run(scene2, tmp_path / "run", fmt="scannet")
    lang = load_language(language.run(run2, LanguageConfig(max_views=2, progress=False)))
    assert not lang.meta["clip_features_available"]
    assert lang.instance_features.shape[1] == 512 and (lang.instance_features == 0).all()
    assert lang.view_counts.sum() > 0  # masks still match; they just carry no CLIP rows
    with pytest.raises(InputError, match="mask-source sam"):
        query_instances(run2, ["box"], text_features=scene / "text_features.json")


def test_language_cli_writes_the_run_file(synthetic_run, capsys):
    from instgs.cli import main

    _, run_dir = synthetic_run
    assert main(["language", str(run_dir), "--max-views", "3", "--no-progress",
                 "--silhouette", "visible"]) == 0
    path = run_dir / "language.npz"
    assert path.is_file()
    out = capsys.readouterr().out
    assert "instances matched" in out and "wrote" in out
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert "language" in manifest["stages"]
