"""Tests of the embedded synthetic scene (instgs/data/synthetic.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from plyfile import PlyData

from instgs.core.checks import InputError
from instgs.data import synthetic as syn
from instgs.data.synthetic.cameras import _camera_rays
from instgs.data.synthetic.scene import _rot_z

TINY = dict(num_views=4, num_test_views=1, width=48, height=36, seed=3, num_objects=4,
            num_points=3000, min_mask_px=4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("syn") / "scene"
    return syn.make_synthetic_scene(out, progress=False, **TINY)


def _stems(scene: Path, split: str = "train") -> list[str]:
    doc = json.loads((scene / f"transforms_{split}.json").read_text())
    return [Path(f["file_path"]).name for f in doc["frames"]]


def _all_stems(scene: Path) -> list[str]:
    return _stems(scene, "train") + _stems(scene, "test")


# ----------------------------------------------------------------------------- ray caster
def test_raycast_matches_slow_reference():
    scene = syn.build_scene(seed=1, num_objects=6)
    train, _ = syn.camera_poses(3, 0, seed=1)
    rng = np.random.default_rng(0)
    os_, ds = [], []
    for c2w in train:
        o, d = _camera_rays(c2w, 40, 30)
        os_.append(o)
        ds.append(d)
    o, d = np.concatenate(os_), np.concatenate(ds)
    # plus rays from random points above the table in random downward directions
    o2 = rng.uniform([-1.5, -1.5, 0.9], [1.5, 1.5, 2.0], (300, 3))
    d2 = rng.normal(size=(300, 3))
    d2[:, 2] = -np.abs(d2[:, 2])
    o, d = np.concatenate([o, o2]), np.concatenate([d, d2])
    t, prim = syn.raycast(scene, o, d, chunk=777)
    t_ref, prim_ref = syn.raycast_reference(scene, o, d)
    assert (prim >= 0).mean() > 0.8
    np.testing.assert_array_equal(prim, prim_ref)
    hit = prim >= 0
    np.testing.assert_allclose(t[hit], t_ref[hit], rtol=1e-9, atol=1e-12)
    # every primitive kind is hit by some ray
    kinds = {scene.prims[k].kind for k in np.unique(prim[hit])}
    assert kinds == {"plane", "box", "sphere", "cylinder"}


def test_raycast_hits_lie_on_the_surfaces():
    scene = syn.build_scene(seed=2, num_objects=5)
    c2w = syn.camera_poses(1, 0, seed=2)[0][0]
    o, d = _camera_rays(c2w, 64, 48)
    t, prim = syn.raycast(scene, o, d)
    for k in np.unique(prim[prim >= 0]):
        p = scene.prims[k]
        x = o[prim == k] + t[prim == k, None] * d[prim == k]
        c = np.asarray(p.center)
        if p.kind == "sphere":
            np.testing.assert_allclose(np.linalg.norm(x - c, axis=1), p.radius, atol=1e-9)
        elif p.kind == "plane":
            np.testing.assert_allclose(x[:, 2], p.z0, atol=1e-9)
        elif p.kind == "box":
            xl = np.abs((x - c) @ _rot_z(p.yaw)) / np.asarray(p.half)
            np.testing.assert_allclose(xl.max(axis=1), 1.0, atol=1e-9)
        else:
            r = np.hypot(x[:, 0] - c[0], x[:, 1] - c[1])
            on_side = np.abs(r - p.radius) < 1e-9
            on_cap = (np.abs(x[:, 2] - p.z1) < 1e-9) | (np.abs(x[:, 2] - p.z0) < 1e-9)
            assert (on_side | on_cap).all()
    # camera rays have camera z = 1, so t is the camera depth
    w2c = np.linalg.inv(c2w)
    hit = prim >= 0
    xc = (o[hit] + t[hit, None] * d[hit]) @ w2c[:3, :3].T + w2c[:3, 3]
    np.testing.assert_allclose(xc[:, 2], t[hit], rtol=1e-9)


def test_scene_objects_do_not_overlap_and_rest_on_the_table():
    for seed in range(5):
        scene = syn.build_scene(seed=seed, num_objects=8)
        objs = [i for i in scene.instances if i.inst >= 3]
        assert len(objs) == 8 and {i.cls for i in objs} == {"box", "ball", "can"}
        xy = np.array([i.origin[:2] for i in objs])
        dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(8) * 9
        assert dist.min() > 0.1
        assert all(abs(i.origin[2] - syn.TABLE_TOP[1]) < 1e-12 for i in objs)


def test_build_scene_rejects_bad_object_count():
    with pytest.raises(InputError, match="num_objects"):
        syn.build_scene(0, num_objects=9)


# ----------------------------------------------------------------------------- layout
def test_layout_files_dtypes_shapes(tiny):
    W, H = TINY["width"], TINY["height"]
    for name in ("points3d.ply", "transforms_train.json", "transforms_train_opencv.json",
                 "transforms_test.json", "transforms_test_opencv.json", "text_features.json",
                 "gt/instance_per_vertex.npy", "gt/nyu40_per_vertex.npy", "gt/instances.json",
                 "gt/nyu40_text_feature_names.json", "language_features/masks_meta.json",
                 "language_features_clean/masks_meta.json", "generation_stats.json",
                 "README.md", "SHA256SUMS", "scene_complete.json"):
        assert (tiny / name).is_file(), name
    doc = json.loads((tiny / "transforms_train.json").read_text())
    fx = 1170.0 * W / 1296.0
    assert (doc["w"], doc["h"]) == (W, H)
    assert doc["fl_x"] == pytest.approx(fx) and doc["fl_y"] == pytest.approx(fx)
    assert (doc["cx"], doc["cy"]) == (W / 2, H / 2)
    assert len(doc["frames"]) == TINY["num_views"]
    assert [f["file_path"] for f in doc["frames"]] == [f"color/{k:05d}" for k in range(4)]
    assert _stems(tiny, "test") == ["test_000"]

    ply = PlyData.read(str(tiny / "points3d.ply"))["vertex"]
    names = [p.name for p in ply.properties]
    assert names == ["x", "y", "z", "red", "green", "blue"]
    assert ply["x"].dtype == np.float32 and ply["red"].dtype == np.uint8
    P = len(ply["x"])
    assert 0.95 * TINY["num_points"] <= P <= TINY["num_points"]
    ins = np.load(tiny / "gt/instance_per_vertex.npy")
    sem = np.load(tiny / "gt/nyu40_per_vertex.npy")
    assert ins.dtype == np.int32 and ins.shape == (P,)
    assert sem.dtype == np.int32 and sem.shape == (P,)
    assert set(np.unique(ins)) == set(range(1, 3 + TINY["num_objects"]))
    insts = json.loads((tiny / "gt/instances.json").read_text())
    for k, v in insts.items():
        assert (sem[ins == int(k)] == v["nyu40"]).all()
        assert v["n_vertices"] == int((ins == int(k)).sum())
        assert syn.CLASSES[v["text_feature_name"]] == v["nyu40"]

    for stem in _all_stems(tiny):
        img = Image.open(tiny / "color" / f"{stem}.png")
        assert img.mode == "RGB" and img.size == (W, H)
        gi = Image.open(tiny / "gt/instance" / f"{stem}.png")
        assert gi.mode.startswith("I;16") and gi.size == (W, H)
        gs = Image.open(tiny / "gt/semantic" / f"{stem}.png")
        gv = Image.open(tiny / "gt/valid" / f"{stem}.png")
        assert gs.mode == "L" and gv.mode == "L"
        for d in ("language_features", "language_features_clean"):
            s = np.load(tiny / d / f"{stem}_s.npy")
            f = np.load(tiny / d / f"{stem}_f.npy")
            assert s.dtype == np.int16 and s.shape == (4, H, W)
            assert f.dtype == np.float16 and f.ndim == 2 and f.shape[1] == 512
        # background pixels are black, invalid, instance 0 and in no mask
        rgb = np.asarray(img)
        valid = np.asarray(gv) > 0
        assert ((np.asarray(gi) > 0) == valid).all()
        assert (rgb[~valid] == 0).all()
        assert (s[:, ~valid] == -1).all()


def test_opengl_and_opencv_transforms_agree(tiny):
    for split in ("train", "test"):
        gl = json.loads((tiny / f"transforms_{split}.json").read_text())
        cv = json.loads((tiny / f"transforms_{split}_opencv.json").read_text())
        for a, b in zip(gl["frames"], cv["frames"]):
            A, B = np.array(a["transform_matrix"]), np.array(b["transform_matrix"])
            B[:3, 1:3] *= -1
            np.testing.assert_allclose(A, B, atol=1e-12)
            R = A[:3, :3]
            np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
            # OpenGL cameras look along -z: the table centre lies in front
            to_c = np.array([0, 0, syn.TABLE_TOP[1]]) - A[:3, 3]
            assert to_c @ -A[:3, 2] > 0


def test_gt_masks_agree_with_point_reprojection(tiny):
    """Points of instance k project into pixels labelled k (visible points, >= 97 %)."""
    W, H = TINY["width"], TINY["height"]
    ply = PlyData.read(str(tiny / "points3d.ply"))["vertex"]
    xyz = np.stack([ply["x"], ply["y"], ply["z"]], 1).astype(np.float64)
    ins = np.load(tiny / "gt/instance_per_vertex.npy")
    sem = np.load(tiny / "gt/nyu40_per_vertex.npy")
    doc = json.loads((tiny / "transforms_train.json").read_text())
    fx, fy, cx, cy = doc["fl_x"], doc["fl_y"], doc["cx"], doc["cy"]
    scene = syn.build_scene(TINY["seed"], TINY["num_objects"])
    seen_any = np.zeros(len(xyz), bool)
    for fr in doc["frames"]:
        c2w = np.array(fr["transform_matrix"])
        c2w[:3, 1:3] *= -1                                   # OpenGL -> OpenCV
        w2c = np.linalg.inv(c2w)
        pc = xyz @ w2c[:3, :3].T + w2c[:3, 3]
        z = pc[:, 2]
        u = np.floor(fx * pc[:, 0] / z + cx).astype(int)
        v = np.floor(fy * pc[:, 1] / z + cy).astype(int)
        inimg = (z > 0.05) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
        # visibility: the depth of the pixel-centre ray (re-rendered from the json pose)
        o, d = _camera_rays(c2w, W, H)
        depth, _ = syn.raycast(scene, o, d)
        depth = depth.reshape(H, W)
        sel = np.nonzero(inimg)[0]
        zb = depth[v[sel], u[sel]]
        vis = np.abs(z[sel] - zb) <= np.maximum(0.02, 0.02 * zb)
        sel = sel[vis]
        assert len(sel) > 200
        seen_any[sel] = True
        gi = np.asarray(Image.open(tiny / "gt/instance" / f"{Path(fr['file_path']).name}.png"))
        gs = np.asarray(Image.open(tiny / "gt/semantic" / f"{Path(fr['file_path']).name}.png"))
        assert (gi[v[sel], u[sel]] == ins[sel]).mean() > 0.97
        assert (gs[v[sel], u[sel]] == sem[sel]).mean() > 0.97
    assert seen_any.mean() > 0.8


def test_point_colours_match_the_images(tiny):
    """Lambertian shading is view-independent: a visible point has its pixel's colour."""
    W, H = TINY["width"], TINY["height"]
    ply = PlyData.read(str(tiny / "points3d.ply"))["vertex"]
    xyz = np.stack([ply["x"], ply["y"], ply["z"]], 1).astype(np.float64)
    rgb = np.stack([ply["red"], ply["green"], ply["blue"]], 1).astype(np.float64)
    ins = np.load(tiny / "gt/instance_per_vertex.npy")
    doc = json.loads((tiny / "transforms_train_opencv.json").read_text())
    fr = doc["frames"][0]
    c2w = np.array(fr["transform_matrix"])
    w2c = np.linalg.inv(c2w)
    pc = xyz @ w2c[:3, :3].T + w2c[:3, 3]
    uf = doc["fl_x"] * pc[:, 0] / pc[:, 2] + doc["cx"]
    vf = doc["fl_y"] * pc[:, 1] / pc[:, 2] + doc["cy"]
    # points close to a pixel centre on large planar instances (floor, table top): the
    # texture changes little over a fraction of a pixel there
    near_c = (np.abs(uf - np.floor(uf) - 0.5) < 0.1) & (np.abs(vf - np.floor(vf) - 0.5) < 0.1)
    u, v = np.floor(uf).astype(int), np.floor(vf).astype(int)
    ok = near_c & (u >= 0) & (u < W) & (v >= 0) & (v < H) & (pc[:, 2] > 0)
    gi = np.asarray(Image.open(tiny / "gt/instance" / "00000.png"))
    ok[ok] &= gi[v[ok], u[ok]] == ins[ok]
    img = np.asarray(Image.open(tiny / "color" / "00000.png")).astype(np.float64)
    err = np.abs(img[v[ok], u[ok]] - rgb[ok]).mean(1)
    assert ok.sum() > 30
    assert np.median(err) < 6


