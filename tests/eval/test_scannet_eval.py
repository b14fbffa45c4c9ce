from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from instgs.core.checks import InputError
from instgs.eval import _reference as ref
from instgs.eval.cli import EvalCommand, EvalScannetCommand
from instgs.eval.stage import evaluate_scannet
from instgs.eval.io import load_pred_labels, load_scannet_gt
from instgs.eval.scannet import (CLASS_SETS, NYU40_NAMES, average_precision,
                                 classify_instances, instance_matching, instance_miou,
                                 panoptic_quality, text_query_scores)

IG = "instancegaussian-scene0000_00-results"
MM = "scannet-scene0000-mmdet3d"
TEXT = "opengaussian-clip-text-features/assets/text_features.json"


def _random_case(rng, n=300, g=6, p=8):
    gt = rng.integers(0, g + 1, n)          # 0 = unannotated
    pred = rng.integers(-1, p, n)           # -1 = unassigned
    # make predictions correlate with GT so IoUs are not all tiny
    keep = rng.random(n) < 0.6
    pred[keep] = gt[keep] * 3 % (p + 1)
    return pred, gt


# ---------------------------------------------------------------- published instance protocol
def test_instance_miou_hand_checked():
    gt = np.array([1, 1, 2, 2, 0])
    pred = np.array([5, 5, 5, 7, 9])
    m = instance_miou(pred, gt)
    # GT1: pred5 covers both -> 2 / 3; GT2: pred7 -> 1 / 2 (pred5 -> 1 / 4)
    assert m.best_iou == pytest.approx([2 / 3, 1 / 2])
    assert m.miou == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m.m50 == 0.5          # strictly greater than 0.5, as released
    assert m.m25 == 1.0
    assert m.num_gt == 2 and m.num_pred == 2   # pred 9 lies on an unannotated vertex only


@pytest.mark.parametrize("seed", range(6))
def test_instance_miou_matches_reference(seed):
    pred, gt = _random_case(np.random.default_rng(seed))
    m = instance_miou(pred, gt)
    assert (m.miou, m.m50, m.m25) == pytest.approx(ref.instance_miou_ref(pred, gt))


def test_instance_miou_errors():
    with pytest.raises(InputError, match="no annotated instance"):
        instance_miou(np.zeros(4, int), np.zeros(4, int))
    with pytest.raises(InputError, match="GT has 4 vertices"):
        instance_miou(np.zeros(3, int), np.ones(4, int))


# ---------------------------------------------------------------- one-to-one variant
@pytest.mark.parametrize("seed", range(5))
def test_matching_matches_bruteforce_and_ap_reference(seed):
    rng = np.random.default_rng(seed)
    pred, gt = _random_case(rng, n=200, g=4, p=5)
    mm = instance_matching(pred, gt)
    assert mm.matched_miou == pytest.approx(ref.hungarian_matched_iou_ref(pred, gt))
    for t in (0.25, 0.5):
        assert mm.ap[t] == pytest.approx(ref.average_precision_ref(pred, gt, t))


def test_matching_is_one_to_one_unlike_published():
    # one prediction covering two equal GT instances: published best-IoU credits both (0.5 each)
    gt = np.array([1] * 10 + [2] * 10)
    pred = np.zeros(20, int)
    assert instance_miou(pred, gt).miou == pytest.approx(0.5)
    mm = instance_matching(pred, gt)
    assert mm.matched_miou == pytest.approx(0.25)
    assert mm.recall[0.25] == pytest.approx(0.5) and mm.precision[0.25] == 1.0


@pytest.mark.parametrize("seed", range(6))
def test_panoptic_quality_matches_reference(seed):
    rng = np.random.default_rng(seed)
    gt = np.repeat(np.arange(0, 7), rng.integers(5, 40, 7))
    pred = gt.copy()                              # mostly right, with splits, merges, noise
    flip = rng.random(len(gt)) < 0.25
    pred[flip] = rng.integers(-1, 9, flip.sum())
    pred[pred == 3] = 2                           # a merge
    pred[(gt == 5) & (rng.random(len(gt)) < 0.5)] = 11   # a split
    mm = instance_matching(pred, gt)
    assert (mm.pq, mm.sq, mm.rq) == pytest.approx(ref.panoptic_quality_ref(pred, gt))
    assert mm.pq == pytest.approx(mm.sq * mm.rq)


