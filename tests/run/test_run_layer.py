"""instgs.run: paths, safe checkpoints, the folder lock, provenance, artifacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from instgs.core.checks import InputError
from instgs.core.lock import FolderLock, read_lock_owner
from instgs.run import (LanguageFeatures, RunPaths, check_plain, check_source, current_source,
                        load_checkpoint, load_instances, load_language, save_checkpoint,
                        save_instances, save_language)


class Planted:
    """Unpickling this creates ``path``: what a hostile checkpoint would do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def plant(path, marker):
    """A checkpoint file whose unpickling would create ``marker``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"instgs_format": "scaffold", "step": 1, "model": {}, "anchors": torch.zeros(2, 3),
                "n_offsets": 5, "x": Planted(marker)}, path)
    assert not marker.exists()


def test_paths_name_every_artifact(tmp_path):
    p = RunPaths(tmp_path)
    assert p.checkpoint == tmp_path / "ckpt" / "latest.pt"
    assert p.instances.name == "instances.npz" and p.language.name == "language.npz"
    assert p.query("red_chair").name == "query_red_chair.json"
    assert p.eval("scannet").name == "eval_scannet.json"


def test_checkpoint_round_trip_and_refusals(tmp_path):
    data = {"step": 3, "w": torch.arange(4.0), "nested": {"a": [1, 2.5, "x", None, True]},
            "t": (torch.zeros(1), 2)}
    sha = save_checkpoint(data, tmp_path / "c.pt", kind="scaffold")
    ck = load_checkpoint(tmp_path / "c.pt", kind="scaffold", fix="retrain")
    assert ck.step == 3 and ck.sha256 == sha and torch.equal(ck.data["w"], data["w"])
    assert ck.data["instgs_format"] == "scaffold"
    with pytest.raises(InputError, match="'scaffold' checkpoint, not a 'pointcloud'"):
        load_checkpoint(tmp_path / "c.pt", kind="pointcloud", fix="x")
    with pytest.raises(InputError, match=r"missing \['model'\]"):
        load_checkpoint(tmp_path / "c.pt", kind="scaffold", fix="x", required=("model",))
    # the writer refuses what the reader would refuse
    with pytest.raises(TypeError, match="nested.b"):
        check_plain({"nested": {"b": np.float64(1.0)}})
    with pytest.raises(TypeError, match="Planted"):
        save_checkpoint({"p": Planted(tmp_path / "m")}, tmp_path / "d.pt", kind="scaffold")
    assert not (tmp_path / "d.pt").exists()


def test_unsafe_checkpoint_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    plant(tmp_path / "evil.pt", marker)
    with pytest.raises(InputError, match="refused to load") as e:
        load_checkpoint(tmp_path / "evil.pt", kind="scaffold", fix="use your own run")
    assert "evil.pt" in str(e.value) and "Fix:" in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("cut", [0, 10, 0.5])
def test_truncated_checkpoint_is_a_clear_error(tmp_path, cut):
    save_checkpoint({"step": 1, "w": torch.randn(1000)}, tmp_path / "c.pt", kind="scaffold")
    raw = (tmp_path / "c.pt").read_bytes()
    n = int(len(raw) * cut) if isinstance(cut, float) else cut
    (tmp_path / "c.pt").write_bytes(raw[:n])
    with pytest.raises(InputError, match="truncated or corrupt") as e:
        load_checkpoint(tmp_path / "c.pt", kind="scaffold", fix="retrain")
    assert "c.pt" in str(e.value)


def test_npz_artifacts_never_unpickle(tmp_path):
    np.savez(tmp_path / "language.npz", instance_features=np.array([Planted(tmp_path / "m")],
                                                                   dtype=object))
    with pytest.raises(InputError, match="language.npz"):
        load_language(tmp_path, fresh=False)
    (tmp_path / "instances.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_instances(tmp_path, fresh=False)
    assert not (tmp_path / "m").exists()


def _holder(folder, seconds):
    code = ("import sys, time; from instgs.core.lock import FolderLock\n"
            f"with FolderLock({str(folder)!r}, 'instgs train'):\n"
            "    print('held', flush=True); time.sleep(float(sys.argv[1]))")
    p = subprocess.Popen([sys.executable, "-c", code, str(seconds)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_lock_refuses_a_second_writer_and_takes_over_a_dead_one(tmp_path, caplog):
    p = _holder(tmp_path, 30)
    try:
        with pytest.raises(InputError, match=rf"in use by instgs train \(pid {p.pid}"):
            with FolderLock(tmp_path, "instgs segment"):
                pass
    finally:
        p.kill()
        p.wait()
    # the killed holder left its lock file behind: it is stale and taken over
    assert read_lock_owner(tmp_path)["pid"] == p.pid
    with caplog.at_level("WARNING", logger="instgs"):
        with FolderLock(tmp_path, "instgs segment"):
            assert read_lock_owner(tmp_path)["pid"] == os.getpid()
            with FolderLock(tmp_path, "nested"):  # reentrant in one process
                pass
            assert (tmp_path / ".lock").exists()
    assert "took over a stale lock" in caplog.text and str(p.pid) in caplog.text
    assert not (tmp_path / ".lock").exists()


def test_provenance_refuses_artifacts_of_another_checkpoint(tmp_path):
    save_checkpoint({"step": 5, "w": torch.zeros(3)}, RunPaths(tmp_path).checkpoint,
                    kind="scaffold")
    src = current_source(tmp_path)
    assert len(src["checkpoint_sha256"]) == 64
    save_instances(tmp_path, np.array([0, 0, 1]), meta={"source": src, "n_offsets": 2})
    assert load_instances(tmp_path).n_offsets == 2
    lf = LanguageFeatures(np.eye(2, 4, dtype=np.float32), np.array([2, 2]),
                          np.ones(2, np.float32), np.arange(2),
                          meta={"source": src, "anchor_labels_sha1": None})
    save_language(tmp_path, lf)
    assert load_language(tmp_path).instance_features.shape == (2, 4)
    time.sleep(0.01)
    save_checkpoint({"step": 9, "w": torch.ones(3)}, RunPaths(tmp_path).checkpoint,
                    kind="scaffold")  # retrained
    with pytest.raises(InputError, match="made from another checkpoint") as e:
        load_instances(tmp_path)
    assert "instgs segment" in str(e.value)
    with pytest.raises(InputError, match="instgs language|instgs segment"):
        load_language(tmp_path)
    assert load_instances(tmp_path, fresh=False).num_instances == 2
    # an artifact of an older instgs (no record) is used with a warning
    check_source(None, current_source(tmp_path), tmp_path / "x", "fix")


def test_checkpoint_info_records_step(tmp_path):
    from instgs.run.provenance import write_checkpoint_info

    sha = save_checkpoint({"step": 7}, RunPaths(tmp_path).checkpoint, kind="scaffold")
    write_checkpoint_info(tmp_path, 7, sha, "cfg")
    src = current_source(tmp_path)
    assert src["checkpoint_step"] == 7 and src["config_sha256"] == "cfg"
    info = json.loads(RunPaths(tmp_path).checkpoint_info.read_text())
    assert info["sha256"] == sha
