"""instgs.language.query: text -> instances (precomputed features, open_clip, errors, CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from instgs.core.checks import InputError
from instgs.language.query import (
    LoadedLanguage,
    load_language,
    lookup_text_features,
    query_instances,
    query_slug,
    relevancy_scores,
)
from instgs.run import LanguageFeatures, labels_digest, save_instances, save_language

sys.path.insert(0, str(Path(__file__).parent))
from _fake_run import make_fake_run


def _unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _table(d: int = 512, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    names = ["bed", "sofa", "shower curtain", "chair", "object", "things", "stuff", "texture"]
    return {n: _unit(rng.normal(size=d)) for n in names}


def _language(table, rows: list[str | None], anchor_labels, n_offsets=2, views=None):
    feats = np.stack([table[r] if r else np.zeros(512, np.float32) for r in rows])
    k = len(rows)
    vc = np.array(views if views is not None else [0 if r is None else 3 for r in rows])
    lf = LanguageFeatures(feats.astype(np.float32), vc, np.full(k, 0.5, np.float32),
                          np.arange(k), {}, {"clip_features_available": True})
    return LoadedLanguage(lf, np.asarray(anchor_labels, np.int64), n_offsets, None)


def test_ranking_selection_and_masks():
    t = _table()
    noisy = {k: _unit(v + 0.3 * np.random.default_rng(1).normal(size=512) / np.sqrt(512) * 10)
             for k, v in t.items()}
    lang = _language(noisy, ["chair", "bed", None, "sofa"], [0, 0, 1, 3, -1, 2, 1])
    res = query_instances(lang, ["bed", "Sofa"], text_features=t, top_k=3)
    assert [m.text for m in res.matches] == ["bed", "Sofa"]
    assert res.matches[0].instance_ids[0] == 1 and res.matches[1].instance_ids[0] == 3
    assert 2 not in res.matches[0].instance_ids  # never matched -> not ranked
    assert np.isnan(res.scores[:, 2]).all() and res.scores.shape == (2, 4)
    assert (np.diff(res.matches[0].scores) <= 0).all()
    assert res.selected_ids.tolist() == [1, 3]
    np.testing.assert_array_equal(res.anchor_mask, [0, 0, 1, 1, 0, 0, 1])
    np.testing.assert_array_equal(res.gaussian_mask, np.repeat(res.anchor_mask, 2))
    # threshold selects more; precomputed [T, 512] arrays work without any table
    res2 = query_instances(lang, np.stack([t["bed"]]), threshold=-1.0)
    assert res2.selected_ids.tolist() == [0, 1, 3] and res2.matches[0].text == "feature_0"
    # min_views drops rarely seen instances
    lang3 = _language(noisy, ["chair", "bed", None, "sofa"], [0, 1, 2, 3], views=[3, 1, 0, 3])
    res3 = query_instances(lang3, ["bed"], text_features=t, min_views=2)
    assert 1 not in res3.matches[0].instance_ids


def test_relevancy_matches_lerf_formula():
    t = _table()
    lang = _language(t, ["chair", "bed", "sofa"], [0, 1, 2])
    res = query_instances(lang, ["bed"], text_features=t, relevancy=True)
    f = np.stack([t["chair"], t["bed"], t["sofa"]])
    q = t["bed"]
    want = []
    for fi in f:
        sq = float(fi @ q)
        rel = [np.exp(10 * sq) / (np.exp(10 * sq) + np.exp(10 * float(fi @ t[n])))
               for n in ("object", "things", "stuff", "texture")]
        want.append(min(rel))
    np.testing.assert_allclose(res.scores[0], want, rtol=1e-5)
    assert res.matches[0].instance_ids[0] == 1 and res.relevancy
    r = relevancy_scores(f, q[None], np.stack([t["object"]]))
    assert r.shape == (1, 3) and ((r > 0) & (r < 1)).all()


def test_table_lookup_is_case_and_space_insensitive_and_suggests():
    t = _table()
    f = lookup_text_features(t, ["BED", "showercurtain", " shower_curtain "])
    np.testing.assert_allclose(f[0], t["bed"])
    np.testing.assert_allclose(f[1], t["shower curtain"])
    np.testing.assert_allclose(f[2], t["shower curtain"])
    with pytest.raises(InputError, match=r"close matches: \['bed'\]"):
        lookup_text_features(t, ["bedd"], path="tf.json")


def test_errors_for_missing_language_empty_text_and_no_clip_weights(tmp_path, monkeypatch):
    from instgs import clip as clip_mod

    with pytest.raises(InputError, match="instgs language"):
        load_language(tmp_path)
    lang = _language(_table(), ["bed"], [0])
    for bad in ["", "   "]:
        with pytest.raises(InputError, match="empty query text"):
            query_instances(lang, [bad], text_features=_table())
    with pytest.raises(InputError, match="no query text"):
        query_instances(lang, [])
    # free text, no weights anywhere: clear message with both ways out
    monkeypatch.setattr(clip_mod, "_host_reachable", lambda *a, **k: False)
    monkeypatch.setattr(clip_mod, "_cached_hf_file", lambda *a, **k: None)
    with pytest.raises(InputError) as e:
        query_instances(lang, ["something to sit on"])
    msg = str(e.value)
    assert "CLIP weights are needed" in msg and "--clip-checkpoint" in msg
    assert "--text-features" in msg and "laion" in msg.lower()
    # a language stage without CLIP rows (Felzenszwalb masks)
    lf = lang.features
    lf_none = LanguageFeatures(lf.instance_features * 0, lf.view_counts, lf.match_scores,
                               lf.instance_ids, {}, {"clip_features_available": False})
    with pytest.raises(InputError, match="mask-source sam"):
        query_instances(LoadedLanguage(lf_none, lang.anchor_labels, 1), ["bed"],
                        text_features=_table())
    with pytest.raises(InputError, match="dimensions"):
        query_instances(lang, np.ones((1, 16), np.float32))


def test_open_clip_random_init_encodes_text_and_images_for_queries():
    from instgs.clip import encode_images, encode_text, load_clip

    torch.manual_seed(0)
    clip = load_clip("ViT-B-32", "laion2b_s34b_b79k", allow_random_init=True)
    model, preprocess, tok = clip
    rng = np.random.default_rng(0)
    imgs = encode_images(model, preprocess,
                         [rng.integers(0, 256, (64, 80, 3), dtype=np.uint8) for _ in range(2)])
    texts = encode_text(model, tok, ["a red chair", "a wooden table"])
    assert imgs.shape == (2, 512) and texts.shape == (2, 512)
    feats = torch.cat([imgs, texts]).numpy()
    lf = LanguageFeatures(feats, np.full(4, 3), np.full(4, 0.5, np.float32), np.arange(4), {},
                          {"clip_features_available": True})
    lang = LoadedLanguage(lf, np.array([0, 1, 2, 3, 3]), 1)
    res = query_instances(lang, ["a wooden table", "a red chair"], clip=clip, top_k=4)
    assert res.matches[0].instance_ids[0] == 3 and res.matches[1].instance_ids[0] == 2
    assert abs(float(res.matches[0].scores[0]) - 1.0) < 1e-4
    res_rel = query_instances(lang, ["a red chair"], clip=clip, relevancy=True)
    assert res_rel.matches[0].instance_ids[0] == 2


def test_save_query_and_cli(tmp_path, capsys):
    from instgs.cli import main
    from instgs.language.cli import QueryCommand

    t = _table()
    tf = tmp_path / "tf.json"
    tf.write_text(json.dumps({k: v.tolist() for k, v in t.items()}))
    labels = np.array([0, 0, 1, 2, -1])
    save_instances(tmp_path, labels, meta={"n_offsets": 3})
    lang = _language(t, ["chair", "bed", "sofa"], labels, n_offsets=3).features
    lang.meta["n_offsets"] = 3
    lang.meta["anchor_labels_sha1"] = labels_digest(labels)
    save_language(tmp_path, lang)
    path = QueryCommand(tmp_path, ("bed", "shower curtain"), text_features=tf, top_k=2).run()
    assert path.name == "query_bed+shower_curtain.json"
    data = json.loads(path.read_text())
    assert data["rankings"][0]["instance_ids"][0] == 1
    assert data["selected_ids"] == [0, 1]  # best for "bed" (1) and "shower curtain" (0)
    z = np.load(path.with_suffix(".npz"))
    assert z["anchor_mask"].tolist() == [True, True, True, False, False]
    np.testing.assert_array_equal(z["gaussian_mask"], np.repeat(z["anchor_mask"], 3))
    assert z["gaussian_mask"].shape == (15,)
    out = capsys.readouterr().out
    assert '"bed":' in out and "instance" in out
    # CLI errors: exit code 1 with a message, no traceback
    assert main(["query", str(tmp_path), "bedd", "--text-features", str(tf)]) == 1
    assert "close matches" in capsys.readouterr().err
    assert main(["query", str(tmp_path / "none"), "bed"]) == 1
    assert "instgs language" in capsys.readouterr().err
    # stale features after re-segmentation
    save_instances(tmp_path, np.array([0, 1, 1, 2, -1]))
    with pytest.raises(InputError, match="changed"):
        load_language(tmp_path)
    assert query_slug(["A red chair!", "sofa"]) == "a_red_chair+sofa"
    assert len(query_slug(["x" * 200])) <= 60


# --------------------------------------------------------------------------- ScanNet (oracle)
@pytest.fixture(scope="module")
def scannet_render(tmp_path_factory):
    """12 views of scene0000_00 at 160x120 (shared generator; oracle mask features)."""
    shared = Path(os.environ.get("INSTGS_SHARED", Path(__file__).resolve().parents[3] / "shared"))
    pre = os.environ.get("INSTGS_SCANNET_RENDER")  # an existing render, to save time
    if pre and (Path(pre) / "gt" / "instances.json").is_file():
        return Path(pre)
    tool = shared / "tools" / "render_scannet_views.py"
    src = shared / "data" / "scannet-scene0000-mmdet3d"
    tf = shared / "data" / "opengaussian-clip-text-features" / "assets" / "text_features.json"
    if not (tool.is_file() and src.is_dir() and tf.is_file()):
        pytest.skip(f"ScanNet render tool or data not found under {shared}")
    out = tmp_path_factory.mktemp("scannet")
    subprocess.run([sys.executable, str(tool), "--scene", "scene0000_00", "--views", "12",
                    "--width", "160", "--height", "120", "--test-views", "0", "--out",
                    str(out)], check=True, capture_output=True)
    return out / "scene0000_00"


@pytest.mark.slow
def test_scannet_query_finds_bed_sofa_curtain(scannet_render, tmp_path, shared_data):
    from instgs import language
    from instgs.language.associate import LanguageConfig

    tf = shared_data / "opengaussian-clip-text-features" / "assets" / "text_features.json"
    run = make_fake_run(scannet_render, tmp_path / "run", fmt="scannet")
    language.run(run, LanguageConfig(progress=False))
    gt = json.loads((scannet_render / "gt" / "instances.json").read_text())
    cls = {int(k) - 1: v["nyu40_name"] for k, v in gt.items()}  # instance id = GT id - 1
    res = query_instances(run, ["bed", "sofa", "curtain"], text_features=tf, top_k=3)
    for m, want in zip(res.matches, ["bed", "sofa", "curtain"]):
        assert cls[int(m.instance_ids[0])] == want, (m.text, m.instance_ids,
                                                     [cls[int(i)] for i in m.instance_ids])
    sel = res.selected_ids
    lab = load_language(run).anchor_labels
    np.testing.assert_array_equal(res.anchor_mask, np.isin(lab, sel))
