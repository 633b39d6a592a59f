"""The listing commands, --help/--version, and the demo's missing-mirror message."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ftlab import __version__
from ftlab.cli import main
from ftlab.demo import demo_suite, find_mirror
from ftlab.errors import DataError
from ftlab.assembly.experiment import check_config


def test_module_entry_point_and_version():
    result = subprocess.run([sys.executable, "-m", "ftlab", "--version"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"ftlab {__version__}"
    helped = subprocess.run([sys.executable, "-m", "ftlab", "train", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "--resume RUN_DIR" in helped.stdout


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["trian"])
    assert info.value.code == 2
    assert "invalid choice: 'trian'" in capsys.readouterr().err


def test_strategies_lists_names_and_counts(capsys):
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    assert "| full " in out and "| scratch " in out
    assert main(["strategies", "--model", "mobilenet_v2", "--num-classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "| full             | 2,236,682 | 2,236,682 | 100.00%" in out
    assert "| linear_probe     | 12,810    |" in out
    assert "| 19    | classifier.1 (head) | 12,810     |" in out


def test_strategy_counts_use_the_input_size_a_run_trains_at(monkeypatch):
    """TinyTL sizes its side branches to the feature maps, so `ftlab strategies --model`
    counts at the size a run of that architecture with the default weights trains at."""
    import ftlab.strategies

    class Seen(Exception):
        pass

    def record(arch, weights, strategy, num_classes, input_size, **kwargs):
        raise Seen(arch, input_size)  # enough seen; nothing is built

    monkeypatch.setattr(ftlab.strategies, "prepare_model", record)
    for arch, size in (("mobilenet_v2", 224), ("efficientnet_b3", 300)):
        with pytest.raises(Seen) as seen:
            main(["strategies", "--model", arch])
        assert seen.value.args == (arch, size)


def test_models_and_datasets(capsys, tmp_path):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "| mobilenet_v2 " in out and "IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT" in out
    (tmp_path / "cifar-10-batches-py").mkdir()
    assert main(["datasets", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"data root: {tmp_path}" in out
    assert "| cifar10     | yes " in out and "| cifar100    | no " in out


def test_demo_without_mirror_says_what_is_missing(tmp_path, capsys):
    assert main(["demo", "--mirror", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ftlab: error: offline mirror not found (looked in {tmp_path})")
    assert "cifar10-mini/train" in err and "weights/mobilenet_v2_imagenet.pth" in err


def test_demo_suite_is_valid_with_the_mirror(mirror, monkeypatch):
    from ftlab.suite.expand import expand, load_suite, validate

    monkeypatch.setenv("FTLAB_MIRROR", str(find_mirror(str(mirror))))
    suite = load_suite(demo_suite())
    specs = expand(suite, demo_suite())
    configs = validate(specs)
    assert {s.strategy for s in specs if s.strategy} >= {"full", "scratch", "linear_probe",
                                                          "tinytl", "separate_lr"}
    for config in configs.values():
        assert config.data.root == str(mirror.resolve() / "cifar10-mini")
        check_config(config)


def test_find_mirror_rejects_incomplete_folders(tmp_path):
    (tmp_path / "cifar10-mini" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="offline mirror not found"):
        find_mirror(str(tmp_path))
