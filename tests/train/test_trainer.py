from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from instgs.cli import main
from instgs.core.checks import InputError
from instgs.core.configs import from_dict
from instgs.run import load_run
from instgs.train.config import TrainConfig, train_preset
from instgs.train.trainer import Trainer, stage_at


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory):
    from instgs.data.synthetic import make_synthetic_scene

    out = tmp_path_factory.mktemp("syn") / "scene"
    make_synthetic_scene(out, num_views=6, num_test_views=2, width=48, height=36,
                         num_points=3000, num_objects=2, progress=False)
    return out


def _cfg(scene, run_dir, **kw):
    base = dataclasses.replace(train_preset("scannet"), data=scene, run_dir=run_dir,
                               progress=False, save_every=0, backend="cpu")
    return dataclasses.replace(base, **kw)


def test_stage_schedule_scales_with_steps():
    cfg = TrainConfig(steps=300)
    names = [stage_at(s, cfg, True).name for s in (0, 99, 100, 199, 200, 299)]
    assert names == ["appearance", "appearance", "separate", "separate", "joint", "joint"]
    assert stage_at(250, cfg, False).name == "appearance"


def test_config_round_trip_through_json():
    cfg = train_preset("scannet")
    d = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    assert from_dict(TrainConfig, d) == cfg
    d["unknown_key"] = 1
    with pytest.raises(InputError, match="unknown_key"):
        from_dict(TrainConfig, d)
    d.pop("unknown_key")
    d["model"]["ins_feat_dim"] = "sixteen"
    with pytest.raises(InputError, match="model.ins_feat_dim"):
        from_dict(TrainConfig, d)


def test_appearance_training_improves_fit(tiny_scene, tmp_path):
    tr = Trainer(_cfg(tiny_scene, tmp_path / "run", steps=60, semantics="off"))
    assert not tr.semantics and tr.model.ins_feat is None
    before = tr.evaluate(tr.train_ids)["psnr"]
    tr.train()
    assert tr.evaluate(tr.train_ids)["psnr"] > before + 2.0


@pytest.mark.parametrize("target,border_px", [("projected", 0.0), ("projected", 3.0),
                                              ("rendered", 0.0), ("both", 0.0)])
def test_semantic_training_writes_run(tiny_scene, tmp_path, target, border_px):
    cfg = _cfg(tiny_scene, tmp_path / "run", steps=30)
    tr = Trainer(dataclasses.replace(cfg, loss=dataclasses.replace(
        cfg.loss, instance_target=target, occlusion_border_px=border_px)))
    assert tr.semantics and tr.model.fixed_anchors
    i = tr.train_ids[0]
    feat0 = tr.model.ins_feat.detach().clone()
    tr.train()
    assert not torch.allclose(tr.model.ins_feat.detach(), feat0)  # semantic phases ran
    run = tmp_path / "run"
    for name in ("config.json", "scene.json", "manifest.json", "metrics.json", "ckpt/latest.pt"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 30 and metrics["psnr"] is not None
    ckpt = torch.load(run / "ckpt/latest.pt", weights_only=True)
    assert ckpt["ins_feat"].shape == (tr.model.num_anchors, cfg.model.ins_feat_dim)
    # the semantic phases changed the instance features
    loaded = load_run(run)
    assert loaded.model.num_anchors == tr.model.num_anchors
    ng = loaded.decode(i)
    assert len(ng.gaussians) > 0


def test_resume_continues_from_checkpoint(tiny_scene, tmp_path):
    run = tmp_path / "run"
    Trainer(_cfg(tiny_scene, run, steps=10)).train()
    tr = Trainer(_cfg(tiny_scene, run, steps=14, resume=True))
    assert tr.step == 10
    assert len(tr.optimizer.state) > 0  # Adam moments restored
    tr.train()
    assert json.loads((run / "metrics.json").read_text())["step"] == 14


def test_max_minutes_stops_then_evaluates_and_saves(tiny_scene, tmp_path):
    run = tmp_path / "run"
    Trainer(_cfg(tiny_scene, run, steps=1000, max_minutes=0.0)).train()
    m = json.loads((run / "metrics.json").read_text())
    assert m["stopped_by_time_budget"] and m["step"] == 1 and m["psnr"] is not None


def test_resume_without_checkpoint_is_a_clear_error(tiny_scene, tmp_path):
    with pytest.raises(InputError, match="no checkpoint"):
        Trainer(_cfg(tiny_scene, tmp_path / "empty", steps=5, resume=True))


def test_semantics_on_without_masks_is_a_clear_error(tiny_scene, tmp_path):
    import shutil

    scene = tmp_path / "nomasks"
    shutil.copytree(tiny_scene, scene)
    shutil.rmtree(scene / "language_features")
    with pytest.raises(InputError, match="instgs masks"):
        Trainer(_cfg(scene, tmp_path / "r", steps=5, semantics="on"))


def test_cli_train_reports_unknown_layout(tmp_path, capsys):
    (tmp_path / "junk.txt").write_text("x")
    assert main(["train", "--data", str(tmp_path), "--steps", "1", "--no-progress"]) == 1
    assert "layout" in capsys.readouterr().err.lower()


def test_cli_unknown_preset(capsys):
    assert main(["train", "--preset", "nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown preset 'nope'" in err and "scannet" in err and len(err.splitlines()) == 1


def test_orphan_and_empty_masks_are_documented_skips(tiny_scene, tmp_path, caplog):
    import shutil

    import numpy as np

    from instgs.masks.io import read_language_features, write_language_features

    scene = tmp_path / "scene"
    shutil.copytree(tiny_scene, scene)
    lf = scene / "language_features"
    stems = sorted(p.name[:-6] for p in lf.glob("*_s.npy"))
    seg, feats = read_language_features(lf, stems[0])
    write_language_features(lf, "no_such_image", seg, feats)  # mask file without an image
    write_language_features(lf, stems[0], np.full_like(seg, -1), feats[:0])  # no valid pixel
    with caplog.at_level("WARNING", logger="instgs"):
        tr = Trainer(_cfg(scene, tmp_path / "run", steps=30))
    text = caplog.text
    assert "no_such_image" in text and "no valid mask pixel" in text
    empty_view = next(i for i in tr.train_ids if tr.scene.image_paths[i].stem == stems[0])
    tr.step = 25  # joint phase
    logs = tr.train_step(empty_view)  # the empty view trains without error
    assert logs["l_sep_proj"] == 0.0 and logs["l_coh_proj"] == 0.0
