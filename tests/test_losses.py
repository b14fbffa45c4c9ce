from __future__ import annotations

import math

import torch

from instgs.losses import (LossConfig, cohesion_loss, instance_feature_losses,
                                 mask_means, projected_instance_losses, psnr, separation_loss,
                                 ssim)


def test_ssim_identity_and_psnr():
    x = torch.rand(16, 20, 3)
    assert abs(float(ssim(x, x)) - 1.0) < 1e-5
    assert psnr(x, x) == float("inf")
    assert abs(psnr(torch.zeros(4, 4, 3), torch.full((4, 4, 3), 0.1)) - 20.0) < 1e-4


def test_mask_means_respect_alpha():
    feat = torch.arange(4.0).view(2, 2, 1)
    masks = torch.tensor([[0, 0], [1, -1]])
    alpha = torch.tensor([[1.0, 0.5], [1.0, 1.0]])
    means, counts = mask_means(feat, masks, alpha, 0.7)
    assert means[:, 0].tolist() == [0.0, 2.0]
    assert counts.tolist() == [1.0, 1.0]


def test_cohesion_zero_for_constant_masks_and_positive_otherwise():
    feat = torch.zeros(4, 4, 2)
    masks = torch.zeros(4, 4, dtype=torch.long)
    means, _ = mask_means(feat, masks, torch.ones(4, 4))
    assert float(cohesion_loss(feat, masks, means, torch.ones(1, dtype=torch.bool))) == 0
    feat[0, 0] = torch.tensor([3.0, 4.0])
    means, _ = mask_means(feat, masks, torch.ones(4, 4))
    c = float(cohesion_loss(feat, masks, means, torch.ones(1, dtype=torch.bool)))
    assert c > 0


def test_separation_two_masks_hand_computed():
    mu = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    # d^2 = 1 -> 1/(1+1) = 0.5 each direction; M=2: ranks -> weights: the diagonal (0) ranks
    # lowest, the pair ranks highest -> weight 1. loss = (0.5 + 0.5) / 2
    assert math.isclose(float(separation_loss(mu)), 0.5, rel_tol=1e-6)
    # truncation: distance above the threshold -> weight 0
    d = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert float(separation_loss(mu, d, 0.4)) == 0.0


def test_separation_pushes_means_apart():
    mu = torch.tensor([[0.1, 0.2], [0.15, 0.2], [0.9, 0.1]], requires_grad=True)
    separation_loss(mu).backward()
    # gradient descent moves the two close means away from each other
    step = -mu.grad
    assert float((step[0] - step[1])[0]) < 0


def test_released_truncation_only_in_joint_phase():
    feat = torch.zeros(4, 4, 3)
    feat[:, 2:] = 1.0  # two masks, far apart in the mapped space (sq dist 3 > 0.4)
    masks = torch.zeros(4, 4, dtype=torch.long)
    masks[:, 2:] = 1
    alpha = torch.ones(4, 4, 1)
    cfg = LossConfig(min_mask_pixels=1)
    sep = instance_feature_losses(feat, alpha, masks, cfg, "separate")["separation"]
    joint = instance_feature_losses(feat, alpha, masks, cfg, "joint")["separation"]
    assert float(sep) > 0 and float(joint) == 0
    paper = LossConfig(min_mask_pixels=1, truncation="paper")
    assert float(instance_feature_losses(feat, alpha, masks, paper, "separate")["separation"]) == 0


def test_projected_losses_equal_rendered_losses_on_the_same_samples():
    # One projected point per pixel with full alpha: both targets see the same samples.
    g = torch.Generator().manual_seed(0)
    feat = torch.rand(6, 5, 4, generator=g)
    masks = torch.randint(-1, 3, (6, 5), generator=g)
    cfg = LossConfig(min_mask_pixels=2)
    for phase in ("separate", "joint"):
        a = instance_feature_losses(feat, torch.ones(6, 5, 1), masks, cfg, phase)
        b = projected_instance_losses(feat.reshape(-1, 4), masks.reshape(-1), cfg, phase)
        for k in ("cohesion", "separation", "num_masks"):
            assert torch.allclose(a[k].float(), b[k].float()), k


def test_projected_losses_pull_masks_together_and_apart():
    g = torch.Generator().manual_seed(1)
    f = torch.rand(40, 6, generator=g, requires_grad=True)
    ids = torch.arange(40) % 2
    ids[::7] = -1  # points on unmasked pixels take no part
    opt = torch.optim.Adam([f], lr=0.05)
    cfg = LossConfig(min_mask_pixels=3)
    for _ in range(200):
        x = (torch.nn.functional.normalize(f, dim=-1) + 1) / 2
        loss = projected_instance_losses(x, ids, cfg, "separate")
        opt.zero_grad()
        (loss["separation"] + 0.1 * loss["cohesion"]).backward()
        opt.step()
    x = torch.nn.functional.normalize(f.detach(), dim=-1)
    m0, m1 = x[ids == 0].mean(0), x[ids == 1].mean(0)
    spread = max(float((x[ids == 0] - m0).norm(dim=1).max()),
                 float((x[ids == 1] - m1).norm(dim=1).max()))
    assert float((m0 - m1).norm()) > 4 * spread


def test_projected_losses_check_shapes():
    import pytest

    from instgs.core.checks import ShapeError

    with pytest.raises(ShapeError):
        projected_instance_losses(torch.rand(5, 3), torch.zeros(4, dtype=torch.long),
                                  LossConfig(), "separate")
