"""configs/: the preset files are the one source of truth; --config and flags agree."""

from __future__ import annotations

import dataclasses

import pytest

from instgs.core.checks import InputError
from instgs.core.configs import (configs_dir, list_presets, load_config_file, preset_description,
                                 to_yaml)
from instgs.train.cli import TrainCommand
from instgs.train.config import TrainConfig, train_preset, train_presets


def test_every_train_preset_file_loads_and_describes_itself():
    presets = list_presets("train")
    assert {"default", "scannet", "appearance"} <= set(presets)
    for name, path in presets.items():
        cfg = load_config_file(path, TrainConfig)
        assert isinstance(cfg, TrainConfig)
        assert len(preset_description(path)) > 20, f"{path}: start it with a # description"
        assert train_preset(name) == cfg


def test_default_preset_is_the_released_defaults_plus_the_measured_instance_target():
    """The dataclass defaults are the released code's; the `default` preset (what
    `instgs train` and `instgs run` use) changes only the instance-feature recipe that
    docs/evaluation.md ("The photo preset") measured."""
    c, released = train_preset("default"), TrainConfig()
    assert released.loss.instance_target == "rendered" and released.model.ins_feat_dim == 6
    assert c.densify == released.densify and c.format == released.format
    assert c.model.ins_feat_dim == 16 and c.optim.ins_feat_lr == c.optim.ins_feat_lr_joint == 0.01
    assert c.loss.instance_target == "projected" and c.loss.occlusion_border_px == 3.0
    back = dataclasses.replace(
        c, model=released.model, optim=released.optim,
        loss=dataclasses.replace(c.loss, instance_target=released.loss.instance_target,
                                 occlusion_border_px=released.loss.occlusion_border_px))
    assert back == released


def test_scannet_preset_is_the_measured_recipe():
    """docs/evaluation.md measures exactly these settings; a change here changes the figures."""
    c = train_preset("scannet")
    assert (c.format, c.random_background, c.densify.enabled) == ("scannet", False, False)
    assert c.model.ins_feat_dim == 16 and c.optim.ins_feat_lr == c.optim.ins_feat_lr_joint == 0.01
    assert c.loss.instance_target == "projected" and c.loss.occlusion_border_px == 6.0
    assert train_preset("appearance").semantics == "off"


@pytest.mark.parametrize("name", sorted(list_presets("train")))
def test_preset_flag_equals_config_file_and_flags_override(name):
    path = configs_dir() / "train" / f"{name}.yaml"
    by_name = TrainCommand.parse_cli(["--preset", name]).config
    by_file = TrainCommand.parse_cli(["--config", str(path)]).config
    assert by_name == by_file == train_preset(name)
    over = TrainCommand.parse_cli(["--config", str(path), "--steps", "77",
                                   "--model.ins-feat-dim", "3"]).config
    assert over == dataclasses.replace(by_file, steps=77, model=dataclasses.replace(
        by_file.model, ins_feat_dim=3))


def test_to_yaml_round_trips(tmp_path):
    cfg = dataclasses.replace(train_preset("scannet"), steps=123)
    text = to_yaml(cfg)
    assert "steps: 123" in text and "ins_feat_dim: 16" in text and "lambda_dssim" not in text
    (tmp_path / "mine.yaml").write_text(text)
    assert load_config_file(tmp_path / "mine.yaml", TrainConfig) == cfg


def test_help_lists_the_presets(capsys):
    from instgs.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name, desc in train_presets().items():
        assert name in out and desc.split()[0] in out


@pytest.mark.parametrize("text,match", [
    ("model: {ins_feat_dimm: 3}", r"unknown setting\(s\) \['model.ins_feat_dimm'\]"),
    ("steps: many", "steps: expected an integer"),
    ("loss: {instance_target: pixels}", "expected one of"),
    ("steps: [1, 2", "not valid YAML"),
    ("- 1\n- 2", "expected a mapping"),
])
def test_bad_config_files_name_the_file_and_key(tmp_path, text, match):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(InputError, match=match) as e:
        load_config_file(tmp_path / "bad.yaml", TrainConfig)
    assert "bad.yaml" in str(e.value)


def test_yaml_cannot_run_code(tmp_path):
    (tmp_path / "evil.yaml").write_text(
        "steps: !!python/object/apply:os.system ['touch " + str(tmp_path / "pwned") + "']")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config_file(tmp_path / "evil.yaml", TrainConfig)
    assert not (tmp_path / "pwned").exists()
