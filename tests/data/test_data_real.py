"""Readers against the real data in ../shared/data (skipped when absent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from instgs.core.checks import InputError
from instgs.data import read_scene
from instgs.data.colmap import read_points3d
from instgs.data.scannet import frustum_fraction

SHARED = Path(os.environ.get("INSTGS_SHARED",
                             Path(__file__).resolve().parents[2].parent / "shared"))
_FLIP = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))


def _project(cams, X):
    Xc = torch.einsum("cij,pj->cpi", cams.viewmats[:, :3, :3].double(), X.double())
    Xc = Xc + cams.viewmats[:, None, :3, 3].double()
    uvw = torch.einsum("cij,cpj->cpi", cams.Ks.double(), Xc)
    return uvw[..., :2] / uvw[..., 2:], Xc[..., 2]


# ----------------------------------------------------------------------------- LLFF fern
@pytest.mark.parametrize("downscale,size", [(8, (504, 378)), (4, (1008, 756))])
def test_fern_llff(shared_data, downscale, size):
    root = shared_data / "llff-fern"
    if not root.is_dir():
        pytest.skip("llff-fern not in shared data")
    s = read_scene(root, downscale=downscale)
    assert s.format == "llff" and len(s) == 20 and (s.width, s.height) == size
    assert s.test_ids == [0, 8, 16] and len(s.train_ids) == 17
    pb = np.load(root / "poses_bounds.npy")
    np.testing.assert_allclose(s.cameras.Ks[:, 0, 0].numpy(), pb[:, 14] / downscale, rtol=1e-5)
    assert s.points.shape == (10091, 3)
    img = s.load_image(5)
    assert img.shape == (size[1], size[0], 3)


def test_fern_initial_points_project_inside_images(shared_data):
    """LLFF poses and COLMAP points3D share one world frame: the SfM points fall inside every
    image, in front of the camera; with the camera axes flipped none would."""
    root = shared_data / "llff-fern"
    if not root.is_dir():
        pytest.skip("llff-fern not in shared data")
    s = read_scene(root, downscale=8)
    c = s.cameras
    inside = frustum_fraction(s.points, c.viewmats, c.Ks, c.width, c.height)
    assert float(inside.min()) > 0.9
    assert float(frustum_fraction(s.points, _FLIP @ c.viewmats, c.Ks, c.width,
                                  c.height).max()) < 0.01
    # the LLFF focal agrees with the COLMAP camera in cameras.bin (f = 3260.53 at 4032 px)
    assert float(c.Ks[0, 0, 0]) * 8 == pytest.approx(3260.53, rel=1e-4)


def test_fern_points3d_reader_matches_file_header(shared_data):
    path = shared_data / "llff-fern" / "sparse" / "0" / "points3D.bin"
    if not path.is_file():
        pytest.skip("fern points3D.bin not in shared data")
    pts, rgb = read_points3d(path)
    assert pts.shape == (10091, 3) and rgb.shape == (10091, 3)
    assert torch.isfinite(pts).all() and 0 <= float(rgb.min()) and float(rgb.max()) <= 1


# ----------------------------------------------------------------------------- instant-ngp fox
def test_fox_transforms_json(shared_data):
    root = shared_data / "instant-ngp-fox"
    if not root.is_dir():
        pytest.skip("instant-ngp-fox not in shared data")
    s = read_scene(root, downscale=8)
    assert s.format == "nerf" and len(s) == 67 and (s.width, s.height) == (135, 240)
    meta = json.loads((root / "transforms.json").read_text())
    np.testing.assert_allclose(s.cameras.Ks[0].numpy(),
                               [[meta["fl_x"] / 8, 0, meta["cx"] / 8],
                                [0, meta["fl_y"] / 8, meta["cy"] / 8], [0, 0, 1]], rtol=1e-5)
    np.testing.assert_allclose(s.distortion[0].numpy(),
                               [meta["k1"], meta["k2"], meta["p1"], meta["p2"], 0], rtol=1e-5)
    assert s.points is None
    img = s.load_image(0)
    assert img.shape == (240, 135, 3) and 0 <= float(img.min()) and float(img.max()) <= 1


def test_fox_optical_axes_converge_in_front_of_cameras(shared_data):
    """The fox video orbits the fox head: the least-squares meeting point of the optical axes
    (OpenCV +z after the OpenGL flip) lies in front of every camera."""
    root = shared_data / "instant-ngp-fox"
    if not root.is_dir():
        pytest.skip("instant-ngp-fox not in shared data")
    s = read_scene(root, downscale=8)
    c2w = s.cameras.c2w.double()
    o, d = c2w[:, :3, 3], c2w[:, :3, 2]
    A = torch.zeros(3, 3, dtype=torch.float64)
    b = torch.zeros(3, dtype=torch.float64)
    for oi, di in zip(o, d):
        P = torch.eye(3, dtype=torch.float64) - torch.outer(di, di)
        A += P
        b += P @ oi
    focus = torch.linalg.solve(A, b)
    depth = ((focus - o) * d).sum(1)                      # along each optical axis
    dist = torch.linalg.norm(focus - o, dim=1)
    assert bool((depth > 0.9 * dist).all())              # within ~25 deg of every axis, in front
    # and it projects near the image centre of most views
    uv, z = _project(s.cameras, focus[None].float())
    central = ((uv[:, 0, 0] - 67.5).abs() < 50) & ((uv[:, 0, 1] - 120).abs() < 80) & (z[:, 0] > 0)
    assert central.double().mean() > 0.8


# ----------------------------------------------------------------------------- ScanNet renders
@pytest.fixture(scope="module")
def rendered_scannet(tmp_path_factory):
    tool = SHARED / "tools" / "render_scannet_views.py"
    data = SHARED / "data" / "scannet-scene0000-mmdet3d"
    if not (tool.is_file() and data.is_dir()):
        pytest.skip(f"render_scannet_views.py or ScanNet data not found under {SHARED}")
    out = tmp_path_factory.mktemp("scannet_render")
    subprocess.run([sys.executable, str(tool), "--scene", "scene0000_00", "--out", str(out),
                    "--views", "6", "--test-views", "3", "--width", "160", "--height", "120",
                    "--candidates", "60", "--seed", "0"], check=True, capture_output=True)
    return out / "scene0000_00"


@pytest.mark.slow
def test_rendered_scannet_layout(rendered_scannet):
    s = read_scene(rendered_scannet)
    assert s.format == "scannet" and s.fixed_anchors
    assert len(s.train_ids) == 6 and len(s.test_ids) == 3
    assert all(s.image_paths[i].stem.startswith("test_") for i in s.test_ids)
    assert (s.width, s.height) == (160, 120) and s.points.shape == (81369, 3)
    # vertex order is the original *_vh_clean_2.ply order (mmdet3d vert_all rows)
    vert = np.load(SHARED / "data" / "scannet-scene0000-mmdet3d" / "scannet_train_instance_data"
                   / "scene0000_00_vert_all.npy")
    np.testing.assert_allclose(s.points.numpy(), vert[:, :3], atol=1e-6)
    np.testing.assert_allclose(s.points_rgb.numpy(), vert[:, 3:6] / 255, atol=1e-6)
    # the OpenGL json read with the OpenGL flag equals the OpenCV copy of the same poses
    cv = json.loads((rendered_scannet / "transforms_train_opencv.json").read_text())
    by_stem = {Path(f["file_path"]).name: np.array(f["transform_matrix"]) for f in cv["frames"]}
    for i in s.train_ids:
        np.testing.assert_allclose(s.cameras.c2w[i].numpy(), by_stem[s.image_paths[i].stem],
                                   atol=1e-5)
    assert s.load_image(s.test_ids[0]).shape == (120, 160, 3)


@pytest.mark.slow
def test_rendered_scannet_vertices_land_on_rendered_pixels(rendered_scannet):
    """Pixel-level check of axes + Ks + pixel-centre convention: visible vertices project onto
    pixels the generator marked valid (it splats vertex k at floor(u), floor(v))."""
    s = read_scene(rendered_scannet)
    g = torch.Generator().manual_seed(0)
    pts = s.points[torch.randperm(len(s.points), generator=g)[:20000]]
    uv, z = _project(s.cameras, pts)
    # most GT vertices lie in front of most cameras (the generator keeps views that see the room)
    assert ((z > 0).double().mean(1) > 0.5).double().mean() > 0.5
    for i in range(len(s)):
        valid = np.asarray(Image.open(rendered_scannet / "gt" / "valid"
                                      / f"{s.image_paths[i].stem}.png")) > 0
        u = uv[i, :, 0].floor().long()
        v = uv[i, :, 1].floor().long()
        ok = (z[i] > 0.05) & (u >= 0) & (u < 160) & (v >= 0) & (v < 120)
        hit = valid[v[ok].numpy(), u[ok].numpy()]
        assert hit.mean() > 0.95, (i, hit.mean())


@pytest.mark.slow
def test_rendered_scannet_wrong_convention_is_refused(rendered_scannet):
    with pytest.raises(InputError, match="scannet_convention='opengl'"):
        read_scene(rendered_scannet, scannet_convention="opencv")


# ----------------------------------------------------------------------------- real ScanNet frames
def test_real_scannet_frames_in_opengaussian_layout(shared_data, tmp_path):
    """The 3 real ScanNet frames (OpenCV c2w in raw coordinates) written as OpenGaussian does
    (OpenGL-flipped json, raw vertices as points3d.ply) read back with the default flag; the
    unflipped flag is refused. Real frames see only part of the room, so the check compares
    how well each convention fills the view frusta rather than demanding most points in front."""
    from plyfile import PlyData, PlyElement

    d = shared_data / "scannet-scene0000-mmdet3d"
    if not d.is_dir():
        pytest.skip("scannet-scene0000-mmdet3d not in shared data")
    cams = json.loads((d / "posed_images" / "scene0000_00" / "cameras.json").read_text())
    K = np.array(cams["intrinsics_4x4"])[:3, :3]
    (tmp_path / "color").mkdir()
    frames = []
    for im in cams["images"]:
        src = d / im["path"]
        (tmp_path / "color" / src.name).symlink_to(src)
        c2w_gl = np.array(im["camera_to_world_4x4"]) @ np.diag([1.0, -1, -1, 1])
        frames.append({"file_path": f"color/{src.stem}", "transform_matrix": c2w_gl.tolist()})
    meta = {"w": 1296, "h": 968, "fl_x": K[0, 0], "fl_y": K[1, 1], "cx": K[0, 2], "cy": K[1, 2],
            "frames": frames}
    (tmp_path / "transforms_train.json").write_text(json.dumps(meta))
    raw = np.fromfile(d / "raw_coords" / "scene0000_00.bin", dtype=np.float32).reshape(-1, 6)
    arr = np.empty(len(raw), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"),
                                     ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for k, name in enumerate(("x", "y", "z", "red", "green", "blue")):
        arr[name] = raw[:, k]
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(tmp_path / "points3d.ply"))

    s = read_scene(tmp_path, downscale=8, test_every=0)
    assert (s.width, s.height) == (162, 121) and s.fixed_anchors and len(s) == 3
    np.testing.assert_allclose(s.cameras.c2w[0].numpy(),
                               np.array(cams["images"][0]["camera_to_world_4x4"]), atol=1e-5)
    inside = frustum_fraction(s.points, s.cameras.viewmats, s.cameras.Ks, s.width, s.height)
    flipped = frustum_fraction(s.points, _FLIP @ s.cameras.viewmats, s.cameras.Ks, s.width,
                               s.height)
    assert float(inside.mean()) > 2 * float(flipped.mean())
    with pytest.raises(InputError, match="scannet_convention='opengl'"):
        read_scene(tmp_path, downscale=8, scannet_convention="opencv")