def test_panoptic_quality_hand_checked():
    # GT 1 (4 px) matched at IoU 0.75; GT 2 (4 px) split in two halves (no TP: FN, and two
    # FP); prediction 9 on nothing annotated is dropped, prediction 7 on GT 1's 4th vertex...
    gt = np.array([1, 1, 1, 1, 2, 2, 2, 2, 0, 0])
    pred = np.array([5, 5, 5, 7, 6, 6, 8, 8, 9, 9])
    # pairs: (1,5) IoU 3/4 -> TP; 7, 6, 8 unmatched -> FP 3; GT 2 -> FN 1
    pq, sq, rq = panoptic_quality(np.array([[0.75, 0.25, 0, 0], [0, 0, 0.5, 0.5]]))
    mm = instance_matching(pred, gt)
    assert (mm.sq, mm.rq) == pytest.approx((0.75, 1 / (1 + 1.5 + 0.5)))
    assert (pq, sq, rq) == pytest.approx((mm.pq, mm.sq, mm.rq))
    assert mm.num_pred == 4                       # 9 never touches an annotated vertex
    perfect = instance_matching(gt, gt)
    assert (perfect.pq, perfect.sq, perfect.rq) == (1.0, 1.0, 1.0)
    assert panoptic_quality(np.zeros((0, 0))) == (0.0, 0.0, 0.0)


def test_ap_perfect_and_empty():
    gt = np.repeat(np.arange(1, 5), 5)
    assert instance_matching(gt * 7, gt).ap == {0.25: 1.0, 0.5: 1.0}
    assert average_precision(np.zeros((3, 0)), np.zeros(0), 0.5) == 0.0


# ---------------------------------------------------------------- text query
def test_zeroed_instance_is_predicted_wall():
    text = np.eye(4)
    feats = np.array([[0, 0, 1, 0], [0.1, 0.2, 0.3, 5.0]])
    cls = classify_instances(feats, text, view_counts=np.array([1, 7]), min_views=2)
    assert cls.tolist() == [0, 3]    # row 0 zeroed -> cosine 0 everywhere -> argmax 0 (wall)


@pytest.mark.parametrize("seed", range(4))
def test_text_query_matches_reference(seed):
    rng = np.random.default_rng(seed)
    n, m, d = 400, 12, 16
    ids = CLASS_SETS[10]
    gt_sem = rng.choice(np.array([0, 1, 2, 5, 7, 33, 39]), n)
    leaf_ind = rng.integers(-1, m, n)
    feats = rng.normal(size=(m, d)).astype(np.float32)
    occ = rng.integers(0, 5, m)
    text = {NYU40_NAMES[c]: rng.normal(size=d) for c in ids}
    r = text_query_scores(leaf_ind, feats, gt_sem, text, ids, occ)
    rows = np.stack([text[NYU40_NAMES[c]] for c in ids])
    assert (r.miou, r.macc) == pytest.approx(ref.text_query_ref(leaf_ind, feats, gt_sem, rows,
                                                                 ids, occ))
    # only classes present in the GT are averaged
    assert set(r.per_class) == {"wall", "floor", "chair", "table", "toilet"}


def test_text_query_missing_class_key():
    with pytest.raises(InputError, match="lack the classes"):
        text_query_scores(np.zeros(3, int), np.ones((1, 4)), np.ones(3, int), {"wall": [1] * 4},
                          CLASS_SETS[10])


# ---------------------------------------------------------------- readers
def test_gt_reader_both_layouts(tmp_path):
    rend = tmp_path / "rendered" / "sceneX"
    (rend / "gt").mkdir(parents=True)
    np.save(rend / "gt" / "instance_per_vertex.npy", np.array([0, 1, 1, 2], np.int32))
    np.save(rend / "gt" / "nyu40_per_vertex.npy", np.array([0, 1, 1, 5], np.int32))
    a = load_scannet_gt(rend)
    b = load_scannet_gt(tmp_path / "rendered", scene="sceneX")
    assert a.instance.tolist() == b.instance.tolist() == [0, 1, 1, 2]
    assert a.semantic.dtype == np.int64 and a.scene == "sceneX"
    mm = tmp_path / "mm" / "scannet_train_instance_data"
    mm.mkdir(parents=True)
    for s in ("s1", "s2"):
        np.save(mm / f"{s}_ins_label_all.npy", np.array([0, 3, 3], np.uint32))
        np.save(mm / f"{s}_sem_label_all.npy", np.array([0, 2, 2], np.uint32))
    assert load_scannet_gt(tmp_path / "mm", "s2").instance.tolist() == [0, 3, 3]
    with pytest.raises(InputError, match="several scenes"):
        load_scannet_gt(tmp_path / "mm")
    with pytest.raises(InputError, match="not found"):
        load_scannet_gt(tmp_path / "mm", "nope")
    with pytest.raises(InputError, match="no per-vertex GT"):
        load_scannet_gt(tmp_path)


def test_pred_reader(tmp_path):
    torch.save(torch.tensor([3, 1, 2]), tmp_path / "p.pt")
    np.save(tmp_path / "p.npy", np.array([[3], [1], [2]]))
    assert load_pred_labels(tmp_path / "p.pt").tolist() == [3, 1, 2]
    assert load_pred_labels(tmp_path / "p.npy").tolist() == [3, 1, 2]
    (tmp_path / "p.txt").write_text("1 2 3")
    with pytest.raises(InputError, match="unknown prediction format"):
        load_pred_labels(tmp_path / "p.txt")
    np.save(tmp_path / "f.npy", np.array([0.5, 1.0]))
    with pytest.raises(InputError, match="integer"):
        load_pred_labels(tmp_path / "f.npy")


