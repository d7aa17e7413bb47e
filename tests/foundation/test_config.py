import pytest
import yaml
from click.testing import CliRunner

from detcli.cli import cli
from engine.config import ConfigError, RunConfig, config_diff, list_presets, load_config, parse_override


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("train.epochs=50", "train.epochs", 50),
        ("augs.mosaic.prob=0.5", "augs.mosaic.prob", 0.5),
        ("data.classes=[car,bus]", "data.classes", ["car", "bus"]),
        ("train.ema=false", "train.ema", False),
        ("model.pretrained=null", "model.pretrained", None),
        ("train.devices=0,1", "train.devices", "0,1"),
        ("eval.best_metric=(map50 + f1) / 2", "eval.best_metric", "(map50 + f1) / 2"),
    ],
)
def test_parse_override(text, key, value):
    assert parse_override(text) == (key, value)


def test_overrides_apply_typed_and_nested():
    cfg = load_config(
        "demo",
        overrides=[
            "train.epochs=3",
            "augs.mosaic.prob=0.5",
            "data.classes=[car,bus]",
            "data.imgsz=[320,416]",
            "train.ema=false",
        ],
    )
    assert cfg.train.epochs == 3 and cfg.augs.mosaic.prob == 0.5 and cfg.data.classes == ["car", "bus"]
    assert cfg.data.imgsz == (320, 416) and cfg.train.ema is False
    assert cfg.model.name == "dfine-n"  # from the preset
    assert cfg.preset == "demo"


def test_precedence_defaults_preset_file_overrides(tmp_path):
    f = tmp_path / "my.yaml"
    f.write_text("train:\n  epochs: 7\n  batch: 3\n")
    cfg = load_config("demo", config_file=f, overrides=["train.batch=5"])
    assert cfg.train.epochs == 7  # file beats preset
    assert cfg.train.batch == 5  # override beats file
    assert cfg.model.num_queries == 60  # preset beats defaults
    assert cfg.train.optimizer == "adamw"  # default


@pytest.mark.parametrize(
    ("override", "expect"),
    [
        ("train.epoch=5", "did you mean train.epochs?"),
        ("epochs=5", "did you mean train.epochs?"),
        ("augs.mosiac.prob=0.5", "did you mean augs.mosaic.prob?"),
        ("train.epochs=abc", "expected int"),
        ("augs.mosaic.prob=2", "less than or equal to 1"),
        ("model.name=dfine-q", "one of dfine-n"),
        ("data.imgsz=300", "multiple of 32"),
    ],
)
def test_bad_keys_and_values_name_the_key(override, expect):
    with pytest.raises(ConfigError) as e:
        load_config(overrides=[override])
    assert override.split("=")[0] in str(e.value)
    assert expect in str(e.value)


def test_bad_key_in_file_names_file_and_key(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("train:\n  epochs: 5\n  lr0: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'train.lr0' \(did you mean train.lr\?\)"):
        load_config(config_file=f)


def test_invalid_yaml_reports_line(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("train:\n  epochs: [1\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+: invalid YAML"):
        load_config(config_file=f)


@pytest.mark.parametrize("name", [n for n, _ in list_presets()])
def test_every_preset_validates_and_round_trips(name, tmp_path):
    cfg = load_config(name)
    assert cfg.preset == name
    dumped = tmp_path / "config.yaml"
    dumped.write_text(cfg.to_yaml())
    again = load_config(config_file=dumped)
    assert again == cfg
    assert RunConfig.model_validate(yaml.safe_load(cfg.to_yaml())) == cfg


def test_required_presets_exist_with_purpose():
    presets = dict(list_presets())
    for name in ("visdrone", "coco", "finetune-small", "documents", "traffic-cam", "demo"):
        assert presets.get(name), f"preset {name} missing or has no purpose line"


def test_config_diff_lists_only_changed_keys():
    a = load_config()
    b = load_config(overrides=["train.epochs=3", "augs.mosaic.prob=0.1"])
    assert config_diff(a, b) == {"train.epochs": (50, 3), "augs.mosaic.prob": (0.8, 0.1)}


def test_cli_typo_is_usage_error_without_traceback():
    r = CliRunner().invoke(cli, ["presets", "show", "demo", "train.epoch=5"])
    assert r.exit_code == 2
    assert "did you mean train.epochs?" in r.output
    assert "Traceback" not in r.output


def test_cli_unknown_preset_suggests():
    r = CliRunner().invoke(cli, ["presets", "show", "visdron"])
    assert r.exit_code == 2 and "did you mean visdrone?" in r.output


def test_cli_presets_list_and_show():
    r = CliRunner().invoke(cli, ["presets", "list"])
    assert r.exit_code == 0 and "visdrone" in r.output and "traffic-cam" in r.output
    r = CliRunner().invoke(cli, ["presets", "show", "visdrone"])
    assert r.exit_code == 0
    assert "eval.max_det: 300 -> 500" in r.output


def test_cli_help_and_version():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0 and "presets" in r.output
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and "detcli" in r.output
