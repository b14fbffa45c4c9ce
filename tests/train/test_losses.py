from __future__ import annotations

import math

import torch

from instgs.train.losses import (LossConfig, cohesion_loss, instance_feature_losses,
                                 mask_means, psnr, separation_loss, ssim)


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
