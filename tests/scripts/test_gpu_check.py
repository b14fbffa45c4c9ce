"""``scripts/gpu_check.py`` on the CPU (its ``--dry-run`` path): the parity measure, the
report file and the argument checks, so the GPU check does not rot between GPU sessions."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "render"))
from _render_scenes import look_cameras, random_gaussians  # noqa: E402


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.DRY["on"] = True  # compare the C++ kernel with the torch reference
    return mod


def test_parity_of_identical_renderers_is_near_exact(gpu_check, tmp_path):
    gs = random_gaussians(150, 3)
    feats = torch.randn(150, 16)
    res = gpu_check.compare_backends(gs, look_cameras(1, 40, 30), feats, tmp_path / "p.png")
    assert res["pass_psnr_40"] and min(res["psnr_db"].values()) > 80
    assert res["top_ids_agree"] > 0.99
    assert max(res["grad_rel_err"].values()) < 1e-3
    assert set(res["grad_rel_err"]) == {"means", "quats", "scales", "opacities", "colors",
                                        "features"}
    assert (tmp_path / "p.png").stat().st_size > 0


def test_parity_notices_a_renderer_that_differs(gpu_check, monkeypatch):
    # the measure must fail when one side renders something else (3 px shift)
    import instgs.render as render_pkg

    real = render_pkg.render

    def shifted(gs, cams, **kw):
        if kw.get("backend") == "torch":
            gs = type(gs)(gs.means + torch.tensor([0.2, 0.0, 0.0]), gs.quats, gs.scales,
                          gs.opacities, gs.colors)
        return real(gs, cams, **kw)

    monkeypatch.setattr(render_pkg, "render", shifted)
    res = gpu_check.compare_backends(random_gaussians(150, 3), look_cameras(1, 40, 30),
                                     torch.randn(150, 4))
    assert not res["pass_psnr_40"] and res["psnr_db"]["rgb"] < 40
    assert res["grad_rel_err"]["means"] > 0.01


def test_report_merges_steps_and_survives_a_restart(gpu_check, tmp_path):
    r = gpu_check.Report(tmp_path)
    r.put("bench", median_s=0.5)
    r.put("bench", visible=3)
    r.put("tests", returncode=0)
    again = gpu_check.Report(tmp_path)
    assert again.data == {"bench": {"median_s": 0.5, "visible": 3}, "tests": {"returncode": 0}}
    assert json.loads((tmp_path / "gpu_check.json").read_text()) == again.data


def test_unknown_step_is_refused(gpu_check, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "parity,warp", "--out", str(tmp_path),
                                      "--dry-run"])
    with pytest.raises(SystemExit, match="unknown step"):
        gpu_check.main()
