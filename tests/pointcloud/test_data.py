"""ScanNet / S3DIS readers, label maps, bad input, dataset and augmentations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instgs.core.checks import InputError
from instgs.pointcloud.data import transforms as T
from instgs.pointcloud.data.labels import (
    IGNORE_INDEX,
    SCANNET20_NAMES,
    nyu40_to_scannet20,
    read_scannet_label_map,
    scannet20_to_nyu40,
)
from instgs.pointcloud.data.s3dis import load_s3dis_room, s3dis_split
from instgs.pointcloud.data.scannet import (
    PointScene,
    ScanNetDataset,
    class_statistics,
    load_scannet_scene,
)

MMDET = "scannet-scene0000-mmdet3d"


def test_nyu40_to_scannet20_map():
    nyu = np.array([0, 1, 2, 3, 13, 14, 22, 24, 39, 40])
    assert nyu40_to_scannet20(nyu).tolist() == [-100, 0, 1, 2, -100, 12, -100, 14, 19, -100]
    assert scannet20_to_nyu40(np.array([0, 12, 19, -100])).tolist() == [1, 14, 39, 0]
    assert SCANNET20_NAMES[14] == "refrigerator"


def test_label_map_tsv_agrees(shared_data):
    m = read_scannet_label_map(shared_data / MMDET / "meta_data/scannetv2-labels.combined.tsv")
    assert m["chair"] == 5 and m["wall"] == 1 and m["kitchen cabinets"] == 3
    assert nyu40_to_scannet20(np.array([m["refrigerator"]]))[0] == 14


def test_mmdet3d_scene0000_00(shared_data):
    root = shared_data / MMDET
    s = load_scannet_scene(root, "scene0000_00")
    raw_ins = np.load(root / "scannet_train_instance_data/scene0000_00_ins_label_all.npy")
    raw_sem = np.load(root / "scannet_train_instance_data/scene0000_00_sem_label_all.npy")
    assert s.num_points == 81369 and len(np.unique(raw_ins[raw_ins > 0])) == 67
    assert s.coord.dtype == np.float32 and s.color.dtype == np.float32
    assert -1.0 <= s.color.min() and s.color.max() <= 1.0
    # 10 of the 67 instances are wall / floor -> 57 remain, consecutive
    assert s.num_instances == 57
    assert np.array_equal(np.unique(s.instance[s.instance >= 0]), np.arange(57))
    assert not np.isin(s.semantic[s.instance >= 0], [0, 1]).any()
    assert (s.instance[raw_ins == 0] == IGNORE_INDEX).all()
    assert np.array_equal(s.semantic, nyu40_to_scannet20(raw_sem))
    # instances of the 18 benchmark classes only
    b = load_scannet_scene(root / "scannet_train_instance_data/scene0000_00_vert_all.npy",
                           benchmark_instances_only=True)
    assert b.num_instances == 27
    assert np.isin(b.semantic[b.instance >= 0], np.arange(2, 20)).all()


def test_class_statistics_on_scene(shared_data):
    s = load_scannet_scene(shared_data / MMDET, "scene0000_00")
    st = class_statistics([s])
    assert st["class_numpoint_mean"][0] == -1 and st["class_radius_mean"][1] == -1
    assert st["class_count"][2] == 7  # cabinets
    k = 3  # the single bed
    m = (s.instance >= 0) & (s.semantic == k)
    x = s.coord[m].astype(np.float64)
    assert st["class_numpoint_mean"][k] == m.sum()
    assert st["class_radius_mean"][k] == pytest.approx(np.linalg.norm(x - x.mean(0), axis=1).mean())
    mx = class_statistics([s], radius="max")["class_radius_mean"][k]
    assert mx == pytest.approx(np.linalg.norm(x - x.mean(0), axis=1).max())


def _write_pointcept(folder, n=50, nan=False, short=False):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    coord = rng.random((n, 3)).astype(np.float32)
    if nan:
        coord[7, 1] = np.nan
    np.save(folder / "coord.npy", coord)
    np.save(folder / "color.npy", rng.integers(0, 256, (n, 3)).astype(np.uint8))
    seg = np.repeat([0, 4, 4, -1, 6], n // 5)
    np.save(folder / "segment20.npy", seg[: n - 1] if short else seg)
    np.save(folder / "instance.npy", np.repeat([3, 8, 9, -1, 12], n // 5))
    return folder


def test_pointcept_layout_and_wall_instance_dropped(tmp_path):
    d = _write_pointcept(tmp_path / "scene0001_00")
    s = load_scannet_scene(d)
    assert s.name == "scene0001_00" and s.num_points == 50
    assert s.instance[:10].tolist() == [-100] * 10  # wall group
    assert sorted(set(s.instance.tolist())) == [-100, 0, 1, 2]
    assert (s.semantic[30:40] == -100).all()
    assert load_scannet_scene(tmp_path, "scene0001_00").num_instances == 3


def test_hais_pth_layout(tmp_path):
    rng = np.random.default_rng(1)
    coords = rng.random((20, 3)).astype(np.float32)
    colors = rng.uniform(-1, 1, (20, 3)).astype(np.float32)
    sem = np.repeat([2, 5, -100, 7], 5).astype(np.float64)
    ins = np.repeat([0, 1, -100, 4], 5).astype(np.float64)
    p = tmp_path / "scene0002_00_inst_nostuff.pth"
    torch.save((coords, colors, sem, ins), p)
    s = load_scannet_scene(p)
    assert s.name == "scene0002_00" and s.instance.tolist() == list(np.repeat([0, 1, -100, 2], 5))
    np.testing.assert_array_equal(s.color, colors)


def test_bad_input_nan_mismatch_empty(tmp_path):
    with pytest.raises(InputError, match="coord|NaN") as e:
        load_scannet_scene(_write_pointcept(tmp_path / "nan", nan=True))
    assert "nan" in str(e.value) and "point 7" in str(e.value)
    with pytest.raises(InputError, match="different lengths") as e:
        load_scannet_scene(_write_pointcept(tmp_path / "short", short=True))
    assert "short" in str(e.value)
    with pytest.raises(InputError, match="no points") as e:
        load_scannet_scene(_write_pointcept(tmp_path / "empty", n=0))
    assert "empty" in str(e.value)
    # mmdet3d files with a label array of the wrong length
    mm = tmp_path / "mm"
    mm.mkdir()
    np.save(mm / "sceneX_vert_all.npy", np.zeros((5, 6), np.float32))
    np.save(mm / "sceneX_ins_label_all.npy", np.zeros(4, np.uint32))
    np.save(mm / "sceneX_sem_label_all.npy", np.zeros(5, np.uint32))
    with pytest.raises(InputError, match="sceneX_ins_label_all"):
        load_scannet_scene(mm, "sceneX")
    with pytest.raises(InputError, match="no ScanNet scene"):
        load_scannet_scene(tmp_path)


def test_scenes_without_labels_load_for_prediction(tmp_path):
    """Pointcept folder with coord + color only and MMDetection3D points without label
    arrays: readable with ``require_labels=False`` (all -100); refused with a clear error
    naming the missing file otherwise."""
    d = _write_pointcept(tmp_path / "scene0003_00")
    (d / "segment20.npy").unlink()
    (d / "instance.npy").unlink()
    s = load_scannet_scene(d, require_labels=False)
    assert s.num_points == 50 and (s.semantic == IGNORE_INDEX).all()
    assert (s.instance == IGNORE_INDEX).all() and s.num_instances == 0
    with pytest.raises(InputError, match="segment20.npy") as e:
        load_scannet_scene(d)
    assert "predict" in str(e.value)
    mm = tmp_path / "mm"
    mm.mkdir()
    np.save(mm / "sceneY_vert_all.npy", np.c_[np.random.default_rng(0).random((7, 3)),
                                              np.full((7, 3), 128.0)].astype(np.float32))
    m = load_scannet_scene(mm, "sceneY", require_labels=False)
    assert m.num_points == 7 and (m.semantic == IGNORE_INDEX).all()
    with pytest.raises(InputError, match="sceneY_ins_label_all.npy"):
        load_scannet_scene(mm, "sceneY")
    # one label file without the other is a broken export, not an unlabelled scene
    np.save(mm / "sceneY_sem_label_all.npy", np.zeros(7, np.uint32))
    with pytest.raises(InputError, match="sceneY_ins_label_all.npy"):
        load_scannet_scene(mm, "sceneY", require_labels=False)


def _scene(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return PointScene("toy", rng.random((n, 3)).astype(np.float32) * 4,
                      rng.uniform(-1, 1, (n, 3)).astype(np.float32),
                      rng.integers(0, 20, n), np.repeat(np.arange(n // 100), 100))


def test_transforms_seeded_and_label_preserving():
    aug = T.hais_train_transforms(max_points=1500)
    s = _scene()
    a = aug(s, np.random.default_rng(3))
    b = aug(s, np.random.default_rng(3))
    c = aug(s, np.random.default_rng(4))
    assert np.array_equal(a.coord, b.coord) and not np.array_equal(a.coord, c.coord)
    assert a.num_points == 1500 and a.coord.dtype == np.float32
    assert a.color.min() >= -1 and a.color.max() <= 1
    assert np.array_equal(np.unique(a.instance), np.arange(a.num_instances))
    assert np.array_equal(s.coord, _scene().coord)  # input untouched


def test_rigid_transforms_keep_distances():
    s = _scene(300)
    r = T.Compose([T.Center(), T.RandomRotateZ(), T.RandomFlip(p=1.0)])(s, np.random.default_rng(0))
    d0 = np.linalg.norm(s.coord[:50, None] - s.coord[None, :50], axis=2)
    d1 = np.linalg.norm(r.coord[:50, None] - r.coord[None, :50], axis=2)
    np.testing.assert_allclose(d0, d1, atol=1e-5)
    np.testing.assert_allclose(r.coord.mean(0), 0, atol=1e-5)


def test_elastic_is_smooth():
    s = _scene(3000)
    e = T.ElasticDistortion(0.4, 0.5)(s, np.random.default_rng(0))
    disp = (e.coord - s.coord).astype(np.float64)
    assert np.abs(disp).max() > 1e-3
    near = np.linalg.norm(s.coord[:, None] - s.coord[None, :200], axis=2) < 0.02
    i, j = np.nonzero(near)
    # points 2 cm apart move almost together (the field is ~0.4 m smooth)
    assert np.abs(disp[i] - disp[j]).max() < 0.2 * np.abs(disp).max()


def test_dataset_returns_augmented_copies():
    s = _scene(500)
    ds = ScanNetDataset([s], transforms=T.Compose([T.RandomRotateZ()]), seed=1)
    a, b = ds[0], ds[0]
    assert np.array_equal(a.coord, b.coord)
    ds.set_epoch(1)
    assert not np.array_equal(ds[0].coord, a.coord)
    assert np.array_equal(ds.scene(0).coord, s.coord)
    with pytest.raises(InputError):
        ScanNetDataset([])


def _write_s3dis_room(root, area, room, parts):
    ann = root / area / room / "Annotations"
    ann.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in parts:
        a = np.c_[rng.random((n, 3)) * 3, rng.integers(0, 256, (n, 3))]
        np.savetxt(ann / f"{name}.txt", a, fmt="%.6f %.6f %.6f %d %d %d")
    return root / area / room


def test_s3dis_room_and_split(tmp_path):
    room = _write_s3dis_room(tmp_path, "Area_5", "office_1",
                             [("chair_1", 10), ("chair_2", 5), ("wall_1", 20), ("stairs_1", 3)])
    _write_s3dis_room(tmp_path, "Area_1", "hallway_1", [("floor_1", 4)])
    s = load_s3dis_room(room)
    assert s.name == "Area_5/office_1" and s.num_points == 38 and s.num_instances == 4
    assert s.semantic.tolist() == [8] * 15 + [12] * 3 + [2] * 20  # sorted files; stairs->clutter
    assert s.instance.tolist() == [0] * 10 + [1] * 5 + [2] * 3 + [3] * 20
    train, test = s3dis_split(tmp_path, 5)
    assert [p.name for p in test] == ["office_1"] and [p.name for p in train] == ["hallway_1"]
    (room / "Annotations" / "sofa_1.txt").write_text("1 2 nan 3 4 5\n")
    with pytest.raises(InputError, match="NaN"):
        load_s3dis_room(room)
    bad = _write_s3dis_room(tmp_path, "Area_2", "x", [("robot_1", 2)])
    with pytest.raises(InputError, match="unknown S3DIS class"):
        load_s3dis_room(bad)
