"""Per-point MLP heads shared by the point-cloud networks (pointcloud-methods.md §C.2.4).

HAIS's semantic and centre-offset branches are ``Linear(C, C) -> BN -> ReLU -> Linear(C, out)``
(official code, ``model/hais/hais.py``); SSEN/MPNet embedding heads reuse the same class.
"""

from __future__ import annotations

import torch
from torch import nn

from instgs.core.checks import InputError, check_shape

__all__ = ["MLPHead"]


class MLPHead(nn.Module):
    """Two-layer MLP: ``Linear(in, hidden) -> [BatchNorm1d] -> ReLU -> Linear(hidden, out)``.

    Args:
        in_channels: input width C.
        hidden_channels: hidden width (HAIS: = C = 32).
        out_channels: output width (HAIS semantic: 20 classes; offset: 3).
        norm: BatchNorm1d after the first layer (HAIS: True, eps 1e-4).
        bn_eps: BatchNorm epsilon.

    ``forward(x [N, in]) -> [N, out]`` float32 (logits or offsets in metres).
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, *,
                 norm: bool = True, bn_eps: float = 1e-4):
        super().__init__()
        if min(in_channels, hidden_channels, out_channels) <= 0:
            raise InputError(f"MLPHead widths must be positive, got "
                             f"({in_channels}, {hidden_channels}, {out_channels})")
        self.in_channels = in_channels
        layers: list[nn.Module] = [nn.Linear(in_channels, hidden_channels)]
        if norm:
            layers.append(nn.BatchNorm1d(hidden_channels, eps=bn_eps))
        layers += [nn.ReLU(inplace=True), nn.Linear(hidden_channels, out_channels)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape("x", x, "N C", C=self.in_channels)
        return self.net(x)
