"""``instgs run``: every stage in turn killed (SIGKILL) and resumed; many scenes on Ray."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from instgs.pipeline.run import stage_status

ARGS = ["--preset", "scannet", "--steps", "150", "--save-every", "50", "--threads", "1",
        "--no-progress", "--mask-source", "felzenszwalb"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from instgs.data.synthetic import make_synthetic_scene

    out = tmp_path_factory.mktemp("pipe") / "scene"
    make_synthetic_scene(out, num_views=8, num_test_views=1, width=48, height=36,
                         num_points=2500, num_objects=2, progress=False)
    shutil.rmtree(out / "language_features")  # the masks stage has work to do
    return out


def _start(scene, run_dir):
    return subprocess.Popen([sys.executable, "-m", "instgs.cli", "run", "--data", str(scene),
                             "--run-dir", str(run_dir), *ARGS], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _kill_during(proc, run_dir: Path, stage: str, timeout: float = 300) -> bool:
    """SIGKILL ``proc`` once ``stage`` is running (for train: after its first checkpoint);
    False when the process ended first."""
    from instgs.run import RunPaths

    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            return False
        st = stage_status(run_dir).get(stage, {}).get("status")
        ready = st == "running" and (stage != "train" or RunPaths(run_dir).checkpoint_info
                                     .is_file())
        if ready:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.kill()
    raise TimeoutError(stage)


@pytest.mark.slow
def test_killed_in_each_stage_resumes_there(scene, tmp_path):
    from instgs.export import read_ply
    from instgs.run import load_instances, load_language, load_run

    run_dir = tmp_path / "run"
    stages = ["masks", "train", "segment", "language", "export"]
    outputs = []
    for k, stage in enumerate(stages):
        proc = _start(scene, run_dir)
        assert _kill_during(proc, run_dir, stage), f"{stage} never ran"
        outputs.append(proc.stdout.read())
        status = stage_status(run_dir)
        assert status[stage]["status"] == "running"  # killed in it
        if k:  # this run resumed at the stage the previous one was killed in
            assert status[stages[k - 1]]["status"] == "done"
            assert all(status[s]["status"] == "skipped" for s in stages[:k - 1]), status
    # the rerun after the kill in `train` continued from the checkpoint, not from scratch
    assert re.search(r"resuming from step (50|100) of 150", outputs[2]), outputs[2]
    proc = _start(scene, run_dir)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    status = stage_status(run_dir)
    assert status["export"]["status"] == "done"
    assert all(status[s]["status"] == "skipped" for s in stages[:-1]), status
    # every artifact is complete and loadable, and made from the final checkpoint
    run = load_run(run_dir)
    assert json.loads((run_dir / "metrics.json").read_text())["step"] == 150
    inst = load_instances(run_dir)
    assert len(inst.anchor_labels) == run.model.num_anchors
    load_language(run_dir)
    assert len(read_ply(run_dir / "exports" / "scene.ply")) > 0
    # another call has nothing left to do
    proc = _start(scene, run_dir)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0 and out.count("complete, skipped") == 5, out


@pytest.mark.slow
def test_many_scenes_on_ray_one_broken(scene, tmp_path, capsys):
    pytest.importorskip("ray")
    from instgs.cli import main

    scenes = []
    for name in ("good_a", "good_b", "broken"):
        shutil.copytree(scene, tmp_path / name)
        scenes.append(tmp_path / name)
    (tmp_path / "broken" / "transforms_train.json").write_text("{ not json")
    listing = tmp_path / "scenes.txt"
    listing.write_text("good_a\n# a comment\ngood_b\nbroken\n")
    code = main(["run", "--scenes", str(listing), "--runs-root", str(tmp_path / "runs"),
                 "--num-cpus", "2", "--cpus-per-scene", "1", *ARGS])
    assert code == 1
    err = capsys.readouterr().err
    assert "1 of 3 scenes failed: " in err and "broken" in err
    summary = json.loads((tmp_path / "runs" / "ray_summary.json").read_text())["scenes"]
    by = {Path(s["scene"]).name: s for s in summary}
    assert by["good_a"]["ok"] and by["good_b"]["ok"] and not by["broken"]["ok"]
    assert "transforms_train.json" in by["broken"]["error"]
    for name in ("good_a", "good_b"):
        assert stage_status(tmp_path / "runs" / name)["export"]["status"] == "done"