# ---------------------------------------------------------------- CLI on a run folder
def test_cli_scores_a_run(tmp_path, capsys):
    from instgs.run import LanguageFeatures, save_instances, save_language

    run = tmp_path / "run"
    gt_dir = tmp_path / "scene"
    (gt_dir / "gt").mkdir(parents=True)
    gt = np.array([1, 1, 1, 2, 2, 0, 3, 3])
    np.save(gt_dir / "gt" / "instance_per_vertex.npy", gt.astype(np.int32))
    np.save(gt_dir / "gt" / "nyu40_per_vertex.npy", np.array([1, 1, 1, 5, 5, 0, 2, 2]))
    save_instances(run, np.array([0, 0, 0, 1, 1, 1, 2, 2]))
    feats = np.zeros((3, 4), np.float32)
    feats[0, 0] = feats[1, 1] = feats[2, 2] = 1
    save_language(run, LanguageFeatures(feats, np.array([3, 3, 3]), np.ones(3, np.float32),
                                        np.arange(3)))
    names = {"wall": [1, 0, 0, 0], "chair": [0, 1, 0, 0], "floor": [0, 0, 1, 0]}
    text = {NYU40_NAMES[c]: names.get(NYU40_NAMES[c], [0, 0, 0, 1]) for c in range(1, 41)}
    (tmp_path / "text.json").write_text(json.dumps(text))
    cmd = EvalCommand.parse_cli(["scannet", str(run), "--gt", str(gt_dir), "--text-features",
                                 str(tmp_path / "text.json")])
    assert isinstance(cmd, EvalScannetCommand)
    from instgs.cli import main

    assert main(["eval", "scannet", str(run), "--gt", str(gt_dir), "--text-features",
                 str(tmp_path / "text.json")]) == 0
    path = run / "eval_scannet.json"
    res = json.loads(path.read_text())
    assert res["instance"]["miou"] == pytest.approx(100.0)
    assert res["text_query"]["10"]["miou"] == pytest.approx(100.0)
    assert "mIoU" in capsys.readouterr().out


def test_cli_needs_gt_and_prediction(tmp_path):
    with pytest.raises(InputError, match="no GT"):
        EvalScannetCommand(run_dir=tmp_path).run()
    (tmp_path / "gt").mkdir()
    np.save(tmp_path / "gt" / "instance_per_vertex.npy", np.array([1, 2]))
    with pytest.raises(InputError, match="nothing to evaluate"):
        EvalScannetCommand(gt=tmp_path).run()
    with pytest.raises(InputError, match="run `instgs segment .*` first"):
        EvalScannetCommand(run_dir=tmp_path, gt=tmp_path).run()


# ---------------------------------------------------------------- InstanceGaussian's release
def test_reproduces_instancegaussian_scene0000_00(shared_data, tmp_path):
    """Must show 1: the released scene0000_00 figures of SOURCE.md, to two decimals."""
    ig, mm, tf = shared_data / IG, shared_data / MM, shared_data / TEXT
    for p in (ig / "cluster_result.pt", ig / "cluster_lang.npz", mm, tf):
        if not p.exists():
            pytest.skip(f"{p} not found")
    out = tmp_path / "eval.json"
    EvalCommand.parse_cli(["scannet", "--pred-labels", str(ig / "cluster_result.pt"),
                           "--lang", str(ig / "cluster_lang.npz"), "--gt", str(mm),
                           "--scene", "scene0000_00", "--text-features", str(tf),
                           "--out", str(out)]).run()
    res = json.loads(out.read_text())
    ins = res["instance"]
    assert (ins["num_gt"], ins["num_pred"]) == (67, 312)
    assert [f"{ins[k]:.2f}" for k in ("miou", "m50", "m25")] == ["51.71", "59.70", "85.07"]
    want = {"19": ("34.97", "49.08"), "15": ("33.12", "53.92"), "10": ("34.07", "58.84")}
    got = {k: (f"{v['miou']:.2f}", f"{v['macc']:.2f}") for k, v in res["text_query"].items()}
    assert got == want


def test_published_protocol_equals_reference_on_real_scene(shared_data):
    ig, mm = shared_data / IG, shared_data / MM
    if not (ig / "cluster_result.pt").exists() or not mm.exists():
        pytest.skip("InstanceGaussian results or mmdet3d GT not found")
    gt = load_scannet_gt(mm, "scene0000_00")
    pred = load_pred_labels(ig / "cluster_result.pt")
    # the reference is O(G*P*N); check a 5k-vertex subsample against it
    idx = np.random.default_rng(0).choice(len(pred), 5000, replace=False)
    m = instance_miou(pred[idx], gt.instance[idx])
    assert (m.miou, m.m50, m.m25) == pytest.approx(
        ref.instance_miou_ref(pred[idx], gt.instance[idx]))
    res = evaluate_scannet(pred, gt)
    assert res["text_query"] is None and res["notes"]
