"""read_scene on tiny scenes written by tests/data/conftest.py in every layout."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from instgs.core.checks import InputError
from instgs.data import KNOWN_FORMATS, SceneData, read_scene


def _assert_matches_truth(scene: SceneData, truth, scale: float = 1.0, ids=None):
    ids = range(len(truth.names)) if ids is None else ids
    exp_vm = np.stack([np.linalg.inv(truth.c2w[i]) for i in ids])
    np.testing.assert_allclose(scene.cameras.viewmats.numpy(), exp_vm, atol=1e-5)
    K = truth.K.copy()
    K[:2] *= scale
    np.testing.assert_allclose(scene.cameras.Ks.numpy(), np.broadcast_to(K, (len(exp_vm), 3, 3)),
                               rtol=1e-6, atol=1e-5)
    assert scene.cameras.viewmats.dtype == torch.float32
    assert scene.cameras.Ks.dtype == torch.float32


# ----------------------------------------------------------------------------- formats
def test_colmap_reads_poses_points_colours(tmp_path, build, truth):
    build.colmap(tmp_path, truth)
    s = read_scene(tmp_path)
    assert s.format == "colmap" and len(s) == 10
    _assert_matches_truth(s, truth)
    assert (s.width, s.height) == truth.size
    assert s.points.shape == (200, 3) and s.points.dtype == torch.float32
    # pycolmap keeps points in a map; compare as sets of rows
    got = {tuple(np.round(p, 5)) for p in s.points.numpy()}
    assert got == {tuple(np.round(p, 5)) for p in truth.points.astype(np.float32)}
    assert float(s.points_rgb.min()) >= 0 and float(s.points_rgb.max()) <= 1
    assert s.fixed_anchors is False
    assert s.test_ids == [0, 8] and len(s.train_ids) == 8


def test_colmap_images_d_folder_used_for_downscale(tmp_path, build, truth):
    build.colmap(tmp_path, truth)
    build.write_images(tmp_path / "images_2", truth, size=(20, 15))
    s = read_scene(tmp_path, downscale=2)
    assert (s.width, s.height) == (20, 15)
    assert s.image_paths[0].parent.name == "images_2"
    _assert_matches_truth(s, truth, scale=0.5)
    assert s.load_image(0).shape == (15, 20, 3)


def test_downscale_resizes_full_images_with_area_filter(tmp_path, build, truth):
    build.colmap(tmp_path, truth)
    s = read_scene(tmp_path, downscale=2)
    img = s.load_image(3)
    assert img.shape == (15, 20, 3)
    full = torch.from_numpy(np.asarray(truth.image(3), dtype=np.float32) / 255)
    expected = full.reshape(15, 2, 20, 2, 3).mean((1, 3))  # 2x2 area mean
    assert torch.allclose(img, expected, atol=1.5 / 255)


def test_colmap_distortion_is_undistorted_or_refused(tmp_path, build, truth):
    K = truth.K
    build.colmap(tmp_path, truth, model="OPENCV",
                 params=[K[0, 0], K[1, 1], K[0, 2], K[1, 2], 0.01, 0.0, 0.0, 0.0])
    s = read_scene(tmp_path)
    assert s.distortion is not None
    np.testing.assert_allclose(s.distortion[0].numpy(), [0.01, 0, 0, 0, 0], atol=1e-7)
    assert s.load_image(0).shape == (30, 40, 3)
    shutil.rmtree(tmp_path / "sparse")
    build.colmap(tmp_path, truth, model="OPENCV",
                 params=[K[0, 0], K[1, 1], K[0, 2], K[1, 2], 0.6, 0.0, 0.0, 0.0])
    with pytest.raises(InputError, match="image_undistorter"):
        read_scene(tmp_path)


def test_colmap_unsupported_model_names_undistorter(tmp_path, build, truth):
    build.colmap(tmp_path, truth, model="OPENCV_FISHEYE",
                 params=[40.0, 40.0, 20.0, 15.0, 0.1, 0.0, 0.0, 0.0])
    with pytest.raises(InputError, match="image_undistorter"):
        read_scene(tmp_path)


@pytest.mark.parametrize("split", [False, True])
def test_nerf_opengl_json_becomes_opencv(tmp_path, build, truth, split):
    build.nerf(tmp_path, truth, opengl=True, split=split)
    s = read_scene(tmp_path)
    assert s.format == "nerf" and s.alpha == "white"
    names = [p.name for p in s.image_paths]
    assert names == sorted(names)
    _assert_matches_truth(s, truth)
    if split:
        assert [s.image_paths[i].name for i in s.test_ids] == [truth.names[i] for i in (0, 3, 6, 9)]
    else:
        assert s.test_ids == [0, 8]
    assert s.points is None


def test_nerf_convention_switch_and_declared_convention(tmp_path, build, truth):
    build.nerf(tmp_path, truth, opengl=False)
    _assert_matches_truth(read_scene(tmp_path, nerf_convention="opencv"), truth)
    wrong = read_scene(tmp_path, nerf_convention="opengl")
    assert not torch.allclose(wrong.cameras.viewmats, read_scene(
        tmp_path, nerf_convention="opencv").cameras.viewmats)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    meta["camera_convention"] = "OpenCV camera axes (x right, y down, z forward)"
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    _assert_matches_truth(read_scene(tmp_path), truth)  # auto honours the declaration


def test_nerf_blender_style_camera_angle_no_ext_rgba_on_white(tmp_path, build, truth):
    w, h = truth.size
    frames = []
    (tmp_path / "train").mkdir()
    flip = np.diag([1.0, -1, -1, 1])
    for i in range(3):
        rgba = np.zeros((h, w, 4), np.uint8)
        rgba[..., 0] = 255
        rgba[: h // 2, :, 3] = 255  # top half opaque red, bottom half transparent
        Image.fromarray(rgba, "RGBA").save(tmp_path / "train" / f"r_{i}.png")
        frames.append({"file_path": f"./train/r_{i}",
                       "transform_matrix": (truth.c2w[i] @ flip).tolist()})
    fx = truth.K[0, 0]
    angle = 2 * np.arctan(0.5 * w / fx)
    (tmp_path / "transforms_train.json").write_text(json.dumps(
        {"camera_angle_x": angle, "frames": frames}))
    s = read_scene(tmp_path, test_every=0)
    assert s.test_ids == [] and s.train_ids == [0, 1, 2]
    np.testing.assert_allclose(s.cameras.Ks[0].numpy(), truth.K, rtol=1e-5)
    img = s.load_image(0)
    assert torch.allclose(img[0, 0], torch.tensor([1.0, 0, 0]))
    assert torch.allclose(img[-1, 0], torch.ones(3))  # transparent -> white


def test_nerf_points_from_ply_next_to_json(tmp_path, build, truth):
    build.nerf(tmp_path, truth, ply_file_path="sparse_pc.ply")
    build.ply(tmp_path / "sparse_pc.ply", truth.points, truth.colors)
    s = read_scene(tmp_path)
    np.testing.assert_allclose(s.points.numpy(), truth.points.astype(np.float32))
    np.testing.assert_allclose(s.points_rgb.numpy(), truth.colors / 255.0, atol=1e-6)


def test_llff_poses_axes_and_points(tmp_path, build, truth):
    build.llff(tmp_path, truth, factor=2)
    build.points3d_bin(tmp_path / "sparse" / "0" / "points3D.bin", truth.points, truth.colors)
    s = read_scene(tmp_path, downscale=2)
    assert s.format == "llff" and (s.width, s.height) == truth.size
    _assert_matches_truth(s, truth)
    np.testing.assert_allclose(s.points.numpy(), truth.points.astype(np.float32))
    np.testing.assert_allclose(s.points_rgb.numpy(), truth.colors / 255.0, atol=1e-6)
    with pytest.raises(InputError, match="available downscales: \\[2\\]"):
        read_scene(tmp_path, downscale=1)


def test_scannet_layout_fixed_anchors_split_and_order(tmp_path, build, truth):
    build.scannet(tmp_path, truth, opengl=True)
    s = read_scene(tmp_path)
    assert s.format == "scannet" and s.fixed_anchors
    _assert_matches_truth(s, truth)
    np.testing.assert_array_equal(s.points.numpy(), truth.points.astype(np.float32))  # order
    assert [s.image_paths[i].stem for i in s.test_ids] == ["00003", "00007"]


def test_scannet_convention_flag_and_check(tmp_path, build, truth):
    build.scannet(tmp_path, truth, opengl=False)
    _assert_matches_truth(read_scene(tmp_path, scannet_convention="opencv"), truth)
    with pytest.raises(InputError, match="scannet_convention='opencv'"):
        read_scene(tmp_path, scannet_convention="opengl")


def test_scannet_without_test_json_uses_every_nth(tmp_path, build, truth):
    build.scannet(tmp_path, truth, with_test=False)
    s = read_scene(tmp_path, test_every=4)
    assert s.test_ids == [0, 4, 8]


# ----------------------------------------------------------------------------- API details
def test_split_to_json_scene_scale_max_images(tmp_path, build, truth):
    build.colmap(tmp_path, truth)
    s = read_scene(tmp_path, test_every=3)
    assert s.split("train") == s.train_ids and s.split("test") == [0, 3, 6, 9]
    assert sorted(s.train_ids + s.test_ids) == list(range(10))
    with pytest.raises(ValueError):
        s.split("val")
    centers = truth.c2w[:, :3, 3]
    expect = 1.1 * np.linalg.norm(centers - centers.mean(0), axis=1).max()
    assert s.scene_scale == pytest.approx(expect, rel=1e-6)
    d = json.loads(json.dumps(s.to_json()))
    assert d["width"] == 40 and len(d["viewmats"]) == 10 and d["test_ids"] == [0, 3, 6, 9]
    assert d["image_names"][0] == "images/frame_000.png"
    np.testing.assert_allclose(np.array(d["Ks"]), s.cameras.Ks.numpy(), rtol=1e-6)
    sub = read_scene(tmp_path, max_images=4)
    assert [p.name for p in sub.image_paths] == [truth.names[i] for i in (0, 3, 6, 9)]


def test_load_image_range_dtype(tmp_path, build, truth):
    build.colmap(tmp_path, truth)
    s = read_scene(tmp_path)
    img = s.load_image(2)
    assert img.shape == (30, 40, 3) and img.dtype == torch.float32
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0
    expected = np.asarray(truth.image(2), dtype=np.float32) / 255
    np.testing.assert_allclose(img.numpy(), expected, atol=1e-6)
    with pytest.raises(IndexError):
        s.load_image(10)


def test_known_formats():
    assert set(KNOWN_FORMATS) == {"colmap", "nerf", "llff", "scannet"}


# ----------------------------------------------------------------------------- bad input
def test_unknown_layout_lists_every_layout(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(InputError) as e:
        read_scene(tmp_path)
    msg = str(e.value)
    for fmt in KNOWN_FORMATS:
        assert fmt in msg
    assert "poses_bounds.npy" in msg and "transforms.json" in msg and "readme.txt" in msg
    with pytest.raises(InputError, match="unknown format"):
        read_scene(tmp_path, format="blender")


def test_missing_image_is_named(tmp_path, build, truth):
    build.nerf(tmp_path, truth)
    (tmp_path / "images" / truth.names[4]).unlink()
    with pytest.raises(InputError, match=truth.names[4]):
        read_scene(tmp_path)


def test_missing_image_after_read_is_named_by_load_image(tmp_path, build, truth):
    build.colmap(tmp_path, truth)
    s = read_scene(tmp_path)
    (tmp_path / "images" / truth.names[1]).unlink()
    with pytest.raises(InputError, match=truth.names[1]):
        s.load_image(1)


def test_wrong_size_image_names_file_and_sizes(tmp_path, build, truth):
    build.colmap(tmp_path, truth)
    truth.image(5, size=(41, 30)).save(tmp_path / "images" / truth.names[5])
    with pytest.raises(InputError, match=rf"{truth.names[5]}.*41x30.*40x30"):
        read_scene(tmp_path)
    s = read_scene(tmp_path, max_images=2)  # 0 and 9: fine
    truth.image(0, size=(10, 10)).save(s.image_paths[0])
    with pytest.raises(InputError, match="10x10 but its camera expects 40x30"):
        s.load_image(0)


def test_corrupt_image_is_named(tmp_path, build, truth):
    build.colmap(tmp_path, truth)
    s = read_scene(tmp_path)
    (tmp_path / "images" / truth.names[2]).write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError, match=truth.names[2]):
        s.load_image(2)
    with pytest.raises(InputError, match=truth.names[2]):
        read_scene(tmp_path)


def test_mixed_image_sizes_rejected(tmp_path, build, truth):
    build.nerf(tmp_path, truth)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    meta["frames"][3]["w"] = 80
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="different image sizes"):
        read_scene(tmp_path)


def test_nan_pose_nerf_names_json_and_frame(tmp_path, build, truth):
    build.nerf(tmp_path, truth)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    meta["frames"][6]["transform_matrix"][0][3] = float("nan")
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=rf"transforms.json.*#6.*{truth.names[6]}.*NaN"):
        read_scene(tmp_path)


def test_nan_pose_llff_names_npy_and_row(tmp_path, build, truth):
    build.llff(tmp_path, truth)
    pb = np.load(tmp_path / "poses_bounds.npy")
    pb[7, 3] = np.nan
    np.save(tmp_path / "poses_bounds.npy", pb)
    with pytest.raises(InputError, match=r"poses_bounds.npy.*row 7 \(image IMG_0007.png\)"):
        read_scene(tmp_path, downscale=2)


def test_nan_pose_colmap_names_images_file_and_image(tmp_path, build, truth):
    build.colmap(tmp_path, truth, nan_image=2)
    with pytest.raises(InputError, match=rf"images.bin.*{truth.names[2]}.*NaN"):
        read_scene(tmp_path)


def test_corrupt_colmap_model(tmp_path, build, truth):
    build.colmap(tmp_path, truth)
    (tmp_path / "sparse" / "0" / "cameras.txt").write_text("1 PINHOLE forty\n")
    with pytest.raises(InputError, match="cannot read the COLMAP model"):
        read_scene(tmp_path, format="colmap")


def test_llff_image_count_mismatch(tmp_path, build, truth):
    build.llff(tmp_path, truth)
    (tmp_path / "images_2" / "IMG_0003.png").unlink()
    with pytest.raises(InputError, match="9 images in images_2/ but 10 poses"):
        read_scene(tmp_path, downscale=2)


@pytest.mark.parametrize("content", [b"", b"ply\nformat ascii 1.0\nelement vertex 5\n"
                                     b"property float x\nend_header\n1\n",
                                     b"not a ply at all"])
def test_corrupt_ply_is_named(tmp_path, build, truth, content):
    build.scannet(tmp_path, truth)
    (tmp_path / "points3d.ply").write_bytes(content)
    with pytest.raises(InputError, match="points3d.ply"):
        read_scene(tmp_path)


def test_empty_ply_is_named(tmp_path, build, truth):
    build.scannet(tmp_path, truth)
    build.ply(tmp_path / "points3d.ply", np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    with pytest.raises(InputError, match="points3d.ply: PLY has 0 vertices"):
        read_scene(tmp_path)


def test_bad_points3d_bin_is_named(tmp_path, build, truth):
    build.llff(tmp_path, truth)
    p = build.points3d_bin(tmp_path / "sparse" / "0" / "points3D.bin", truth.points,
                           truth.colors)
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(InputError, match="points3D.bin"):
        read_scene(tmp_path, downscale=2)


def test_bad_json_is_named(tmp_path, build, truth):
    build.nerf(tmp_path, truth)
    (tmp_path / "transforms.json").write_text("{ not json")
    with pytest.raises(InputError, match="transforms.json.*JSON"):
        read_scene(tmp_path)
