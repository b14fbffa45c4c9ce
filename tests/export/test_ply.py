"""The standard 3DGS PLY: layout, round trip, other trainers' files, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from instgs.core.checks import InputError
from instgs.export import Splats, read_ply, write_ply


def random_splats(n=50, degree=3, seed=0) -> Splats:
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    return Splats(torch.randn(n, 3, generator=g),
                  torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
                  torch.rand(n, 3, generator=g) * 0.1 + 0.01,
                  torch.rand(n, generator=g) * 0.98 + 0.01,
                  torch.randn(n, k, 3, generator=g) * 0.3,
                  torch.randint(-1, 5, (n,), generator=g, dtype=torch.int32),
                  torch.arange(n, dtype=torch.int64))


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip(tmp_path, degree):
    s = random_splats(degree=degree)
    path = write_ply(tmp_path / "a.ply", s)
    back = read_ply(path)
    for name in ("means", "scales", "opacities", "sh"):
        np.testing.assert_allclose(getattr(back, name).numpy(), getattr(s, name).numpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(back.quats.numpy(), s.quats.numpy(), atol=1e-6)
    assert back.instance_ids.tolist() == s.instance_ids.tolist() and back.sh_degree == degree


def test_layout_is_the_3dgs_one(tmp_path):
    s = random_splats(n=3, degree=3)
    sh = torch.zeros(3, 16, 3)
    for c in range(3):
        sh[:, 1:, c] = torch.arange(15) + 100 * c
    s = Splats(s.means, s.quats, s.scales, s.opacities, sh, s.instance_ids, s.child_ids)
    ply = PlyData.read(str(write_ply(tmp_path / "a.ply", s)))
    v = ply["vertex"]
    names = [p.name for p in v.properties]
    assert names == (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
                     + [f"f_rest_{i}" for i in range(45)]
                     + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2",
                        "rot_3", "instance_id"])
    assert ply.byte_order == "<" and not ply.text
    # f_rest is channel-major: the 15 coefficients of R, then G, then B
    assert [float(v[f"f_rest_{i}"][0]) for i in (0, 14, 15, 44)] == [0.0, 14.0, 100.0, 214.0]
    o = s.opacities.numpy()
    np.testing.assert_allclose(v["opacity"], np.log(o / (1 - o)), rtol=1e-5)
    np.testing.assert_allclose(v["scale_0"], np.log(s.scales[:, 0].numpy()), rtol=1e-5)
    np.testing.assert_allclose(v["rot_0"], s.quats[:, 0].numpy(), rtol=1e-6)  # w first


def test_reads_another_trainers_file(tmp_path):
    """gsplat's exporter writes no normals and no instance_id."""
    from gsplat.exporter import export_splats

    s = random_splats(degree=2)
    data = export_splats(s.means, s.scales.log(), s.quats,
                         torch.log(s.opacities / (1 - s.opacities)), s.sh[:, :1], s.sh[:, 1:])
    (tmp_path / "g.ply").write_bytes(data)
    back = read_ply(tmp_path / "g.ply")
    assert back.sh_degree == 2 and (back.instance_ids == -1).all()
    np.testing.assert_allclose(back.sh.numpy(), s.sh.numpy(), atol=1e-6)


def _ply(path, **cols):
    arr = np.zeros(2, dtype=[(k, "f4") for k in cols])
    for k, v in cols.items():
        arr[k] = v
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(path))
    return path


def test_bad_files_are_named_with_the_fix(tmp_path):
    with pytest.raises(InputError, match="missing properties .*'f_dc_0'") as e:
        read_ply(_ply(tmp_path / "pts.ply", x=1, y=2, z=3))
    assert "pts.ply" in str(e.value) and "Fix:" in str(e.value)
    base = {n: 0.0 for n in ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0",
                             "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")}
    with pytest.raises(InputError, match="5 f_rest"):
        read_ply(_ply(tmp_path / "r.ply", **base, **{f"f_rest_{i}": 0.0 for i in range(5)}))
    with pytest.raises(InputError, match="NaN"):
        read_ply(_ply(tmp_path / "n.ply", **{**base, "x": np.nan}))
    (tmp_path / "junk.ply").write_bytes(b"not a ply")
    with pytest.raises(InputError, match="cannot read as PLY"):
        read_ply(tmp_path / "junk.ply")
    with pytest.raises(InputError, match="not found"):
        read_ply(tmp_path / "none.ply")
    assert read_ply(_ply(tmp_path / "ok.ply", **base)).sh_degree == 0


def test_write_refuses_nan_and_leaves_nothing(tmp_path):
    s = random_splats()
    bad = Splats(s.means.clone(), s.quats, s.scales, s.opacities, s.sh, s.instance_ids,
                 s.child_ids)
    bad.means[3, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        write_ply(tmp_path / "x.ply", bad)
    assert list(tmp_path.iterdir()) == []
