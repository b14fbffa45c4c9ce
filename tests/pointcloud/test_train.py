"""Generic point-cloud trainer: schedule, loss decrease on a synthetic scene, checkpoints,
resume, training through degenerate proposals (BatchNorm) and scenes too small to train."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from instgs.core.checks import InputError
from instgs.pointcloud.hais import HAIS, collate_scenes
from instgs.pointcloud.train import TrainConfig, latest_checkpoint, load_checkpoint, lr_at, train

from ._helpers import synthetic_scene, tiny_cfg


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_lr_schedule_constant_then_cosine():
    cfg = TrainConfig(steps=100, lr=1e-3, min_lr=1e-6, cosine_after=0.4)
    assert lr_at(0, cfg) == lr_at(39, cfg) == 1e-3
    assert lr_at(40, cfg) == pytest.approx(1e-3)
    assert lr_at(70, cfg) == pytest.approx(1e-6 + 0.5 * (1e-3 - 1e-6))
    assert lr_at(100, cfg) == pytest.approx(1e-6)
    vals = [lr_at(s, cfg) for s in range(40, 101)]
    assert all(a >= b for a, b in itertools.pairwise(vals))
    assert not math.isnan(lr_at(5, TrainConfig(steps=1)))


def test_training_decreases_loss_and_uses_proposals(tmp_path):
    sc = synthetic_scene(n_box=300, n_floor=400)
    cfg = tiny_cfg(sc)
    cfg.prepare_fraction = 0.5
    torch.manual_seed(0)
    model = HAIS(cfg)
    tc = TrainConfig(steps=30, lr=1e-2, log_every=1, ckpt_every=100)
    path = train(model, [sc], lambda s: collate_scenes(s, cfg), tc, tmp_path,
                 meta={"network": "hais"}, progress_bar=False)
    log = _log(tmp_path)
    assert [r["step"] for r in log] == list(range(1, 31))
    first = sum(r["seg"] + r["offset"] for r in log[:5]) / 5
    last = sum(r["seg"] + r["offset"] for r in log[-5:]) / 5
    assert last < 0.6 * first, (first, last)
    assert any(r.get("proposals", 0) > 0 for r in log[15:])  # phase 2 formed proposals
    assert "proposals" not in log[0]
    assert path.name == "step_000030.pt" and latest_checkpoint(tmp_path) is not None
    ck = load_checkpoint(path)
    assert ck["step"] == 30 and ck["network"] == "hais"


def test_resume_continues_from_last_checkpoint(tmp_path):
    sc = synthetic_scene(n_box=150, n_floor=200)
    cfg = tiny_cfg(sc)
    torch.manual_seed(0)
    tc = TrainConfig(steps=4, ckpt_every=2, log_every=1)
    train(HAIS(cfg), [sc], lambda s: collate_scenes(s, cfg), tc, tmp_path, progress_bar=False)
    assert load_checkpoint(tmp_path / "ckpt" / "last.pt")["step"] == 4
    tc6 = TrainConfig(steps=6, ckpt_every=2, log_every=1)
    model = HAIS(cfg)
    train(model, [sc], lambda s: collate_scenes(s, cfg), tc6, tmp_path, resume=True,
          progress_bar=False)
    steps = [r["step"] for r in _log(tmp_path)]
    assert steps == [1, 2, 3, 4, 5, 6]  # resumed at 5, log appended
    ck = load_checkpoint(tmp_path / "ckpt" / "last.pt")
    assert ck["step"] == 6
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in ck["model"].items())


def test_trainer_input_errors(tmp_path):
    sc = synthetic_scene(n_box=50, n_floor=50)
    cfg = tiny_cfg(sc)
    def col(s):
        return collate_scenes(s, cfg)

    with pytest.raises(InputError):
        train(HAIS(cfg), [], col, TrainConfig(steps=1), tmp_path)
    with pytest.raises(InputError):
        train(HAIS(cfg), [sc], col, TrainConfig(steps=0), tmp_path)
    with pytest.raises(InputError, match="resume"):
        train(HAIS(cfg), [sc], col, TrainConfig(steps=1), tmp_path / "new", resume=True)
    bad = tmp_path / "bad.pt"
    torch.save({"foo": 1}, bad)
    with pytest.raises(InputError, match="not an instgs"):
        load_checkpoint(bad)
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


# --- BatchNorm with degenerate proposals (issue #11 item 3) ------------------------------------
class _Perfect(torch.nn.Module):
    """Stands in for a trained head: returns ``value``, differentiably tied to its input."""

    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value + 0.0 * x[:, :1]


def _scene_with_tiny_object(with_box: bool):
    """Floor + a 30-point object inside a 3 cm cube (one 6 cm intra-instance voxel), and
    optionally one normal 0.5 m box."""
    from instgs.pointcloud.data import PointScene

    rng = np.random.default_rng(0)
    floor = np.c_[rng.uniform(-0.5, 1.5, (400, 2)), np.zeros(400)]
    tiny = np.array([0.5, 0.5, 0.5]) + rng.uniform(0, 0.03, (30, 3))
    parts = [(floor, 1, -100), (tiny, 17, 0)]
    if with_box:
        parts.append((np.array([1.0, 0.0, 0.0]) + rng.uniform(0, 0.5, (300, 3)), 4, 1))
    coord = np.concatenate([p for p, _, _ in parts]).astype(np.float32)
    sem = np.concatenate([np.full(len(p), c) for p, c, _ in parts]).astype(np.int64)
    ins = np.concatenate([np.full(len(p), i) for p, _, i in parts]).astype(np.int64)
    color = np.clip(rng.normal(0, 0.3, (len(coord), 3)), -1, 1).astype(np.float32)
    return PointScene("tiny_object", coord, color, sem, ins)


def _perfect_model(sc, cfg):
    from instgs.pointcloud.hais import losses as L

    model = HAIS(cfg)
    coord, inst = torch.as_tensor(sc.coord), torch.as_tensor(sc.instance)
    model.semantic_head = _Perfect(10.0 * torch.nn.functional.one_hot(
        torch.as_tensor(sc.semantic), 20).float())
    model.offset_head = _Perfect(L.instance_centers(coord, inst) - coord)
    return model


def test_training_through_a_single_one_voxel_proposal(tmp_path):
    """The only proposal of a step fits in one intra-instance voxel: training-mode BatchNorm
    in the proposal UNet used to raise 'Expected more than 1 value per channel'."""
    sc = _scene_with_tiny_object(with_box=False)
    cfg = tiny_cfg(sc)
    cfg.prepare_fraction = 0.0  # proposals from the first step
    model = _perfect_model(sc, cfg)
    tc = TrainConfig(steps=3, log_every=1, ckpt_every=100)
    train(model, [sc], lambda s: collate_scenes(s, cfg), tc, tmp_path, progress_bar=False)
    log = _log(tmp_path)
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all(r["proposals"] == 0 and r["degenerate"] == 1 for r in log)
    assert all(math.isfinite(r["loss"]) for r in log)


def test_degenerate_proposals_dropped_others_kept():
    sc = _scene_with_tiny_object(with_box=True)
    cfg = tiny_cfg(sc)
    model = _perfect_model(sc, cfg)
    batch = collate_scenes([sc], cfg)
    out = model(batch)
    props = model.make_proposals(batch, out["semantic_logits"].argmax(1), out["offsets"])
    assert props.num == 1 and props.dropped == 1
    assert set(batch.instance[props.point_idx].tolist()) == {1}  # the box, not the tiny one
    loss, logs = model.loss(batch, progress=0.99)
    assert logs["proposals"] == 1 and logs["degenerate"] == 1
    loss.backward()


def test_coarse_sites_match_spconv():
    """coarse_sites counts what spconv's k=2/s=2 convs leave at the last level."""
    from instgs.pointcloud.backbone import make_sparse_tensor, spconv
    from instgs.pointcloud.hais.model import coarse_sites

    rng = np.random.default_rng(0)
    idx = np.unique(np.c_[rng.integers(0, 3, 60), rng.integers(0, 9, (60, 3))], axis=0)
    idx = torch.as_tensor(idx, dtype=torch.int32)
    sp = spconv()
    x = make_sparse_tensor(torch.ones(len(idx), 1), idx, batch_size=3, divisor=4)
    for _ in range(2):  # 3 levels
        x = sp.SparseConv3d(1, 1, 2, stride=2, bias=False)(x)
    want = torch.bincount(x.indices[:, 0].long(), minlength=3)
    assert coarse_sites(idx, 3).tolist() == want.tolist()
    assert coarse_sites(idx, 1).tolist() == torch.bincount(idx[:, 0].long()).tolist()


