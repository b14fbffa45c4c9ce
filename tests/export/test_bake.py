"""Baking a Scaffold run into static Gaussians: fidelity, kept children, the SH-fit twin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instgs.core.checks import InputError
from instgs.export import BakeConfig, bake
from instgs.losses import psnr
from instgs.render import render
from instgs.render.sh import sh_basis
from instgs.run import load_instances, load_run


@pytest.fixture(scope="module")
def loaded(small_run):
    return load_run(small_run[1])


@pytest.fixture(scope="module")
def baked(loaded):
    return bake(loaded, BakeConfig(progress=False), load_instances(loaded.run_dir))


def test_bake_renders_like_the_scaffold_model(loaded, baked):
    views = loaded.scene.test_ids
    assert views
    with torch.no_grad():
        for i in views:
            ref = render(loaded.decode(i).gaussians, loaded.scene.cameras[i]).rgb[0]
            got = baked.render(loaded.scene.cameras, i).rgb[0]
            assert psnr(got.clamp(0, 1), ref.clamp(0, 1)) > 27.0  # 29-31 dB measured


def test_kept_children_are_those_a_training_view_draws(loaded, baked):
    drawn = set()
    with torch.no_grad():
        for i in loaded.scene.train_ids:
            drawn |= set(loaded.decode(i).child_ids.tolist())
    assert set(baked.child_ids.tolist()) == drawn
    assert len(baked) < loaded.model.num_anchors * loaded.model.cfg.n_offsets
    inst = load_instances(loaded.run_dir)
    np.testing.assert_array_equal(baked.instance_ids.numpy(),
                                  inst.gaussian_labels[baked.child_ids.numpy()])
    assert ((baked.opacities > 0) & (baked.opacities < 1)).all()
    assert torch.allclose(baked.quats.norm(dim=1), torch.ones(len(baked)), atol=1e-5)


def test_sh_fit_matches_a_per_child_least_squares_twin(loaded, baked):
    """Reference twin: gather the decoded colours of a few children view by view and solve
    the weighted ridge least squares with numpy."""
    cfg = BakeConfig()
    model, scene = loaded.model, loaded.scene
    k = model.cfg.n_offsets
    rows = [0, len(baked) // 3, len(baked) // 2, len(baked) - 1]
    for r in rows:
        child = int(baked.child_ids[r])
        a, j = divmod(child, k)
        basis, target, weights = [], [], []
        with torch.no_grad():
            for v in scene.train_ids:
                cam = scene.cameras[v]
                if not bool(model.visible_anchors(cam.viewmats[0], cam.Ks[0], cam.width,
                                                  cam.height)[a]):
                    continue
                at = model.child_attributes(torch.tensor([a]), cam.centers[0],
                                            loaded.app_index[v])
                w = float(at["opacity"][0, j] > 0)
                d = torch.nn.functional.normalize(at["means"][0, j] - cam.centers[0], dim=0)
                basis.append(sh_basis(d[None], 3)[0].numpy())
                target.append(at["colors"][0, j].numpy() - 0.5)
                weights.append(w)
        b, t, w = np.array(basis, np.float64), np.array(target), np.array(weights)
        reg = np.eye(16) * cfg.ridge * w.sum()
        reg[0, 0] = 0
        want = np.linalg.solve(b.T @ (w[:, None] * b) + reg + 1e-9 * np.eye(16),
                               b.T @ (w[:, None] * t))
        np.testing.assert_allclose(baked.sh[r].numpy(), want, atol=2e-4)


def test_rules_and_degrees(loaded):
    seen = bake(loaded, BakeConfig(progress=False, sh_degree=0))
    active = bake(loaded, BakeConfig(progress=False, sh_degree=0, opacity="mean-active"))
    most = bake(loaded, BakeConfig(progress=False, sh_degree=0, opacity="max"))
    assert seen.sh.shape[1] == 1 and len(seen) == len(active) == len(most)
    assert (active.opacities >= seen.opacities - 1e-6).all()
    assert (most.opacities >= active.opacities - 1e-6).all()
    with pytest.raises(InputError, match="SH degree"):
        bake(loaded, BakeConfig(sh_degree=4))
    with pytest.raises(InputError, match="opacity rule"):
        bake(loaded, BakeConfig(opacity="median"))
