"""Config loading: defaults, files, overrides, and one clear error line for every bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ftlab.cli import main
from ftlab.config import (
    ExperimentConfig,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    load_config,
)
from ftlab.errors import ConfigError
from ftlab.assembly.experiment import check_config

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_the_reference_setting():
    config = load_config()
    assert config.model.arch == "mobilenet_v2"
    assert config.optim.name == "adam"
    assert config.schedule.name == "exponential"
    assert 0 < config.data.val_fraction < 1


def test_file_then_overrides_take_precedence(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 0.01\ndata:\n  resolution: 96\n")
    config = load_config(path, ["optim.lr=1e-3", "data.mean=[0.5,0.5,0.5]"])
    assert config.optim.lr == pytest.approx(1e-3)
    assert config.data.resolution == 96
    assert config.data.mean == (0.5, 0.5, 0.5)


def test_config_is_frozen():
    config = load_config()
    with pytest.raises(AttributeError):
        config.optim.lr = 1.0  # type: ignore[misc]


def test_round_trip_through_dict_and_yaml(tmp_path):
    config = load_config(None, ["optim.lr=3e-4", "train.run_name=abc", "data.std=[0.2,0.2,0.2]"])
    assert config_from_dict(config_to_dict(config)) == config
    path = tmp_path / "saved.yaml"
    path.write_text(config_to_yaml(config))
    assert load_config(path) == config


@pytest.mark.parametrize("override, expected", [
    ("optim.lrr=1", "unknown config key 'optim.lrr' (did you mean 'optim.lr'?)"),
    ("foo.bar=1", "unknown config key 'foo'"),
    ("optim.lr=abc", "config key 'optim.lr' must be a float, got 'abc'"),
    ("train.epochs=2.5", "config key 'train.epochs' must be an integer"),
    ("train.epochs=true", "config key 'train.epochs' must be an integer"),
    ("optim.lr=-1", "optim.lr=-1.0 is not allowed: a finite number in (0, 10]"),
    ("optim.lr=nan", "optim.lr=nan is not allowed"),
    ("optim.lr=inf", "optim.lr=inf is not allowed"),
    ("train.batch_size=0", "train.batch_size=0 is not allowed: an integer in [1, "),
    ("data.val_fraction=1", "data.val_fraction=1.0 is not allowed: a finite number in [0, 1)"),
    ("data.val_fraction=1.5", "data.val_fraction=1.5 is not allowed"),
    ("data.label_fraction=0", "data.label_fraction=0.0 is not allowed"),
    ("data.train_crop_scale=[0.5]", "data.train_crop_scale=[0.5] is not allowed: a list of 2"),
    ("data.mean=[0.1,0.2]", "data.mean=[0.1, 0.2] is not allowed: a list of 3 numbers"),
    ("train.amp=fp8", "train.amp='fp8' is not allowed: one of auto, none, bf16, fp16"),
    ("train.run_name=../escape", "train.run_name='../escape' is not allowed"),
    ("train.run_name=a/b", "train.run_name='a/b' is not allowed"),
    ("data=3", "config section 'data' must be a mapping"),
    ("lr", "override 'lr' is not of the form section.key=value"),
    ("optim.nesterov=true", "optim.nesterov=True is not allowed"),
])
def test_bad_value_names_key_and_allowed(override, expected):
    overrides = [override, "optim.momentum=0"] if "nesterov" in override else [override]
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("key, value, expected", [
    ("strategy.name", "nope", "strategy.name=.nope. is unknown; choose one of: bias, dora, full,"),
    ("model.arch", "vgg99", "model.arch='vgg99' is unknown; choose one of:"),
    ("data.name", "mnist", "data.name='mnist' is unknown; choose one of:"),
    ("optim.name", "lamb", "optim.name='lamb' is unknown; choose one of: adam, adamw, sgd"),
    ("schedule.name", "poly", "schedule.name='poly' is unknown; choose one of:"),
    ("train.amp", "fp16", "train.amp=fp16 needs a CUDA device"),
])
def test_registry_names_are_checked_before_anything_runs(key, value, expected):
    config = load_config(None, [f"{key}={value}", "train.device=cpu"])
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        check_config(config)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file .*missing.yaml does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="must hold a mapping of sections"):
        load_config(scalar)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'train.epoch' \(did you mean "
                                          r"'train.epochs'\?\)"):
        load_config(unknown)


def test_cli_reports_config_errors_in_one_line_with_exit_code_2(tmp_path, capsys):
    code = main(["train", "optim.lr=-1", f"train.output_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "ftlab: error: optim.lr=-1.0 is not allowed: a finite number in (0, 10]\n"
    assert not any(tmp_path.iterdir()), "nothing may be written for a bad config"


def test_cli_subprocess_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ftlab", "train", "train.batch_size=0",
         f"train.output_dir={tmp_path}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "ftlab: error: train.batch_size=0 is not allowed: an integer in [1, 1000000]"]


def test_every_shipped_config_is_valid(monkeypatch, tmp_path):
    from ftlab.suite.expand import expand, has_section, load_suite, validate
    from ftlab.tune.plan import load_tuned_suite

    monkeypatch.setenv("FTLAB_MIRROR", str(tmp_path / "mirror"))
    shipped = sorted((REPO / "configs").glob("*.yaml"))
    assert len(shipped) >= 6, "configs/ should ship experiment configs and suites"
    suites = 0
    for path in shipped:
        text = path.read_text()
        if "\ngrid:" in text or "\nruns:" in text:  # a suite: every run must validate
            load = load_tuned_suite if has_section(path, "tune") else load_suite
            specs = expand(load(path, []), path)
            assert specs and len(validate(specs)) == len(specs)
            suites += 1
        else:
            config = load_config(path)
            assert isinstance(config, ExperimentConfig)
            check_config(config)
    assert suites >= 2


# The strategy section as ftlab 0.1 wrote it into every run folder: all strategies' options.
V01_STRATEGY = {
    "norm_stats": "auto", "k": 3, "variant": "L+B", "n_groups": 2, "kernel_size": 5,
    "expand": 1.0, "preset": "reference", "lr_rules": [], "default_multiplier": 1.0,
    "decay": 0.85, "head_epochs": 1, "blocks_per_stage": 3, "epochs_per_stage": 1,
    "alpha": 0.1, "beta": 0.01,
}
ADDED_SINCE_V01 = {"group_width": 0}
"""Options added later, and the defaults that make earlier runs mean what they meant."""


@pytest.mark.parametrize("name", ["full", "last_k", "tinytl", "separate_lr", "l2sp"])
def test_strategy_sections_of_earlier_run_folders_still_load(name):
    from ftlab.assembly import resolve_config

    config = resolve_config(config_from_dict(
        {"strategy": {"name": name, **V01_STRATEGY}, "train": {"device": "cpu"}}))
    written = config_to_dict(config)["strategy"]
    own = {key for key in written if key not in ("name", "norm_stats")}
    assert all(written[key] == {**V01_STRATEGY, **ADDED_SINCE_V01}[key] for key in own)
    assert own <= set(V01_STRATEGY) | set(ADDED_SINCE_V01) and (own or name == "full")
    assert load_config(None, [f"strategy.name={name}"] + [
        f"strategy.{key}={value}" for key, value in written.items() if key != "name"]
    ).strategy.options == config.strategy.options


def test_strategy_options_are_checked_by_the_chosen_strategy():
    from ftlab.assembly import resolve_config

    config = resolve_config(load_config(None, ["strategy.name=tinytl", "strategy.variant=L",
                                               "train.device=cpu"]))
    assert config.strategy.options == {"variant": "L", "n_groups": 2, "kernel_size": 5,
                                       "expand": 1.0, "group_width": 0}
    assert "variant: L\n" in config_to_yaml(config) and "options" not in config_to_yaml(config)
    cases = {
        ("strategy.name=full", "strategy.variant=L"):
            "strategy.variant is not used by strategy 'full' (it is an option of tinytl); "
            "full accepts strategy.name, strategy.norm_stats: remove it",
        ("strategy.name=last_k", "strategy.k=abc"):
            "config key 'strategy.k' must be an integer, got 'abc'",
        ("strategy.name=last_k", "strategy.k=0"):
            "strategy.k=0 is not allowed: an integer in [1, 10000]",
        ("strategy.name=last_k", "strategy.kk=2"):
            "strategy.kk is not used by strategy 'last_k' (it is an option of no strategy); "
            "last_k accepts strategy.name, strategy.norm_stats, strategy.k",
        ("strategy.name=separate_lr", "strategy.lr_rules=[{head: true, blocks: [1, 2]}]"):
            "strategy.lr_rules={'head': True, 'blocks': (1, 2), 'pattern': None} is not "
            "allowed: exactly one of",
    }
    for overrides, expected in cases.items():
        with pytest.raises(ConfigError) as info:
            check_config(load_config(None, [*overrides, "train.device=cpu"]))
        assert expected in str(info.value), str(info.value)
