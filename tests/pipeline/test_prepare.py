"""``instgs prepare``: photos -> COLMAP scene; bad photos; the similarity alignment."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from instgs.cli import main
from instgs.core.checks import InputError
from instgs.pipeline.align import camera_center_rmse, similarity_align
from instgs.pipeline.prepare import PrepareConfig, check_photos, prepare


def test_similarity_alignment_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    y = 2.5 * x @ q.T + np.array([1.0, -2.0, 0.5])
    s, r, t = similarity_align(x, y)
    assert s == pytest.approx(2.5) and np.allclose(r, q) and np.allclose(t, [1, -2, 0.5])
    rmse, rel = camera_center_rmse(x, y)
    assert rmse < 1e-9 and rel < 1e-9
    noisy = y + rng.normal(0, 0.01, y.shape)
    assert camera_center_rmse(x, noisy)[1] < 0.01
    with pytest.raises(InputError):
        similarity_align(x[:2], y[:2])


def _photo(path, size, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def test_bad_photo_folders_are_named(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no photos"):
        check_photos(empty)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _photo(mixed / "a.png", (64, 48))
    _photo(mixed / "b.png", (80, 48))
    with pytest.raises(InputError, match=r"2 different sizes \(a.png is 64x48, b.png is 80x48"):
        check_photos(mixed)
    broken = tmp_path / "broken"
    broken.mkdir()
    _photo(broken / "a.png", (64, 48))
    (broken / "b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="cannot read") as e:
        check_photos(broken)
    assert "b.jpg" in str(e.value)
    assert main(["prepare", "--images", str(tmp_path / "none"), "--out",
                 str(tmp_path / "s")]) == 1
    assert "photo folder not found" in capsys.readouterr().err


def test_unrelated_photos_cannot_be_matched(tmp_path):
    folder = tmp_path / "noise"
    folder.mkdir()
    for i in range(4):
        _photo(folder / f"{i:02d}.png", (200, 150), seed=i)
    with pytest.raises(InputError, match="could not be matched|registered only") as e:
        prepare(folder, tmp_path / "scene", PrepareConfig(progress=False, threads=1))
    assert "00.png" in str(e.value)
    assert not (tmp_path / "scene" / "prepare_report.json").exists()


@pytest.mark.slow
def test_fern_photos_are_posed_like_the_provided_poses(shared_data, tmp_path):
    """The 20 raw fern photos (images_8, 504x378), their LLFF poses ignored: every photo
    registers and the recovered camera centres match the provided ones after a similarity
    alignment."""
    from instgs.data import read_scene

    fern = shared_data / "llff-fern"
    rep = prepare(fern / "images_8", tmp_path / "scene", PrepareConfig(
        progress=False, threads=2, downscales=(2,)))
    assert rep.unregistered == [] and len(rep.registered) == 20
    assert rep.mean_reprojection_error_px < 1.5 and rep.num_points3d > 1000
    got = read_scene(tmp_path / "scene", test_every=0)
    want = read_scene(fern, format="llff", downscale=8, test_every=0)
    index = {p.name: i for i, p in enumerate(want.image_paths)}
    order = [index[p.name] for p in got.image_paths]
    _, rel = camera_center_rmse(got.cameras.centers.numpy(),
                                want.cameras.centers.numpy()[order])
    assert rel < 0.05, rel
    assert (tmp_path / "scene" / "images_2").is_dir()
    # a second call finds the report and does nothing
    assert prepare(fern / "images_8", tmp_path / "scene").registered == rep.registered
