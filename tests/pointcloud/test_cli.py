"""``instgs-pc`` CLI: train -> eval -> predict on a synthetic Pointcept-layout folder, exit
codes (0 success, 1 bad input with one line on stderr), predict on unlabelled scenes."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from instgs.pointcloud.cli import build_network, load_network, main
from instgs.pointcloud.presets import hais_preset

from ._helpers import HAIS_SMALL, write_pointcept

REPO = Path(__file__).resolve().parents[2]


def _one_error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{prog}: error: "), err
    return err[0]


def test_cli_train_eval_predict_exit_zero(tmp_path, capsys):
    data = tmp_path / "scans"
    write_pointcept(data, "scene_a", 0)
    write_pointcept(data, "scene_b", 1)
    out = tmp_path / "run"
    rc = main(["train", "--data", str(data), "--scenes", "scene_a", "--out", str(out),
               "--train.steps", "4", "--train.ckpt-every", "2", "--augment", "light",
               *HAIS_SMALL])
    assert rc == 0  # was 1: main returned the checkpoint path and sys.exit(path) exits 1
    ckpt = out / "ckpt" / "step_000004.pt"
    assert ckpt.is_file() and (out / "ckpt" / "last.pt").is_file()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["hais"]["width"] == 8 and cfg["network"] == "hais"
    assert cfg["preset"] == "hais-tiny" and cfg["hais"]["levels"] == 3
    assert (out / "manifest.json").is_file()
    model = load_network(ckpt)
    assert model.cfg.width == 8 and model.cfg.point_radius == 0.1
    # class statistics re-estimated from scene_a: 250-point boxes
    assert model.cfg.class_numpoint_mean[4] == pytest.approx(250.0)

    metrics = tmp_path / "metrics.json"
    assert main(["eval", "--ckpt", str(ckpt), "--data", str(data), "--scenes", "scene_b",
                 "--out", str(metrics)]) == 0
    res = json.loads(metrics.read_text())
    assert set(res["instance"]) >= {"AP", "AP50", "AP25", "per_class"}
    assert 0.0 <= res["instance"]["AP25"] <= 1.0
    assert res["scenes"] == ["scene_b"] and "backbone" in res["timings"]
    assert "AP50" in capsys.readouterr().out

    pred_dir = tmp_path / "preds"
    assert main(["predict", "--ckpt", str(ckpt), "--data", str(data), "--out",
                 str(pred_dir)]) == 0
    for name in ("scene_a", "scene_b"):
        z = np.load(pred_dir / f"{name}.npz")
        n = len(np.load(data / name / "coord.npy"))
        assert z["semantic"].shape == (n,) and z["offsets"].shape == (n, 3)
        k = len(z["labels"])
        assert z["scores"].shape == (k,) and z["instance_offsets"].shape == (k + 1,)
        assert z["instance_offsets"][-1] == len(z["point_idx"])


def test_cli_bad_input_exits_one_with_one_line(tmp_path, capsys):
    assert main(["eval", "--ckpt", str(tmp_path / "nope.pt"), "--data", str(tmp_path)]) == 1
    assert "checkpoint not found" in _one_error_line(capsys, "instgs-pc eval")
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 1
    assert "data path not found" in _one_error_line(capsys, "instgs-pc train")


@pytest.mark.parametrize("argv, needle", [
    (["train", "--data", "d", "--out", "o", "--network", "pointnet"], "pointnet"),  # bad choice
    (["train", "--data", "d", "--out", "o", "--bogus-flag", "1"], "bogus"),  # unknown flag
    (["train", "--data", "d", "--out", "o", "--augment", "heavy"], "heavy"),
    (["eval", "--data", "d"], "--ckpt"),                                      # missing arg
    (["predict", "--ckpt"], None),                                           # no value
    (["frobnicate"], "frobnicate"),
    ([], "missing command"),
])
def test_cli_parse_errors_exit_one_with_one_line(argv, needle, capsys):
    assert main(argv) == 1
    line = _one_error_line(capsys, "instgs-pc" + (f" {argv[0]}" if argv and
                                                  argv[0] in ("train", "eval", "predict")
                                                  else ""))
    assert needle is None or needle in line


def test_cli_help_exits_zero(capsys):
    for argv in (["--help"], ["train", "--help"], ["eval", "--help"], ["predict", "-h"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code in (0, None)
    assert "predict" in capsys.readouterr().out


def test_module_entry_point_exit_codes(tmp_path):
    """``python -m instgs.pointcloud.cli``: 1 and one stderr line, no traceback."""
    r = subprocess.run([sys.executable, "-m", "instgs.pointcloud.cli", "eval", "--ckpt",
                        str(tmp_path / "x.pt"), "--data", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "Traceback" not in r.stderr and "checkpoint not found" in r.stderr


# --- predict needs no labels --------------------------------------------------------------------
def test_predict_pointcept_scene_without_labels(small_run, tmp_path, capsys):
    _, _, ckpt = small_run
    data = tmp_path / "unlabelled"
    write_pointcept(data, "scene_u", 2, labels=False)
    assert sorted(p.name for p in (data / "scene_u").iterdir()) == ["color.npy", "coord.npy"]
    out = tmp_path / "preds"
    assert main(["predict", "--ckpt", str(ckpt), "--data", str(data / "scene_u"),
                 "--out", str(out)]) == 0
    z = np.load(out / "scene_u.npz")
    assert z["semantic"].shape == (len(np.load(data / "scene_u" / "coord.npy")),)
    # eval does need labels: a clear error naming the missing file
    assert main(["eval", "--ckpt", str(ckpt), "--data", str(data / "scene_u")]) == 1
    line = _one_error_line(capsys, "instgs-pc eval")
    assert "segment20.npy" in line and "predict" in line


def test_predict_mmdet3d_points_without_label_arrays(small_run, tmp_path):
    _, _, ckpt = small_run
    src = small_run[0] / "scene_b"
    mm = tmp_path / "mm" / "scannet_train_instance_data"
    mm.mkdir(parents=True)
    rgb = np.load(src / "color.npy").astype(np.float32)
    np.save(mm / "sceneX_00_vert_all.npy", np.c_[np.load(src / "coord.npy"), rgb])
    out = tmp_path / "preds"
    assert main(["predict", "--ckpt", str(ckpt), "--data", str(tmp_path / "mm"),
                 "--scenes", "sceneX_00", "--out", str(out)]) == 0
    assert np.load(out / "sceneX_00.npz")["offsets"].shape == (len(rgb), 3)


def test_build_network_factory_rejects_unknown():
    from instgs.core.checks import InputError
    from instgs.pointcloud.hais import HAIS

    assert isinstance(build_network("hais", hais_preset("tiny")), HAIS)
    with pytest.raises(InputError, match="hais"):
        build_network("pointnet", None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="MPNetConfig"):
        build_network("mpnet", hais_preset("tiny"))


def test_library_code_does_not_print():
    """Library modules report through ``logging``; only the CLI commands' ``run()`` (their
    results) and the ``--help`` overview print."""
    root = REPO / "instgs" / "pointcloud"
    offenders = []
    for f in sorted(root.rglob("*.py")):
        tree = ast.parse(f.read_text())
        allowed = set()
        if f.name == "cli.py":
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and node.name in ("run", "parse_args"):
                    allowed |= {id(n) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "print" and id(node) not in allowed):
                offenders.append(f"{f.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize("network", ["ssen", "queryis", "mpnet"])
def test_cli_train_eval_predict_each_network(tmp_path, capsys, network):
    """One ``instgs-pc`` interface for the four networks: train 2 steps from the network's
    tiny preset (shrunk to the synthetic scene), evaluate and predict with ``--model``."""
    from ._helpers import SMALL_FLAGS

    data = tmp_path / "scans"
    write_pointcept(data, "scene_a", 0)
    out = tmp_path / "run"
    assert main(["-q", "train", "--model", network, "--preset", f"{network}-tiny", "--data",
                 str(data), "--out", str(out), "--train.steps", "2",
                 *SMALL_FLAGS[network]]) == 0
    ckpt = out / "ckpt" / "step_000002.pt"
    assert torch.load(ckpt, weights_only=True)["network"] == network
    metrics = tmp_path / "m.json"
    assert main(["eval", "--ckpt", str(ckpt), "--data", str(data), "--model", network,
                 "--out", str(metrics)]) == 0
    res = json.loads(metrics.read_text())
    assert res["network"] == network and "AP50" in res["instance"]
    preds = tmp_path / "preds"
    assert main(["predict", "--ckpt", str(ckpt), "--data", str(data), "--out", str(preds),
                 "--model", network]) == 0
    z = np.load(preds / "scene_a.npz")
    assert z["instance_offsets"].shape == (len(z["labels"]) + 1,)
