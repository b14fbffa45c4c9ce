"""A hostile or careless user against the Gaussian pipeline's commands (issue #11 list).

Every case ends in exit code 1 with one ``error:`` line naming the file and the fix, and
nothing is executed or silently mixed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from test_run_layer import Planted, plant

from instgs.cli import main
from instgs.run import RunPaths, current_source, load_instances, save_instances

STEPS = ["--steps", "6", "--no-progress", "--backend", "cpu", "--save-every", "0",
         "--threads", "1"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from instgs.data.synthetic import make_synthetic_scene

    out = tmp_path_factory.mktemp("hostile") / "scene"
    make_synthetic_scene(out, num_views=6, num_test_views=1, width=48, height=36,
                         num_points=2000, num_objects=2, progress=False)
    return out


def _train(scene, run, *extra):
    return main(["train", "--preset", "scannet", "--data", str(scene), "--run-dir", str(run),
                 *STEPS, *extra])


@pytest.fixture
def run(scene, tmp_path):
    r = tmp_path / "run"
    assert _train(scene, r) == 0
    return r


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error message"
    return err[-1]


def test_planted_checkpoint_is_refused_by_every_stage(run, tmp_path, capsys):
    marker = tmp_path / "pwned"
    plant(RunPaths(run).checkpoint, marker)
    assert main(["segment", str(run)]) == 1
    assert "refused to load" in _err(capsys)
    assert _train(run.parent.parent / "unused", run, "--resume") == 1  # other --data: refused
    capsys.readouterr()
    assert main(["train", "--resume", "--run-dir", str(run), "--steps", "8",
                 "--no-progress"]) == 1
    err = _err(capsys)
    assert "refused to load" in err and "latest.pt" in err
    # instances recorded as made from the planted file get past the freshness check ...
    save_instances(run, [0] * 2000, meta={"source": current_source(run)})
    assert main(["language", str(run)]) == 1
    assert "refused to load" in _err(capsys)  # ... and the loader still refuses it
    assert not marker.exists()
    # the plant is live: the unsafe loader the old code used would have run it
    torch.load(RunPaths(run).checkpoint, weights_only=False)
    assert marker.exists()


def test_second_train_into_the_same_run_stops(scene, tmp_path):
    r = tmp_path / "run"
    cmd = [sys.executable, "-m", "instgs.cli", "train", "--preset", "scannet", "--data",
           str(scene), "--run-dir", str(r), "--backend", "cpu", "--save-every", "0",
           "--threads", "1", "--no-progress"]
    first = subprocess.Popen(cmd + ["--steps", "150"], stderr=subprocess.PIPE, text=True)
    for _ in range(600):  # until the first one holds the lock
        if (r / ".lock").exists() and (r / "config.json").exists():
            break
        first.poll()
        assert first.returncode is None, first.stderr.read()
        import time

        time.sleep(0.1)
    second = subprocess.run(cmd + ["--steps", "3", "--overwrite", "--seed", "7"],
                            capture_output=True, text=True)
    assert second.returncode == 1
    assert f"in use by instgs train (pid {first.pid}" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
    assert first.wait(timeout=600) == 0, first.stderr.read()
    cfg = json.loads((r / "config.json").read_text())
    assert cfg["steps"] == 150 and cfg["seed"] == 0  # the config is the first run's
    info = json.loads(RunPaths(r).checkpoint_info.read_text())
    assert info["step"] == 150


def test_fresh_train_over_a_run_needs_overwrite(run, scene, capsys):
    assert _train(scene, run) == 1
    err = _err(capsys)
    assert "already holds a trained run" in err and "--resume" in err and "--overwrite" in err


def test_resume_with_another_scene_or_settings_is_refused(run, scene, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(scene, other)
    assert _train(other, run, "--resume") == 1
    assert "--resume with other settings" in _err(capsys)
    assert _train(scene, run, "--resume", "--model.ins-feat-dim", "8") == 1
    assert "model.ins_feat_dim: 16 -> 8" in _err(capsys)
    # runtime settings may change: more steps
    assert main(["train", "--resume", "--run-dir", str(run), "--steps", "9", "--no-progress",
                 "--threads", "1"]) == 0
    assert json.loads(RunPaths(run).checkpoint_info.read_text())["step"] == 9


def test_retraining_makes_old_instances_stale(run, scene, capsys):
    assert main(["segment", str(run), "--num-seeds", "20"]) == 0
    old = load_instances(run)
    assert old.meta["source"]["checkpoint_step"] == 6
    assert _train(scene, run, "--overwrite", "--seed", "3") == 0
    capsys.readouterr()
    for argv in (["language", str(run)], ["eval", "scannet", str(run), "--gt", str(scene)]):
        assert main(argv) == 1
        err = _err(capsys)
        assert "instances.npz" in err and "made from another checkpoint" in err
        assert f"instgs segment {run}" in err
    assert main(["segment", str(run), "--num-seeds", "20"]) == 0
    assert main(["eval", "scannet", str(run), "--gt", str(scene)]) == 0


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_damaged_checkpoint_is_a_clear_error(run, capsys, damage):
    ck = RunPaths(run).checkpoint
    raw = ck.read_bytes()
    ck.write_bytes({"truncate": raw[: len(raw) // 3], "empty": b"",
                    "garbage": b"not a checkpoint" * 10}[damage])
    for argv in (["segment", str(run)],
                 ["train", "--resume", "--run-dir", str(run), "--no-progress"]):
        assert main(argv) == 1
        err = _err(capsys)
        assert "latest.pt" in err and "truncated or corrupt" in err


def test_bad_flags_and_paths_exit_1_with_one_line(tmp_path, capsys):
    for argv in (["segment", str(tmp_path), "--bogus"], ["segment", str(tmp_path), "--pe-dims",
                 "xz"], ["segment"], ["nosuchcommand"], ["segment", str(tmp_path / "none")],
                 ["train", "--config", str(tmp_path / "none.yaml")]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error:" in err and "Traceback" not in err, err
    assert Planted  # the planted-object class is shared with test_run_layer
