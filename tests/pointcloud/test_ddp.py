"""Multi-process training with torch.distributed (gloo on CPU): two processes with batch 1
follow the loss curve of one process with batch 2 on the same two scenes; a killed DDP run
resumes from its last checkpoint and repeats the steps it had done after it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from instgs.pointcloud.train import SampleStream

from ._helpers import SMALL_FLAGS, write_pointcept

#: SSEN: both of its UNets run on every step, so BatchNorm can use the global batch.
FLAGS = ["--model", "ssen", "--preset", "ssen-tiny", *SMALL_FLAGS["ssen"],
         "--train.log-every", "1", "--train.lr", "0.01", "--train.cosine-after", "1.0"]


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "scans"
    write_pointcept(data, "scene_a", 0, n_box=150, n_floor=200)
    write_pointcept(data, "scene_b", 1, n_box=150, n_floor=200)
    return data


def _torchrun(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
           "--nproc_per_node", "2", "-m", "instgs.pointcloud.cli", "-q", "train", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kw)


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL torchrun and its workers. torchrun starts each worker in a session of its
    own, so killing torchrun's process group leaves them running (and holding the pipe)."""
    import psutil

    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for p in [*family, proc]:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _log(out: Path) -> list[dict]:
    p = out / "log.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def test_sample_stream_same_global_batch_for_any_world_size():
    """8 scenes, global batch 4: one process with batch 4 and two with batch 2 draw the same
    scenes with the same augmentation keys at every step."""
    one = SampleStream(8, 4, rank=0, world=1, seed=3)
    two = [SampleStream(8, 2, rank=r, world=2, seed=3) for r in range(2)]
    seen = set()
    for step in range(6):
        single = sorted(one.batch(step), key=lambda s: s[1])
        merged = sorted(two[0].batch(step) + two[1].batch(step), key=lambda s: s[1])
        assert single == merged
        seen |= {i for i, _ in single}
    assert seen == set(range(8))
    assert one.batch(2) == SampleStream(8, 4, seed=3).batch(2)  # resumable: a function of step


@pytest.mark.slow
def test_two_gloo_processes_follow_the_single_process_loss_curve(tmp_path):
    from instgs.pointcloud.cli import main

    data = _data(tmp_path)
    base = ["--data", str(data), "--scenes", "scene_a", "scene_b", "--train.steps", "6", *FLAGS]
    torch.set_num_threads(1)
    assert main(["-q", "train", "--out", str(tmp_path / "one"), "--train.batch-size", "2",
                 *base]) == 0
    proc = _torchrun(["--out", str(tmp_path / "two"), "--train.batch-size", "1",
                      "--train.sync-bn", *base])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    one, two = _log(tmp_path / "one"), _log(tmp_path / "two")
    assert [r["step"] for r in two] == [r["step"] for r in one] == list(range(1, 7))
    np.testing.assert_allclose([r["loss"] for r in two], [r["loss"] for r in one], rtol=2e-3)
    assert one[-1]["loss"] < one[0]["loss"]
    done = json.loads((tmp_path / "two" / "train_done.json").read_text())
    assert done["world_size"] == 2
    ck = torch.load(tmp_path / "two" / "ckpt" / "step_000006.pt", weights_only=True)
    assert ck["world_size"] == 2 and ck["network"] == "ssen"


@pytest.mark.slow
def test_killed_ddp_run_resumes_from_its_last_checkpoint(tmp_path):
    """The first run is sized never to finish (constant lr, 100k steps): it is killed once
    it has logged 8 steps and resumed with a budget of a few steps more."""
    from instgs.pointcloud.train import load_checkpoint

    data = _data(tmp_path)
    out = tmp_path / "run"
    args = ["--data", str(data), "--scenes", "scene_a", "scene_b", "--out", str(out),
            "--train.ckpt-every", "3", *FLAGS]
    proc = _torchrun([*args, "--train.steps", "100000"])
    try:
        deadline = time.monotonic() + 600
        while len(_log(out)) < 8 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        _kill_tree(proc)
    text, _ = proc.communicate()
    before = _log(out)
    assert len(before) >= 8, text
    ckpt_step = load_checkpoint(out / "ckpt" / "last.pt")["step"]
    assert ckpt_step % 3 == 0 and 3 <= ckpt_step <= before[-1]["step"]
    end = before[-1]["step"] + 3
    resumed = _torchrun([*args, "--train.steps", str(end), "--resume"])
    text, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, text
    after = _log(out)[len(before):]
    assert [r["step"] for r in after] == list(range(ckpt_step + 1, end + 1))
    # the steps done twice (after the checkpoint, before the kill) give the same losses
    redo = {r["step"]: r["loss"] for r in before if r["step"] > ckpt_step}
    assert redo
    for r in after:
        if r["step"] in redo:
            assert r["loss"] == pytest.approx(redo[r["step"]], rel=1e-5)
    assert (out / "ckpt" / f"step_{end:06d}.pt").is_file()