def test_scene_too_small_for_the_backbone_is_input_error():
    from instgs.pointcloud.data import PointScene

    rng = np.random.default_rng(0)
    sc = PointScene("speck", rng.uniform(0, 0.1, (50, 3)).astype(np.float32),
                    np.zeros((50, 3), np.float32), np.full(50, 4), np.zeros(50, np.int64))
    cfg = tiny_cfg(sc)  # 3 levels of 6 cm voxels: coarsest cell 24 cm
    model = HAIS(cfg)
    with pytest.raises(InputError, match="too small for the backbone"):
        model.loss(collate_scenes([sc], cfg), progress=0.0)


def test_cli_trains_through_degenerate_proposals_on_scannet_crop(shared_data, tmp_path):
    """The reviewer's case: scene0000_00 cropped to 8,000 points, HAIS augmentation,
    HAIS-tiny. Steps 0-6 equal those of a 30-step run (constant lr, proposals from step 6),
    whose step 7 crashed in BatchNorm on one 14-point proposal 4 cm wide."""
    from instgs.pointcloud.cli import main

    data = shared_data / "scannet-scene0000-mmdet3d"
    out = tmp_path / "run"
    assert main(["-q", "train", "--data", str(data), "--scenes", "scene0000_00", "--out",
                 str(out), "--max-points", "8000", "--augment", "hais", "--train.steps", "8",
                 "--train.cosine-after", "1.0", "--hais.prepare-fraction", "0.75",
                 "--train.log-every", "1"]) == 0
    log = _log(out)
    assert len(log) == 8 and "proposals" in log[-1]
