"""Spherical harmonics in the 3DGS convention: basis twin, orthonormality, gsplat parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from instgs.core.checks import InputError
from instgs.render.sh import (SH_C0, eval_sh, num_sh_bases, rgb_to_sh_dc, sh_basis,
                              sh_basis_ref, sh_degree_of)


def _fibonacci(n: int) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64) + 0.5
    phi = torch.acos(1 - 2 * i / n)
    theta = math.pi * (1 + 5 ** 0.5) * i
    return torch.stack([torch.cos(theta) * torch.sin(phi), torch.sin(theta) * torch.sin(phi),
                        torch.cos(phi)], -1)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_basis_matches_the_term_by_term_twin(degree):
    d = torch.nn.functional.normalize(torch.randn(20, 3, dtype=torch.float64), dim=-1)
    fast = sh_basis(d, degree)
    assert fast.shape == (20, num_sh_bases(degree))
    for i in range(20):
        np.testing.assert_allclose(fast[i].numpy(), sh_basis_ref(tuple(d[i].tolist()), degree),
                                   atol=1e-12)


def test_basis_is_orthonormal_on_the_sphere():
    d = _fibonacci(20000)
    b = sh_basis(d, 3)
    gram = b.T @ b * (4 * math.pi / len(d))
    np.testing.assert_allclose(gram.numpy(), np.eye(16), atol=2e-3)


def test_eval_sh_matches_gsplat_reference():
    impl = pytest.importorskip("gsplat.cuda._torch_impl")
    g = torch.Generator().manual_seed(0)
    coeffs = torch.randn(50, 16, 3, generator=g, dtype=torch.float64)
    means = torch.randn(50, 3, generator=g, dtype=torch.float64)
    campos = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    want = (impl._spherical_harmonics(3, means - campos, coeffs) + 0.5).clamp(min=0)
    np.testing.assert_allclose(eval_sh(coeffs, means, campos).numpy(), want.numpy(), atol=1e-12)


def test_dc_round_trip_and_degree_checks():
    rgb = torch.tensor([[0.2, 0.5, 0.9]])
    dc = rgb_to_sh_dc(rgb)
    assert torch.allclose(0.5 + SH_C0 * dc, rgb)
    out = eval_sh(dc[:, None, :], torch.zeros(1, 3), torch.tensor([0.0, 0.0, -1.0]))
    assert torch.allclose(out, rgb)
    assert eval_sh(-torch.ones(1, 1, 3) * 10, torch.zeros(1, 3), torch.ones(3)).min() == 0
    assert [sh_degree_of(k) for k in (1, 4, 9, 16)] == [0, 1, 2, 3]
    with pytest.raises(InputError):
        sh_degree_of(5)
    with pytest.raises(InputError):
        num_sh_bases(4)
