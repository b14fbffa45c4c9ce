"""Nothing ``instgs-pc`` reads can run code: planted checkpoints (``eval``, ``predict``,
``train --resume``) and planted HAIS ``.pth`` data files (``train``) are refused with exit code
1 and one error line naming the file, and the code in them never runs."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch

from instgs.core.checks import InputError
from instgs.pointcloud.cli import main
from instgs.pointcloud.data import load_scannet_scene

from ._helpers import HAIS_SMALL, Planted


def _plant_checkpoint(path, marker) -> None:
    """A file shaped like an instgs-pc checkpoint whose ``model`` entry runs a command."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"instgs_format": "pointcloud", "network": "hais", "net_config": {},
                "model": Planted(marker), "step": 1}, path)


def _hais_arrays(n=40, seed=0, dtype=np.float64):
    """(coords, colors, sem, inst) as HAIS prepare_data_inst.py writes them (float64)."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, 3)).astype(dtype), rng.uniform(-1, 1, (n, 3)).astype(dtype),
            np.repeat([2.0, 5.0, -100.0, 7.0], n // 4).astype(dtype),
            np.repeat([0.0, 1.0, -100.0, 2.0], n // 4).astype(dtype))


def test_planted_files_are_live(tmp_path):
    """The fixture is real: an unsafe ``torch.load`` of the planted file runs the command."""
    marker = tmp_path / "ran"
    _plant_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_eval_predict_refuse_planted_checkpoint(small_run, tmp_path, capsys, command):
    data, _, _ = small_run
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    _plant_checkpoint(evil, marker)
    argv = [command, "--ckpt", str(evil), "--data", str(data), "--scenes", "scene_b"]
    if command == "predict":
        argv += ["--out", str(tmp_path / "preds")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"instgs-pc {command}: error: {evil}")
    assert "refused" in err[0]
    assert not marker.exists()


def test_train_resume_refuses_planted_last_checkpoint(small_run, tmp_path, capsys):
    data, _, _ = small_run
    out = tmp_path / "run"
    marker = tmp_path / "pwned"
    _plant_checkpoint(out / "ckpt" / "last.pt", marker)
    assert main(["train", "--data", str(data), "--scenes", "scene_a", "--out", str(out),
                 "--train.steps", "3", "--resume", *HAIS_SMALL]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out / "ckpt" / "last.pt") in err[0] and "refused" in err[0]
    assert not marker.exists()


def test_train_refuses_planted_hais_pth(tmp_path, capsys):
    data = tmp_path / "hais"
    data.mkdir()
    coords, colors, sem, _ = _hais_arrays()
    marker = tmp_path / "pwned"
    evil = data / "scene0001_00_inst_nostuff.pth"
    torch.save((coords, colors, sem, Planted(marker)), evil)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--train.steps", "1", *HAIS_SMALL]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(evil) in err[0] and "refused" in err[0]
    assert "Fix:" in err[0]
    assert not marker.exists()


def test_hais_pth_real_layout_loads_with_weights_only(tmp_path):
    """A HAIS file (tuple of float64 numpy arrays) loads; so does one written under numpy 1.x
    (which names ``numpy.core.multiarray._reconstruct``), float32 / int64 variants, and the
    2-tuple test split when labels are not required."""
    arrays = _hais_arrays()
    p = tmp_path / "scene0002_00_inst_nostuff.pth"
    torch.save(arrays, p)
    s = load_scannet_scene(p)
    assert s.name == "scene0002_00" and s.num_points == 40
    np.testing.assert_allclose(s.coord, arrays[0].astype(np.float32))
    assert s.instance.tolist() == list(np.repeat([0, 1, -100, 2], 10))
    # numpy 1.x pickle: same bytes but the old module name of _reconstruct
    buf = io.BytesIO()
    torch.save(arrays, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    old = tmp_path / "scene0003_00_inst_nostuff.pth"
    with zipfile.ZipFile(old, "w", compression=zipfile.ZIP_STORED) as z:
        for name in src.namelist():
            raw = src.read(name)
            if name.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in raw
                raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            z.writestr(name, raw)
    np.testing.assert_array_equal(load_scannet_scene(old).coord, s.coord)
    mixed = (arrays[0].astype(np.float32), arrays[1].astype(np.float32),
             arrays[2].astype(np.int64), arrays[3].astype(np.int32))
    torch.save(mixed, tmp_path / "scene0004_00_inst_nostuff.pth")
    assert load_scannet_scene(tmp_path / "scene0004_00_inst_nostuff.pth").num_instances == 3
    torch.save(arrays[:2], tmp_path / "scene0005_00_inst_nostuff.pth")
    t = load_scannet_scene(tmp_path / "scene0005_00_inst_nostuff.pth", require_labels=False)
    assert (t.semantic == -100).all() and (t.instance == -100).all()
    with pytest.raises(InputError, match="no labels"):
        load_scannet_scene(tmp_path / "scene0005_00_inst_nostuff.pth")


@pytest.mark.parametrize("payload, needle", [
    (lambda a: ({"coords": a[0]},), "expected a tuple"),          # not a tuple of arrays
    (lambda a: (a[0], a[1], a[2]), "expected a tuple"),           # 3 elements
    (lambda a: (a[0], a[1], a[2], np.array(["x"] * 40, dtype=object)), "refused"),
    (lambda a: (a[0], a[1], a[2], a[3].astype(np.complex64)), "refused"),  # dtype not allowed
    (lambda a: (a[0], a[1], a[2], "labels"), "not a numeric array"),
])
def test_hais_pth_anything_else_is_refused(tmp_path, payload, needle):
    p = tmp_path / "scene0009_00_inst_nostuff.pth"
    torch.save(payload(_hais_arrays()), p)
    with pytest.raises(InputError, match=needle) as e:
        load_scannet_scene(p)
    assert str(p) in str(e.value) and "Fix:" in str(e.value)


def test_truncated_hais_pth(tmp_path):
    p = tmp_path / "scene0010_00_inst_nostuff.pth"
    torch.save(_hais_arrays(), p)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(InputError, match="truncated or corrupt") as e:
        load_scannet_scene(p)
    assert str(p) in str(e.value)


def test_checkpoints_are_written_for_the_safe_loader(small_run):
    """Every checkpoint of ``instgs-pc train`` loads with ``weights_only=True`` and is tagged."""
    _, out, ckpt = small_run
    for p in (ckpt, out / "ckpt" / "last.pt"):
        ck = torch.load(p, weights_only=True)
        assert ck["instgs_format"] == "pointcloud" and ck["network"] == "hais"
