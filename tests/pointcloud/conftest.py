from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """One OpenMP thread for the point-cloud tests: spconv's CPU kernels and torch.mm with 2
    OpenMP threads run 15-30x slower on a loaded 2-core machine (threads spin-wait)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
