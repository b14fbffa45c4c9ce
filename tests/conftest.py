from __future__ import annotations

import dataclasses
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


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """``instgs demo`` itself (the README's first command), run once per session:
    (scene folder, run folder). About 3 minutes on 2 CPU cores."""
    from instgs.demo import DemoCommand

    root = tmp_path_factory.mktemp("demo")
    DemoCommand(scene_dir=root / "demo_scene", run_dir=root / "runs" / "demo").run()
    return root / "demo_scene", root / "runs" / "demo"


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """A small trained, segmented run with language features (export and viewer tests): the
    demo recipe at 64x48, 10 + 2 views, 2 objects on the table, 400 steps: (scene, run)."""
    from instgs import language, segment
    from instgs.data.synthetic import make_synthetic_scene
    from instgs.language.associate import LanguageConfig
    from instgs.train import train, train_preset

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("export")
    scene = make_synthetic_scene(root / "scene", num_views=10, num_test_views=2, width=64,
                                 height=48, num_points=6000, num_objects=2, progress=False)
    cfg = dataclasses.replace(train_preset("scannet"), data=scene, run_dir=root / "run",
                              steps=400, progress=False, save_every=0, backend="cpu")
    run_dir = train(cfg)
    segment.run(run_dir)
    language.run(run_dir, LanguageConfig(progress=False))
    return scene, run_dir
