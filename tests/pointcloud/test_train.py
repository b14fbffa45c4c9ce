"""Generic point-cloud trainer: schedule, loss decrease on a synthetic scene, checkpoints,
resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

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
    assert all(a >= b for a, b in zip(vals, vals[1:]))
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
    col = lambda s: collate_scenes(s, cfg)  # noqa: E731
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
