"""Bad input to ``instgs-pc`` gives exit code 1 and one line naming the file and the fix:
NaN coordinates, label arrays of the wrong length, empty scenes, checkpoints of another kind
or network, truncated checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instgs.pointcloud.cli import main
from instgs.run.checkpoint import save_checkpoint

from ._helpers import HAIS_SMALL, SMALL_FLAGS, write_pointcept


def _error(capsys, prog: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{prog}: error: "), err
    assert "Traceback" not in err[0]
    return err[0]


def _train(data, tmp_path, network: str = "hais") -> int:
    return main(["train", "--model", network, "--preset", f"{network}-tiny", "--data",
                 str(data), "--out", str(tmp_path / "run"), "--train.steps", "1",
                 *SMALL_FLAGS[network]])


@pytest.mark.parametrize("network", ["hais", "ssen", "queryis", "mpnet"])
def test_nan_coordinates(tmp_path, capsys, network):
    d = write_pointcept(tmp_path / "scans", "scene_nan", n_box=20, n_floor=20)
    c = np.load(d / "coord.npy")
    c[5, 2] = np.nan
    np.save(d / "coord.npy", c)
    assert _train(d, tmp_path, network) == 1
    line = _error(capsys, "instgs-pc train")
    assert str(d) in line and "NaN" in line and "point 5" in line and "Fix:" in line


@pytest.mark.parametrize("network", ["hais", "mpnet"])
@pytest.mark.parametrize("layout", ["pointcept", "mmdet3d"])
def test_label_length_differs_from_points(tmp_path, capsys, layout, network):
    d = write_pointcept(tmp_path / "scans", "scene_len", n_box=20, n_floor=20)
    if layout == "pointcept":
        bad = d / "instance.npy"
        np.save(bad, np.load(bad)[:-3])
        data = d
    else:
        data = tmp_path / "mm"
        data.mkdir()
        n = len(np.load(d / "coord.npy"))
        np.save(data / "sceneL_vert_all.npy",
                np.c_[np.load(d / "coord.npy"), np.load(d / "color.npy").astype(np.float32)])
        bad = data / "sceneL_sem_label_all.npy"
        np.save(bad, np.full(n + 2, 5, np.uint32))
        np.save(data / "sceneL_ins_label_all.npy", np.ones(n, np.uint32))
    assert _train(data, tmp_path, network) == 1
    line = _error(capsys, "instgs-pc train")
    assert str(bad if layout == "mmdet3d" else d) in line
    assert "Fix:" in line


@pytest.mark.parametrize("network", ["hais", "ssen", "queryis", "mpnet"])
def test_empty_scene(tmp_path, capsys, network):
    d = tmp_path / "scans" / "scene_empty"
    d.mkdir(parents=True)
    np.save(d / "coord.npy", np.zeros((0, 3), np.float32))
    np.save(d / "color.npy", np.zeros((0, 3), np.uint8))
    np.save(d / "segment20.npy", np.zeros(0, np.int16))
    assert _train(d, tmp_path, network) == 1
    line = _error(capsys, "instgs-pc train")
    assert str(d) in line and "no points" in line


@pytest.mark.parametrize("command", ["eval", "predict"])
@pytest.mark.parametrize("case", ["scaffold", "other_network", "wrong_weights", "truncated",
                                  "not_a_dict"])
def test_foreign_or_broken_checkpoints(small_run, tmp_path, capsys, command, case):
    data, _, good = small_run
    ck = tmp_path / f"{case}.pt"
    if case == "scaffold":  # a checkpoint of the Gaussian pipeline (instgs train)
        save_checkpoint({"model": {"anchors": torch.zeros(3, 3)}, "step": 7}, ck,
                        kind="scaffold")
        needle = "'scaffold' checkpoint"
    elif case == "other_network":
        d = torch.load(good, weights_only=True)
        d["network"] = "ssen"
        save_checkpoint({k: v for k, v in d.items() if k != "instgs_format"}, ck,
                        kind="pointcloud")
        needle = "ssen"
    elif case == "wrong_weights":  # right tag and config, weights of another model
        d = torch.load(good, weights_only=True)
        d["model"] = {"backbone.input_conv.weight": torch.zeros(2, 2)}
        save_checkpoint({k: v for k, v in d.items() if k != "instgs_format"}, ck,
                        kind="pointcloud")
        needle = "do not fit"
    elif case == "truncated":
        ck.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        needle = "truncated or corrupt"
    else:
        torch.save([1, 2, 3], ck)
        needle = "not an instgs checkpoint"
    argv = [command, "--ckpt", str(ck), "--data", str(data), "--scenes", "scene_b"]
    if command == "predict":
        argv += ["--out", str(tmp_path / "preds")]
    assert main(argv) == 1
    line = _error(capsys, f"instgs-pc {command}")
    assert str(ck) in line and needle in line and "Fix:" in line


def test_bad_net_config_in_checkpoint_names_the_file(small_run, tmp_path, capsys):
    data, _, good = small_run
    d = torch.load(good, weights_only=True)
    d["net_config"]["not_a_field"] = 1
    ck = tmp_path / "badcfg.pt"
    save_checkpoint({k: v for k, v in d.items() if k != "instgs_format"}, ck, kind="pointcloud")
    assert main(["eval", "--ckpt", str(ck), "--data", str(data)]) == 1
    line = _error(capsys, "instgs-pc eval")
    assert str(ck) in line and "not_a_field" in line


def test_resume_with_other_settings_is_a_clear_error(small_run, tmp_path, capsys):
    data, out, _ = small_run
    run = tmp_path / "run"
    (run / "ckpt").mkdir(parents=True)
    (run / "ckpt" / "last.pt").write_bytes((out / "ckpt" / "last.pt").read_bytes())
    assert main(["train", "--data", str(data), "--scenes", "scene_a", "--out", str(run),
                 "--train.steps", "3", "--resume", *HAIS_SMALL, "--hais.width", "4"]) == 1
    line = _error(capsys, "instgs-pc train")
    assert str(run / "ckpt" / "last.pt") in line and "does not fit" in line


@pytest.mark.parametrize("command", ["eval", "predict"])
@pytest.mark.parametrize("asked", ["ssen", "queryis", "mpnet"])
def test_model_flag_refuses_a_checkpoint_of_another_network(small_run, tmp_path, capsys,
                                                            command, asked):
    """``--model NAME`` with a HAIS checkpoint names the network the file holds."""
    data, _, good = small_run
    argv = [command, "--ckpt", str(good), "--data", str(data), "--scenes", "scene_b",
            "--model", asked]
    if command == "predict":
        argv += ["--out", str(tmp_path / "preds")]
    assert main(argv) == 1
    line = _error(capsys, f"instgs-pc {command}")
    assert str(good) in line and f"--model {asked}" in line and "hais network" in line
    assert "pass --model hais" in line
