"""`instgs masks` (Felzenszwalb source): format, resume, kill/resume, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tyro

from instgs.core.checks import InputError
from instgs.masks.cli import MasksCommand
from instgs.masks.io import list_feature_stems, read_language_features, read_level

from ._helpers import make_scene

REPO = Path(__file__).resolve().parents[2]


def _run(args):
    return tyro.cli(MasksCommand, args=[*args, "--no-progress"]).run()


def _check_file_format(out: Path, stem: str, h: int, w: int):
    s = np.load(out / f"{stem}_s.npy")
    f = np.load(out / f"{stem}_f.npy")
    assert s.shape == (4, h, w) and s.dtype == np.int16
    assert f.shape == (0, 512) and f.dtype == np.float32        # felzenszwalb: no CLIP
    offset = 0
    for j in range(4):
        ids = np.unique(s[j])
        assert ids.min() >= offset - 1 if ids.size else True
        valid = ids[ids >= 0]
        # ids of level j are exactly offset .. offset+K-1 (cumulative, all visible)
        np.testing.assert_array_equal(valid, np.arange(offset, offset + len(valid)))
        offset += len(valid)
    # Felzenszwalb partitions the image; default repeats medium with its own ids
    assert (s >= 0).all()
    seg, _ = read_language_features(out, stem)
    d, _ = read_level(out, stem, "default")
    m, _ = read_level(out, stem, "medium")
    np.testing.assert_array_equal(d, m)


def test_felzenszwalb_cli_writes_langsplat_layout(tmp_path):
    scene = make_scene(tmp_path / "scene", 3, folder="color", ext=".jpg")
    out = _run(["--data", str(scene), "--mask-source", "felzenszwalb"])
    assert out == scene / "language_features"
    assert list_feature_stems(out) == ["frame_000", "frame_001", "frame_002"]
    for stem in list_feature_stems(out):
        _check_file_format(out, stem, 48, 64)
    assert (out / "instgs_masks.json").is_file()


def test_resolution_rule_and_python_m(tmp_path):
    scene = make_scene(tmp_path / "scene", 1, h=60, w=80, folder="images_2")
    r = subprocess.run([sys.executable, "-m", "instgs.masks", "--data", str(scene),
                        "--mask-source", "felzenszwalb", "--resolution", "40", "--no-progress"],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    s, _ = read_language_features(scene / "language_features", "frame_000")
    assert s.shape == (4, 30, 40)


def test_rerun_skips_finished_and_overwrite_redoes(tmp_path):
    scene = make_scene(tmp_path / "scene", 2)
    out = _run(["--data", str(scene), "--mask-source", "felzenszwalb"])
    f0 = out / "frame_000_s.npy"
    os.utime(f0, ns=(1_000_000_000, 1_000_000_000))
    (out / "frame_001_s.npy").unlink()                       # unfinished image
    _run(["--data", str(scene), "--mask-source", "felzenszwalb"])
    assert f0.stat().st_mtime_ns == 1_000_000_000           # not redone
    assert (out / "frame_001_s.npy").is_file()
    _run(["--data", str(scene), "--mask-source", "felzenszwalb", "--overwrite"])
    assert f0.stat().st_mtime_ns != 1_000_000_000
    with pytest.raises(InputError, match="instgs_masks.json: the existing masks were made "
                                         "with other settings"):
        _run(["--data", str(scene), "--mask-source", "felzenszwalb",
              "--felzenszwalb-scales", "50", "100", "200"])


def test_unreadable_image_names_the_file(tmp_path):
    scene = make_scene(tmp_path / "scene", 2)
    bad = scene / "images" / "frame_001.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"frame_001.png: cannot read the image"):
        _run(["--data", str(scene), "--mask-source", "felzenszwalb"])
    # the image before it was finished and stays valid
    assert list_feature_stems(scene / "language_features") == ["frame_000"]


def test_existing_mask_of_other_size_names_the_file(tmp_path):
    scene = make_scene(tmp_path / "scene", 1)
    out = _run(["--data", str(scene), "--mask-source", "felzenszwalb"])
    np.save(out / "frame_000_s.npy", np.zeros((4, 48, 50), np.int16))
    with pytest.raises(InputError, match=r"frame_000_s.npy: mask size 48x50 \(HxW\) "
                                         r"disagrees with image .*frame_000.png of size 48x64"):
        _run(["--data", str(scene), "--mask-source", "felzenszwalb"])


def test_missing_scene_and_images(tmp_path):
    with pytest.raises(InputError, match="scene folder not found"):
        _run(["--data", str(tmp_path / "nope"), "--mask-source", "felzenszwalb"])
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(InputError, match="images: no images found"):
        _run(["--data", str(tmp_path / "empty"), "--mask-source", "felzenszwalb"])
    (tmp_path / "noimg").mkdir()
    with pytest.raises(InputError, match=r"no image folder"):
        _run(["--data", str(tmp_path / "noimg"), "--mask-source", "felzenszwalb"])


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(tmp_path):
    """SIGKILL the CLI after a few images, rerun: the rest is done, nothing is redone, every
    file loads."""
    n = 10
    scene = make_scene(tmp_path / "scene", n, h=360, w=480)
    out = scene / "language_features"
    cmd = [sys.executable, "-m", "instgs.masks", "--data", str(scene), "--mask-source",
           "felzenszwalb", "--felzenszwalb-working-side", "480", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and len(list(out.glob("*_s.npy"))) < 3:
            if proc.poll() is not None:
                pytest.fail(f"CLI ended early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished = list_feature_stems(out)
    assert 3 <= len(finished) < n, "the kill came too late to test resuming"
    mtimes = {s: (out / f"{s}_s.npy").stat().st_mtime_ns for s in finished}
    for s in finished:                       # every finished file is whole
        read_language_features(out, s)
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    stems = list_feature_stems(out)
    assert stems == [f"frame_{i:03d}" for i in range(n)]
    for s in stems:
        seg, feats = read_language_features(out, s)
        assert seg.shape == (4, 360, 480) and feats.shape == (0, 512)
    assert {s: (out / f"{s}_s.npy").stat().st_mtime_ns for s in finished} == mtimes
    assert not list(out.glob(".*.tmp"))      # temp files of the killed run are cleaned up
