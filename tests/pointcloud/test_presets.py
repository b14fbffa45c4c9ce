"""``instgs-pc train`` presets are files (``configs/pointcloud/*.yaml``): each loads, ``--preset
X`` equals ``--config configs/pointcloud/X.yaml``, flags override the file, ``--help`` lists
them, and ``hais_preset("tiny")`` / ``paper()`` read the same files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from instgs.core.configs import list_presets, preset_description
from instgs.pointcloud.cli import TrainCommand, build_network, main, parse_args
from instgs.pointcloud.hais import HAISConfig
from instgs.pointcloud.presets import DEFAULT_PRESET, TrainSetup, load_setup
from instgs.pointcloud.train import TrainConfig
from instgs.pointcloud.presets import hais_preset

REPO = Path(__file__).resolve().parents[2]
PRESETS = list_presets("pointcloud")
BASE = ["train", "--data", "d", "--out", "o"]


def test_preset_files_exist_where_expected():
    assert set(PRESETS) >= {"hais-tiny", "hais-paper"}
    assert all(p.parent == REPO / "configs" / "pointcloud" for p in PRESETS.values())
    assert DEFAULT_PRESET in PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_loads_and_builds(name):
    setup = load_setup(name)
    assert isinstance(setup, TrainSetup) and isinstance(setup.train, TrainConfig)
    assert build_network(setup.network, getattr(setup, setup.network)) is not None
    assert len(preset_description(PRESETS[name])) > 40  # the --help text


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_flag_equals_config_file(name):
    a = parse_args([*BASE, "--preset", name])
    b = parse_args([*BASE, "--config", str(PRESETS[name])])
    assert a.setup == b.setup == load_setup(name)
    assert (a.preset, a.config) == (name, None)
    assert (b.preset, b.config) == (None, PRESETS[name])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_files_hold_only_changed_values(name):
    """A preset names the network and otherwise only values that differ from the defaults."""
    data = yaml.safe_load(PRESETS[name].read_text())
    base = dataclasses.asdict(TrainSetup())

    def check(d, ref, where):
        for k, v in d.items():
            if isinstance(v, dict):
                check(v, ref[k], f"{where}{k}.")
            elif not (where == "" and k == "network"):
                assert ref[k] != (tuple(v) if isinstance(v, list) else v), f"{where}{k}"
    check(data, base, "")


def test_hais_presets_read_the_files():
    assert hais_preset("tiny") == load_setup("hais-tiny").hais
    assert hais_preset("paper") == load_setup("hais-paper").hais == HAISConfig()
    t = hais_preset("tiny")
    assert (t.voxel_size, t.width, t.levels, t.block_reps, t.max_proposals) == \
        (0.05, 16, 5, 1, 50)
    paper = load_setup("hais-paper")
    assert (paper.train.batch_size, paper.augment, paper.max_points) == (4, "hais", 250_000)


def test_default_is_hais_tiny_in_cli_and_python():
    cmd = parse_args(BASE)
    assert cmd.setup == load_setup("hais-tiny") and cmd.preset == "hais-tiny"
    assert TrainCommand(data=Path("d"), out=Path("o")).setup == cmd.setup


def test_flags_override_the_file(tmp_path):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("# my setup\nnetwork: hais\nhais:\n  width: 12\n  levels: 4\n"
                   "train:\n  steps: 77\n  lr: 0.002\naugment: light\nmax_points: 5000\n")
    cmd = parse_args([*BASE, "--config", str(cfg), "--hais.width", "8", "--train.steps", "5"])
    assert (cmd.hais.width, cmd.hais.levels, cmd.hais.voxel_size) == (8, 4, 0.02)
    assert (cmd.train.steps, cmd.train.lr, cmd.augment, cmd.max_points) == (5, 0.002, "light",
                                                                            5000)
    tiny = parse_args([*BASE, "--preset", "hais-tiny", "--hais.levels", "3",
                       "--max-points", "100"])
    assert (tiny.hais.levels, tiny.hais.width, tiny.max_points) == (3, 16, 100)


@pytest.mark.parametrize("text, needle", [
    ("hais:\n  widht: 8\n", "widht"),                  # typo: unknown key
    ("hais:\n  width: eight\n", "width"),              # wrong type
    ("data: /some/scans\n", "data"),                   # not part of a setup
    ("hais:\n  point_fraction: 0\n", "point_fraction"),  # out of range (HAISConfig check)
    ("augment: heavy\n", "augment"),
    ("hais: [1, 2\n", "YAML"),
])
def test_bad_config_file_is_one_clear_line(tmp_path, capsys, text, needle):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    assert main([*BASE, "--config", str(cfg)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("instgs-pc train: error: ")
    assert str(cfg) in err[0] and needle in err[0]


def test_preset_and_config_together_or_unknown_preset(capsys):
    assert main([*BASE, "--preset", "hais-tiny", "--config", str(PRESETS["hais-tiny"])]) == 1
    assert "not both" in capsys.readouterr().err
    assert main([*BASE, "--preset", "hais-huge"]) == 1
    err = capsys.readouterr().err
    assert "hais-huge" in err and "hais-tiny" in err and "hais-paper" in err


def test_train_help_lists_presets_with_descriptions(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code in (0, None)
    out = " ".join(capsys.readouterr().out.split())
    for name, path in PRESETS.items():
        assert name in out
        assert " ".join(preset_description(path).split()[:8]) in out


def test_presets_follow_the_files(tmp_path, monkeypatch):
    """The files are the one source of truth: edit a copy and every reader sees the edit."""
    folder = tmp_path / "configs" / "pointcloud"
    folder.mkdir(parents=True)
    for path in PRESETS.values():
        (folder / path.name).write_text(path.read_text().replace("width: 16", "width: 24"))
    monkeypatch.setenv("INSTGS_CONFIGS", str(tmp_path / "configs"))
    assert hais_preset("tiny").width == 24
    assert hais_preset("tiny").width == 24
    assert parse_args(BASE).hais.width == 24
    assert TrainCommand(data=Path("d"), out=Path("o")).hais.width == 24
