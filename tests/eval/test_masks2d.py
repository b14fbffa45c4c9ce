"""``instgs eval masks``: per-view 2D instance scores of a run against GT instance masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from instgs.cli import main
from instgs.core.checks import InputError
from instgs.eval.masks2d import evaluate_masks, read_gt_mask, score_instance_map


def test_score_instance_map_hand_made():
    gt = np.zeros((4, 6), np.int64)
    gt[:, :3], gt[:, 3:5] = 1, 2               # column 5 is not annotated
    perfect = np.where(gt > 0, gt + 10, -2)    # other ids, same regions
    s = score_instance_map(perfect, gt)
    assert s["miou"] == s["pq"] == s["f1_50"] == 100.0 and s["num_pred"] == 2
    split = perfect.copy()
    split[:2, :3] = 30                         # GT 1 cut in two halves: IoU 0.5 each, no TP
    s = score_instance_map(split, gt)
    assert s["num_pred"] == 3 and s["m50"] == 50.0
    # TP = GT 2 (IoU 1); FP = the two halves; FN = GT 1 -> RQ = 1 / (1 + 1 + 0.5)
    assert s["pq"] == pytest.approx(100 / 2.5) and s["f1_50"] == pytest.approx(100 * 2 / 5)
    with pytest.raises(InputError, match="GT mask is"):
        score_instance_map(perfect[:, :5], gt)


def test_read_gt_mask_resizes_and_names_bad_files(tmp_path):
    m = np.repeat(np.repeat(np.arange(6, dtype=np.uint16).reshape(2, 3), 4, 0), 4, 1)
    Image.fromarray(m).save(tmp_path / "a.png")
    got = read_gt_mask(tmp_path, "a", 2, 3)
    assert got.dtype == np.int64 and np.array_equal(got, m[::4, ::4])
    np.save(tmp_path / "b.npy", np.zeros((8, 12), np.float32))
    with pytest.raises(InputError, match="2D integer") as e:
        read_gt_mask(tmp_path, "b", 2, 3)
    assert "b.npy" in str(e.value)
    with pytest.raises(InputError, match="no GT mask for view c"):
        read_gt_mask(tmp_path, "c", 2, 3)
    with pytest.raises(InputError, match="aspect"):
        read_gt_mask(tmp_path, "a", 3, 3)
    (tmp_path / "d.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot read") as e:
        read_gt_mask(tmp_path, "d", 2, 3)
    assert "d.png" in str(e.value)


def test_eval_masks_on_a_run(small_run, tmp_path, capsys):
    """The command scores the held-out views against the scene's GT masks; given the run's
    own rendered maps as GT it scores exactly 100 (views, names and sizes line up)."""
    from instgs.run import load_instances, load_run
    from instgs.segment.views import child_labels, render_instance_ids

    scene, run_dir = small_run
    assert main(["eval", "masks", str(run_dir)]) == 0
    res = json.loads((run_dir / "eval_masks.json").read_text())
    assert res["num_views"] == 2 and set(res["views"]) == {"test_000", "test_001"}
    assert 0 <= res["mean"]["pq"] <= 100 and res["mean"]["miou"] > 50
    cap = capsys.readouterr()
    assert "PQ" in cap.out + cap.err
    run = load_run(run_dir)
    labels = child_labels(run, load_instances(run_dir))
    own = tmp_path / "own"
    own.mkdir()
    for i in run.scene.test_ids:
        ids = render_instance_ids(run, labels, i).numpy()
        big = np.repeat(np.repeat(np.maximum(ids + 1, 0), 2, 0), 2, 1)  # 2x: resized back
        np.save(own / f"{run.scene.image_paths[i].stem}.npy", big.astype(np.int32))
    res = evaluate_masks(run_dir, own)
    assert res["mean"]["miou"] == res["mean"]["pq"] == 100.0
    assert main(["eval", "masks", str(run_dir), "--gt-masks", str(tmp_path / "none")]) == 1
    cap = capsys.readouterr()
    assert "GT mask folder not found" in cap.out + cap.err
