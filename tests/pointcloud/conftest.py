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


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """A 2-step ``instgs-pc train`` run on synthetic Pointcept scenes ``scene_a`` (trained)
    and ``scene_b``: ``(data folder, run folder, checkpoint)``. Read-only for the tests."""
    from instgs.pointcloud.cli import main

    from ._helpers import HAIS_SMALL, write_pointcept

    root = tmp_path_factory.mktemp("small_run")
    data = root / "scans"
    write_pointcept(data, "scene_a", 0)
    write_pointcept(data, "scene_b", 1)
    out = root / "run"
    torch.set_num_threads(1)
    rc = main(["-q", "train", "--data", str(data), "--scenes", "scene_a", "--out", str(out),
               "--train.steps", "2", *HAIS_SMALL])
    assert rc == 0
    return data, out, out / "ckpt" / "step_000002.pt"