# ----------------------------------------------------------------------------- masks
def _check_levels(seg: np.ndarray, n_rows: int) -> list[np.ndarray]:
    start = 0
    ids_per_level = []
    for lvl in range(4):
        ids = np.unique(seg[lvl][seg[lvl] >= 0])
        assert (seg[lvl] >= -1).all()
        if len(ids):
            assert ids[0] == start
            np.testing.assert_array_equal(ids, np.arange(start, ids[-1] + 1))
            start = int(ids[-1]) + 1
        ids_per_level.append(ids)
    assert n_rows == start
    return ids_per_level


def test_mask_levels_are_cumulative_and_rows_match(tiny):
    meta = json.loads((tiny / "language_features/masks_meta.json").read_text())
    assert meta["level_order"] == ["default", "small", "medium", "large"]
    for stem in _all_stems(tiny):
        s = np.load(tiny / "language_features" / f"{stem}_s.npy").astype(np.int64)
        f = np.load(tiny / "language_features" / f"{stem}_f.npy").astype(np.float32)
        gi = np.asarray(Image.open(tiny / "gt/instance" / f"{stem}.png")).astype(np.int64)
        ids = _check_levels(s, len(f))
        np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=2e-3)
        # default = medium: same masks, same rows
        n0 = len(ids[0])
        assert len(ids[2]) == n0
        np.testing.assert_array_equal(s[0] >= 0, s[2] >= 0)
        np.testing.assert_array_equal(s[2][s[2] >= 0] - s[0][s[0] >= 0],
                                      np.full((s[0] >= 0).sum(), ids[2][0] - ids[0][0]))
        np.testing.assert_array_equal(f[ids[0]], f[ids[2]])
        # the hierarchy: every mask lies inside one GT instance; small inside medium
        # inside large
        for lvl in range(1, 4):
            for m in ids[lvl]:
                assert len(np.unique(gi[s[lvl] == m])) == 1
        for fine, coarse in ((1, 2), (2, 3)):
            for m in ids[fine]:
                assert len(np.unique(s[coarse][s[fine] == m])) == 1
        assert len(ids[1]) >= len(ids[2]) >= len(ids[3])
        # large masks = the visible GT instances (>= min px)
        big = [k for k, c in zip(*np.unique(gi[gi > 0], return_counts=True))
               if c >= TINY["min_mask_px"]]
        assert len(ids[3]) == len(big)
        # meta rows follow the ids
        lv = meta["views"][stem]["levels"]
        assert [r[0] for r in lv[3]] == list(ids[3])
        for r in lv[3]:
            assert r[2] == [int(np.unique(gi[s[3] == r[0]])[0])]
            assert r[4] == int((s[3] == r[0]).sum())


