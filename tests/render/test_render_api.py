"""render()'s input checking, backend selection and import hygiene."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from _render_scenes import identity_camera, look_cameras, random_gaussians

from instgs.core.checks import InputError, ShapeError
from instgs.core.gaussians import Gaussians
from instgs.render import (BackendUnavailableError, RenderOutput, backend_for_device, render,
                           resolve_backend)


def test_shape_errors():
    gs = random_gaussians(10)
    cams = look_cameras(2, 16, 12)
    with pytest.raises(ShapeError, match="features"):
        render(gs, cams, features=torch.zeros(11, 4), backend="torch")
    with pytest.raises(ShapeError, match="backgrounds"):
        render(gs, cams, backgrounds=torch.zeros(2, 4), backend="torch")
    with pytest.raises(ShapeError, match="backgrounds"):
        render(gs, cams, backgrounds=torch.zeros(3, 3), backend="torch")
    bad = Gaussians(gs.means, gs.quats, gs.scales, gs.opacities, torch.zeros(10, 4))
    with pytest.raises(ShapeError, match="colors"):
        render(bad, cams, backend="torch")
    with pytest.raises(ShapeError):
        Gaussians(gs.means, gs.quats[:5], gs.scales, gs.opacities, gs.colors)


def test_bad_arguments():
    gs, cams = random_gaussians(5), identity_camera(8, 8, 10.0)
    with pytest.raises(InputError, match="backend"):
        render(gs, cams, backend="vulkan")
    with pytest.raises(InputError, match="near_plane"):
        render(gs, cams, near_plane=0.0, backend="torch")
    with pytest.raises(InputError, match="Gaussians"):
        render(gs.means, cams, backend="torch")


def test_gsplat_backend_without_cuda_raises_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(BackendUnavailableError, match="CUDA"):
        render(random_gaussians(5), identity_camera(8, 8, 10.0), backend="gsplat")


def test_backend_for_device_falls_back_to_auto_only_where_needed():
    # gsplat renders CUDA tensors only, the C++ kernel CPU tensors only
    assert backend_for_device("gsplat", "cpu") == "auto"
    assert backend_for_device("gsplat", torch.device("cuda", 0)) == "gsplat"
    assert backend_for_device("cpu", "cuda") == "auto"
    assert backend_for_device("cpu", "cpu") == "cpu"
    for b in ("auto", "torch"):
        assert backend_for_device(b, "cpu") == b == backend_for_device(b, "cuda")
    with pytest.raises(InputError, match="unknown render backend"):
        backend_for_device("vulkan", "cpu")


def test_auto_backend_on_cpu_uses_native_kernel():
    from instgs._native import has_cpu_ops

    assert has_cpu_ops()
    assert resolve_backend("auto", torch.device("cpu")) == "cpu"
    out = render(random_gaussians(20), look_cameras(1, 16, 12))
    assert isinstance(out, RenderOutput)
    assert out.rgb.shape == (1, 12, 16, 3) and out.radii.dtype == torch.int32
    assert out.features is None and out.top_ids is None


def test_import_is_cheap():
    """Importing instgs.render compiles nothing and does not import gsplat."""
    code = ("import sys, instgs.render, instgs._native as n; "
            "assert n._module is None and n._error is None; "
            "assert 'gsplat' not in sys.modules; print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr
