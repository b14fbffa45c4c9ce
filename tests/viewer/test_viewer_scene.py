"""The viewer without a browser: scene data, picking and its twin, queries, bad input."""

from __future__ import annotations

import shutil
import socket

import numpy as np
import pytest
import torch

from instgs.cli import main
from instgs.core.checks import InputError


def test_pick_matches_the_marching_twin():
    from instgs.viewer.picking import pick, pick_ref, precision_matrices

    rng = np.random.default_rng(0)
    n = 60
    means = rng.uniform(-1, 1, (n, 3)) + np.array([0, 0, 4.0])
    quats = rng.normal(size=(n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    scales = rng.uniform(0.02, 0.2, (n, 3))
    prec = precision_matrices(quats, scales)
    opac = rng.uniform(0, 1, n)
    hits = 0
    for _ in range(40):
        d = np.array([*rng.uniform(-0.25, 0.25, 2), 1.0])
        got = pick(np.zeros(3), d, means, prec, opac)
        assert got == pick_ref(np.zeros(3), d, means, prec, opac)
        hits += got >= 0
    assert hits > 5
    # straight through one Gaussian's centre: that one, unless it is too faint
    one = pick(np.zeros(3), means[7], means, prec, np.where(np.arange(n) == 7, 1.0, 0.0))
    assert one == 7
    assert pick(np.zeros(3), means[7], means, prec, np.zeros(n)) == -1


def test_scene_of_a_run(small_run):
    from instgs.viewer import ViewerScene

    scene, run_dir = small_run
    vs = ViewerScene.load(run_dir, min_opacity=0.02)
    assert len(vs.means) == len(vs.rgbs) == len(vs.instance_ids) > 0
    assert vs.covs.shape == (len(vs.means), 3, 3)
    assert np.allclose(vs.covs, np.transpose(vs.covs, (0, 2, 1)), atol=1e-7)
    assert sum(len(i.rows) for i in vs.instances.values()) == len(vs.means)
    labels = {info.label for info in vs.instances.values()}
    assert "table" in labels and vs.language_ok and "table" in vs.text_table
    hits = vs.query(["table"])
    tid = next(i for i, info in vs.instances.items() if info.label == "table")
    assert hits[0][0] == tid and hits[0][2] == "table"
    # a ray from a camera through the table's centroid picks the table
    c2w, _, _ = vs.camera_pose(vs.train_ids[0])
    origin = c2w[:3, 3]
    assert vs.pick(origin, vs.instances[tid].centroid - origin) == tid
    assert vs.pick(origin, -(vs.instances[tid].centroid - origin)) == -2
    up = vs.up_direction()
    assert abs(np.linalg.norm(up) - 1) < 1e-6 and up[2] > 0.5  # the synthetic scene is z-up
    img = vs.render_camera(np.array([1.0, 0, 0, 0]), c2w[:3, 3], 0.8, 4 / 3, width=32)
    assert img.shape == (24, 32, 3) and img.dtype == np.uint8
    lod = ViewerScene.load(run_dir, max_splats=500)
    assert len(lod.means) == 500 and any("level of detail" in n for n in lod.notes)


def test_unsegmented_run_opens_with_rgb_and_says_why(small_run, tmp_path):
    from instgs.viewer import ViewerScene

    _, run_dir = small_run
    bare = tmp_path / "bare"
    shutil.copytree(run_dir, bare, ignore=shutil.ignore_patterns(
        "instances.npz", "language.npz", "exports"))
    vs = ViewerScene.load(bare)
    assert list(vs.instances) == [-1] and not vs.language_ok
    assert any("instgs segment" in n for n in vs.notes)
    with pytest.raises(InputError, match="instgs language"):
        vs.query(["table"])


def test_bad_input_from_the_command_line(small_run, tmp_path, capsys):
    _, run_dir = small_run
    assert main(["view", str(tmp_path / "none")]) == 1
    assert "run folder not found" in capsys.readouterr().err
    empty = tmp_path / "nockpt"
    shutil.copytree(run_dir, empty, ignore=shutil.ignore_patterns("ckpt", "exports"))
    assert main(["view", str(empty)]) == 1
    err = capsys.readouterr().err
    assert "checkpoint not found" in err and "instgs train" in err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["view", str(run_dir), "--port", str(port)]) == 1
        err = capsys.readouterr().err
        assert f"port {port}" in err and "in use" in err and len(err.splitlines()) == 1


def test_app_actions_without_a_browser(small_run, tmp_path):
    """The app's actions drive the splat handles (the browser test checks the pixels)."""
    from instgs.viewer import view

    _, run_dir = small_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = view(run_dir, port=port)
    try:
        torch.set_num_threads(1)
        tid = next(i for i, info in app.scene.instances.items() if info.label == "table")
        hits = app.query("table, floor")
        assert {h[0] for h in hits[:2]} >= {tid} and tid in app.matches
        dim = [i for i in app.handles if i not in app.matches][0]
        # viser stores opacities as uint8
        assert app.handles[dim].opacities.max() / 255 < app.scene.opacities.max() * 0.1
        app.select({tid})
        app.isolate()
        assert app.handles[tid].visible and not any(
            h.visible for i, h in app.handles.items() if i != tid)
        app.invert()
        assert app.selected == set()  # nothing else is visible
        app.show_all()
        assert all(h.visible for h in app.handles.values())
        app.select({tid})
        path = app.export_selection()
        assert path.is_file() and path.parent.name == "exports"
        app.set_mode("relevancy")
        app.set_mode("rgb")
    finally:
        app.stop()