def test_clean_masks_are_the_gt_instances(tiny):
    meta = json.loads((tiny / "language_features_clean/masks_meta.json").read_text())
    for stem in _all_stems(tiny):
        s = np.load(tiny / "language_features_clean" / f"{stem}_s.npy").astype(np.int64)
        f = np.load(tiny / "language_features_clean" / f"{stem}_f.npy")
        gi = np.asarray(Image.open(tiny / "gt/instance" / f"{stem}.png")).astype(np.int64)
        ids = _check_levels(s, len(f))
        n = len(ids[0])
        for lvl in range(4):
            np.testing.assert_array_equal(s[lvl][s[lvl] >= 0] - lvl * n, s[0][s[0] >= 0])
        for m in ids[0]:
            assert len(np.unique(gi[s[0] == m])) == 1
        rows = [r for lv in meta["views"][stem]["levels"] for r in lv]
        assert [r[0] for r in rows] == list(range(len(f)))
        for r in rows:
            lvl = r[0] // n
            assert r[2] == [int(np.unique(gi[s[lvl] == r[0]])[0])]


def test_oracle_features_point_at_their_class(tiny):
    table = json.loads((tiny / "text_features.json").read_text())
    assert set(syn.CLASSES) <= set(table)
    names = sorted(table)
    T = np.array([table[n] for n in names], np.float32)
    np.testing.assert_allclose(np.linalg.norm(T, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(T[names.index("box")], syn.text_feature("box"), atol=1e-6)
    name_of = json.loads((tiny / "gt/nyu40_text_feature_names.json").read_text())
    name_of = name_of["nyu40_to_text_feature_name"]
    meta = json.loads((tiny / "language_features/masks_meta.json").read_text())
    cos = []
    for stem in _all_stems(tiny):
        f = np.load(tiny / "language_features" / f"{stem}_f.npy").astype(np.float32)
        rows = [r for lv in meta["views"][stem]["levels"] for r in lv]
        assert len(rows) == len(f)
        for r in rows:
            want = name_of[str(r[1])]
            sims = T @ f[r[0]]
            assert names[int(np.argmax(sims))] == want
            cos.append(sims[names.index(want)])
    assert abs(np.mean(cos) - 0.85) < 0.02


def test_mask_noise_erodes_and_merges():
    scene = syn.build_scene(seed=0, num_objects=5)
    c2w = syn.camera_poses(1, 0, seed=0)[0][0]
    r = syn.render_view(scene, c2w, 96, 72)
    cls = {i.inst: i.cls for i in scene.instances}
    args = (r["inst"], r["med"], r["small"], cls)
    (s0, f0, m0), _ = syn.build_masks(*args, np.random.default_rng(0), min_px=4,
                                      feature_cos=1.0, mask_noise=0.0)
    (s1, f1, m1), _ = syn.build_masks(*args, np.random.default_rng(0), min_px=4,
                                      feature_cos=1.0, mask_noise=1.0)
    assert m0["errors"] == {"merge": None, "eroded": 0}
    assert m1["errors"]["eroded"] > 0 and m1["errors"]["merge"] is not None
    for lvl in range(4):
        assert (s1[lvl] >= 0).sum() < (s0[lvl] >= 0).sum()
        assert not ((s1[lvl] >= 0) & (s0[lvl] < 0)).any()    # erosion only removes pixels
    assert len(m1["levels"][3]) == len(m0["levels"][3]) - 1
    merged = [row for row in m1["levels"][3] if row[3] == "merge"]
    assert len(merged) == 1 and sorted(merged[0][2]) == sorted(m1["errors"]["merge"])
    # noiseless rows are exactly the class vectors
    name = {c: n for n, c in syn.CLASSES.items()}
    for row in m0["levels"][3]:
        np.testing.assert_allclose(f0[row[0]].astype(np.float64),
                                   syn.text_feature(name[row[1]]), atol=2e-3)


# ----------------------------------------------------------------------------- generation
def test_generation_is_deterministic(tiny, tmp_path):
    again = syn.make_synthetic_scene(tmp_path / "again", progress=False, **TINY)
    files = sorted(p.relative_to(tiny) for p in tiny.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    skip = {Path("generation_stats.json"), Path("SHA256SUMS")}   # hold timings / their hash
    for rel in files:
        if rel not in skip:
            assert (tiny / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = syn.make_synthetic_scene(tmp_path / "other", progress=False,
                                     **{**TINY, "seed": TINY["seed"] + 1})
    assert (other / "points3d.ply").read_bytes() != (tiny / "points3d.ply").read_bytes()
    assert (other / "color/00000.png").read_bytes() != (tiny / "color/00000.png").read_bytes()


def test_checksums_cover_the_files(tiny):
    import hashlib

    lines = (tiny / "SHA256SUMS").read_text().split("\n")
    entries = dict(reversed(line.split("  ", 1)) for line in lines if line)
    assert "points3d.ply" in entries and "color/00000.png" in entries
    for rel, h in entries.items():
        assert hashlib.sha256((tiny / rel).read_bytes()).hexdigest() == h


def test_idempotent_and_refuses_to_clobber(tmp_path):
    small = {**TINY, "num_views": 2, "num_test_views": 0, "num_points": 500}
    out = syn.make_synthetic_scene(tmp_path / "s", progress=False, **small)
    assert not (out / "transforms_test.json").exists()
    marker = out / "scene_complete.json"
    assert json.loads(marker.read_text())["params"]["num_views"] == 2
    stamp = marker.stat().st_mtime_ns
    ply_stamp = (out / "points3d.ply").stat().st_mtime_ns
    assert syn.make_synthetic_scene(out, progress=False, **small) == out
    assert marker.stat().st_mtime_ns == stamp
    assert (out / "points3d.ply").stat().st_mtime_ns == ply_stamp
    with pytest.raises(InputError, match="other parameters"):
        syn.make_synthetic_scene(out, progress=False, **{**small, "seed": 99})
    syn.make_synthetic_scene(out, progress=False, overwrite=True, **{**small, "seed": 99})
    assert json.loads(marker.read_text())["params"]["seed"] == 99
    # a damaged scene of ours (a key file gone) is made again
    (out / "points3d.ply").unlink()
    syn.make_synthetic_scene(out, progress=False, **{**small, "seed": 99})
    assert (out / "points3d.ply").is_file()
    # no partial folders are left next to it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
    # a foreign folder is never deleted
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep")
    for ow in (False, True):
        with pytest.raises(InputError, match="not a synthetic scene"):
            syn.make_synthetic_scene(foreign, progress=False, overwrite=ow, **small)
    assert (foreign / "precious.txt").read_text() == "keep"
    # an empty existing folder is fine
    (tmp_path / "empty").mkdir()
    syn.make_synthetic_scene(tmp_path / "empty", progress=False, **small)
    assert (tmp_path / "empty" / "scene_complete.json").is_file()


@pytest.mark.parametrize("bad", [dict(num_views=0), dict(width=4), dict(num_objects=9),
                                 dict(mask_noise=1.5), dict(feature_cos=0.0),
                                 dict(image_format="bmp"), dict(num_points=10)])
def test_bad_parameters_raise_input_error(tmp_path, bad):
    with pytest.raises(InputError):
        syn.make_synthetic_scene(tmp_path / "x", progress=False, **{**TINY, **bad})
    assert not (tmp_path / "x").exists()


def test_jpeg_option(tmp_path):
    out = syn.make_synthetic_scene(tmp_path / "j", progress=False, image_format="jpg",
                                   **{**TINY, "num_views": 1, "num_test_views": 0,
                                      "num_points": 300})
    assert (out / "color/00000.jpg").is_file() and not (out / "color/00000.png").exists()


def test_config_is_tyro_friendly_and_runs(tiny):
    import tyro

    cfg = tyro.cli(syn.SyntheticSceneConfig,
                   args=["--out-dir", str(tiny), "--num-views", "4", "--num-test-views", "1",
                         "--width", "48", "--height", "36", "--seed", "3",
                         "--num-objects", "4", "--num-points", "3000", "--min-mask-px", "4"])
    assert cfg.out_dir == tiny and cfg.width == 48
    stamp = (tiny / "scene_complete.json").stat().st_mtime_ns
    assert cfg.run() == tiny                      # same parameters: returns at once
    assert (tiny / "scene_complete.json").stat().st_mtime_ns == stamp


def test_read_scene_reads_the_synthetic_scene(tiny):
    data = pytest.importorskip("instgs.data")
    scene = data.read_scene(tiny)                 # format auto -> scannet
    assert scene.fixed_anchors
    assert len(scene.train_ids) == TINY["num_views"] and len(scene.test_ids) == 1
    assert scene.cameras.width == TINY["width"] and scene.cameras.height == TINY["height"]
    ply = PlyData.read(str(tiny / "points3d.ply"))["vertex"]
    np.testing.assert_allclose(scene.points[:, 0].numpy(), ply["x"])
    cv = json.loads((tiny / "transforms_train_opencv.json").read_text())
    c2w = scene.cameras.c2w.double().numpy()
    for i, fr in enumerate(cv["frames"]):
        np.testing.assert_allclose(c2w[scene.train_ids[i]], fr["transform_matrix"], atol=1e-5)
    img = scene.load_image(0).numpy()
    ref = np.asarray(Image.open(tiny / "color/00000.png")).astype(np.float32) / 255
    np.testing.assert_allclose(img, ref, atol=1e-6)


def test_evaluators_score_the_synthetic_scene(tiny):
    """GT-perfect predictions get full marks from instgs.eval (text query and instances)."""
    ev = pytest.importorskip("instgs.eval")
    gt = ev.load_scannet_gt(tiny)
    assert len(gt.instance) == len(PlyData.read(str(tiny / "points3d.ply"))["vertex"])
    text = ev.load_text_features(tiny / "text_features.json")
    insts = json.loads((tiny / "gt/instances.json").read_text())
    ids = sorted(int(k) for k in insts)
    pred = np.searchsorted(ids, gt.instance)                       # 0..M-1 per vertex
    feats = np.stack([text[insts[str(k)]["text_feature_name"]] for k in ids])
    m = ev.text_query_scores(pred, feats, gt.semantic, text, class_ids=syn.CLASS_IDS)
    assert m.miou == pytest.approx(1.0) and m.macc == pytest.approx(1.0)
    assert m.num_classes == 5
    # swapping the floor's and the table's features is noticed
    feats2 = feats.copy()
    feats2[[0, 1]] = feats2[[1, 0]]
    assert ev.text_query_scores(pred, feats2, gt.semantic, text,
                                class_ids=syn.CLASS_IDS).miou < 0.7
    assert ev.instance_miou(gt.instance, gt.instance).miou == pytest.approx(1.0)


def test_masks_reader_reads_every_level(tiny):
    mio = pytest.importorskip("instgs.masks.io")
    s = np.load(tiny / "language_features/00001_s.npy").astype(np.int64)
    f = np.load(tiny / "language_features/00001_f.npy").astype(np.float32)
    start = 0
    for lvl in range(4):
        labels, feats = mio.read_masks(tiny, "00001", lvl)
        assert labels.shape == (TINY["height"], TINY["width"])
        n = len(np.unique(s[lvl][s[lvl] >= 0]))
        assert feats.shape == (n, 512) and labels.max() == n - 1
        np.testing.assert_array_equal(labels >= 0, s[lvl] >= 0)
        np.testing.assert_allclose(feats, f[start:start + n])
        start += n
