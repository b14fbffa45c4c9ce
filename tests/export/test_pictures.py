"""``instgs render``: instance pictures against the GT masks, modes, PLY input, video."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from instgs.cli import main
from instgs.core.checks import InputError
from instgs.export import PicturesConfig, render_pictures


@pytest.mark.slow
def test_instances_mode_gives_each_gt_object_one_colour(demo_run, tmp_path):
    """``instgs render runs/demo --mode instances``: every GT object in one colour."""
    scene, run_dir = demo_run
    assert main(["render", str(run_dir), "--out", str(tmp_path), "--mode", "instances"]) == 0
    files = sorted((tmp_path / "instances").glob("*.png"))
    assert files and all(f.parent.name == "instances" for f in files)
    for f in files:
        img = np.asarray(Image.open(f)).reshape(-1, 3)
        gt = np.asarray(Image.open(scene / "gt" / "instance" / f"{f.stem}.png")).reshape(-1)
        dominant = {}
        for g in np.unique(gt[gt > 0]):
            px = img[gt == g]
            if len(px) < 30:  # objects barely in view
                continue
            colours, counts = np.unique(px, axis=0, return_counts=True)
            share = counts.max() / len(px)
            assert share >= 0.85, (f.name, int(g), share)
            dominant[int(g)] = tuple(colours[counts.argmax()])
        assert len(dominant) >= 5
        assert len(set(dominant.values())) == len(dominant), (f.name, dominant)


def test_rgb_depth_relevancy_and_ply_input(small_run, tmp_path, capsys):
    scene, run_dir = small_run
    rgb = render_pictures(run_dir, tmp_path, PicturesConfig(mode="rgb"))
    depth = render_pictures(run_dir, tmp_path, PicturesConfig(mode="depth"))
    assert [p.name for p in rgb] == [p.name for p in depth]
    assert np.asarray(Image.open(rgb[0])).shape == (48, 64, 3)
    rel = render_pictures(run_dir, tmp_path, PicturesConfig(
        mode="relevancy", query=("table",), views="test"))
    img = np.asarray(Image.open(rel[0])).astype(float)
    gt = np.asarray(Image.open(scene / "gt" / "instance" / f"{rel[0].stem}.png"))
    red = img[..., 0] - img[..., 2]  # turbo: high scores are red, low blue
    assert red[gt == 2].mean() > red[(gt > 0) & (gt != 2)].mean() + 50  # 2 = the table
    from instgs import export

    (ply,) = export.run(run_dir)
    assert main(["render", str(ply), "--out", str(tmp_path / "p"), "--mode", "instances"]) == 0
    assert len(list((tmp_path / "p" / "instances").glob("*.png"))) == len(scene and rgb)
    with pytest.raises(InputError, match="--query"):
        render_pictures(run_dir, tmp_path, PicturesConfig(mode="relevancy"))


def test_ply_without_cameras_or_properties(tmp_path, capsys):
    from plyfile import PlyData, PlyElement

    arr = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(tmp_path / "pts.ply"))
    assert main(["render", str(tmp_path / "pts.ply"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "pts.ply" in err and "missing properties" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_video_along_the_training_trajectory(small_run, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as imageio

    _, run_dir = small_run
    files = render_pictures(run_dir, tmp_path, PicturesConfig(video=True, video_frames=12,
                                                               views="test"))
    mp4 = files[-1]
    assert mp4.name == "rgb.mp4"
    reader = imageio.get_reader(str(mp4), format="FFMPEG")
    assert reader.count_frames() == 12
    assert reader.get_data(0).shape[:2] == (48, 64)
    reader.close()
    assert not list(tmp_path.glob(".*partial*"))


def test_trajectory_passes_through_the_cameras(small_run):
    import torch

    from instgs.export.pictures import trajectory
    from instgs.run import load_run

    scene = load_run(small_run[1]).scene
    ids = list(scene.train_ids)[:3]
    path = trajectory(scene.cameras, ids, 5)  # frames at t = 0, 0.5, 1, 1.5, 2
    for f, i in ((0, ids[0]), (2, ids[1]), (4, ids[2])):
        assert torch.allclose(path.c2w[f], scene.cameras.c2w[i], atol=1e-4)
