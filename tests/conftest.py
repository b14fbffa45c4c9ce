from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("INSTGS_SHARED", REPO.parent / "shared"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "gpu: needs a CUDA device and gsplat")


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="CUDA device or gsplat CUDA ops not available")
    if not torch.cuda.is_available():
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def shared_data():
    """Path to ../shared/data; skips the test when it is absent."""
    d = SHARED / "data"
    if not d.is_dir():
        pytest.skip(f"shared data not found at {d} (set INSTGS_SHARED to the shared folder)")
    return d


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
