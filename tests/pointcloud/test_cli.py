"""``instgs-pc`` CLI smoke: train -> eval -> predict on a synthetic Pointcept-layout folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from instgs.pointcloud.cli import build_network, load_network, main

from ._helpers import synthetic_scene


def _write_pointcept(root: Path, name: str, seed: int) -> None:
    """Pointcept ``preprocess_scannet.py`` layout: coord, color (uint8), segment20 / instance
    with -1 for none."""
    sc = synthetic_scene(seed, n_box=250, n_floor=300)
    d = root / name
    d.mkdir(parents=True)
    np.save(d / "coord.npy", sc.coord.astype(np.float32))
    np.save(d / "color.npy", np.round((sc.color + 1) * 127.5).astype(np.uint8))
    np.save(d / "segment20.npy", np.where(sc.semantic < 0, -1, sc.semantic).astype(np.int16))
    np.save(d / "instance.npy", np.where(sc.instance < 0, -1, sc.instance).astype(np.int16))


HAIS_SMALL = ["hais:tiny", "--hais.width", "8", "--hais.levels", "3", "--hais.voxel-size",
              "0.06", "--hais.intra-voxel-size", "0.06", "--hais.min-points", "20",
              "--hais.point-radius", "0.1"]


def test_cli_train_eval_predict(tmp_path, capsys):
    data = tmp_path / "scans"
    _write_pointcept(data, "scene_a", 0)
    _write_pointcept(data, "scene_b", 1)
    out = tmp_path / "run"
    ckpt = main(["train", "--data", str(data), "--scenes", "scene_a", "--out", str(out),
                 "--train.steps", "4", "--train.ckpt-every", "2", "--augment", "light",
                 *HAIS_SMALL])
    assert Path(ckpt).is_file() and (out / "ckpt" / "last.pt").is_file()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["hais"]["width"] == 8 and cfg["network"] == "hais"
    assert (out / "manifest.json").is_file()
    model = load_network(Path(ckpt))
    assert model.cfg.width == 8 and model.cfg.point_radius == 0.1
    # class statistics re-estimated from scene_a: 250-point boxes
    assert model.cfg.class_numpoint_mean[4] == pytest.approx(250.0)

    metrics = tmp_path / "metrics.json"
    main(["eval", "--ckpt", str(ckpt), "--data", str(data), "--scenes", "scene_b",
          "--out", str(metrics)])
    res = json.loads(metrics.read_text())
    assert set(res["instance"]) >= {"AP", "AP50", "AP25", "per_class"}
    assert 0.0 <= res["instance"]["AP25"] <= 1.0
    assert res["scenes"] == ["scene_b"] and "backbone" in res["timings"]
    assert "AP50" in capsys.readouterr().out

    pred_dir = tmp_path / "preds"
    main(["predict", "--ckpt", str(ckpt), "--data", str(data), "--out", str(pred_dir)])
    for name in ("scene_a", "scene_b"):
        z = np.load(pred_dir / f"{name}.npz")
        n = len(np.load(data / name / "coord.npy"))
        assert z["semantic"].shape == (n,) and z["offsets"].shape == (n, 3)
        k = len(z["labels"])
        assert z["scores"].shape == (k,) and z["instance_offsets"].shape == (k + 1,)
        assert z["instance_offsets"][-1] == len(z["point_idx"])


def test_cli_errors_are_one_line(tmp_path):
    with pytest.raises(SystemExit, match="checkpoint not found"):
        main(["eval", "--ckpt", str(tmp_path / "nope.pt"), "--data", str(tmp_path)])
    with pytest.raises(SystemExit, match="data path not found"):
        main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit):  # tyro rejects an unknown network name
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path), "--network", "ssen"])


def test_build_network_factory_rejects_unknown():
    from instgs.core.checks import InputError
    from instgs.pointcloud.hais import HAIS, HAISConfig

    assert isinstance(build_network("hais", HAISConfig.tiny()), HAIS)
    with pytest.raises(InputError, match="hais"):
        build_network("mpnet", None)  # type: ignore[arg-type]
