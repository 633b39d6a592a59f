"""A strategy (or an optimizer and a schedule) from outside the package: one file, installed
as a distribution with an `ftlab.strategies` (`ftlab.optimizers`, `ftlab.schedules`) entry
point, works with every command without editing ftlab."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftlab.errors import ConfigError

from conftest import tiny_overrides

PLUGIN = '''
"""A user's strategy: the head, plus the stem when `stem` is set."""
from dataclasses import dataclass

from ftlab.config.schema import check_number
from ftlab.config.search import FloatRange
from ftlab.strategies import ParamInfo, Strategy, register_strategy


@dataclass(frozen=True)
class HeadStemOptions:
    stem: bool = True
    """Train the stem (block 0) with the head."""
    lr_scale: float = 1.0
    """Learning-rate factor of the stem."""

    def __post_init__(self) -> None:
        check_number("strategy.lr_scale", self.lr_scale, low=0.0, high=10.0)


@register_strategy
class HeadStem(Strategy):
    """The new head and, optionally, the first block."""

    name = "head_stem"
    summary = "the head, plus the stem (strategy.stem)"
    Options = HeadStemOptions
    search_space = {"optim.lr": FloatRange(1e-4, 1e-1, log=True),
                    "strategy.lr_scale": FloatRange(0.1, 2.0)}

    def is_trainable(self, param: ParamInfo) -> bool:
        return param.is_head or (self.options.stem and param.block == 0)

    def lr_multiplier(self, param: ParamInfo) -> float:
        return 1.0 if param.is_head else self.options.lr_scale
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder on PYTHONPATH holding the plugin module and its installed metadata, as
    `pip install` leaves them (a .dist-info with entry_points.txt)."""
    root = tmp_path_factory.mktemp("site")
    (root / "ftlab_headstem.py").write_text(PLUGIN, encoding="utf-8")
    info = root / "ftlab_headstem-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ftlab-headstem\n"
                                   "Version: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[ftlab.strategies]\nhead_stem = ftlab_headstem\n",
                                           encoding="utf-8")
    return root


def _ftlab(plugin_path: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(plugin_path), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "ftlab", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600)


def test_plugin_strategy_is_listed_and_documented(plugin_path, tmp_path):
    listed = _ftlab(plugin_path, "strategies", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "| head_stem " in listed.stdout and "the head, plus the stem" in listed.stdout
    shown = _ftlab(plugin_path, "strategies", "head_stem", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"\| strategy.lr_scale +\| float +\| 1.0 +\| Learning-rate factor of the "
                     r"stem\.", shown.stdout)


def test_plugin_strategy_trains_with_its_options(plugin_path, tmp_path):
    overrides = tiny_overrides(tmp_path / "runs", **{
        "strategy.name": "head_stem", "strategy.lr_scale": 0.5, "train.epochs": 1,
        "train.run_name": "plugin"})
    result = _ftlab(plugin_path, "train", *overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "plugin"
    summary = json.loads((run / "summary.json").read_text())
    stem_and_head = 864 + 32 + 32 + 1280 * 4 + 4  # features.0 conv + BN (gamma, beta), head
    assert summary["trainable_params"] == stem_and_head
    config = (run / "config.yaml").read_text()
    assert "name: head_stem" in config and "stem: true" in config and "lr_scale: 0.5" in config
    wrong = _ftlab(plugin_path, "train", *overrides, "strategy.k=5", "train.run_name=bad",
                   cwd=tmp_path)
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "ftlab: error: strategy.k is not used by strategy 'head_stem' (it is an option of "
        "last_k); head_stem accepts strategy.name, strategy.norm_stats, strategy.stem, "
        "strategy.lr_scale: remove it or choose another strategy"]
    assert not (tmp_path / "runs" / "bad").exists()


def test_plugin_strategy_memory_is_measured(plugin_path, tmp_path):
    result = _ftlab(plugin_path, "memory", "--strategies", "head_stem,linear_probe",
                    "--batch-sizes", "2", "--resolution", "64", "--execution", "efficient",
                    "--output-dir", str(tmp_path / "mem"),
                    "strategy_options.head_stem.stem=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines()
            if line.startswith("| head_stem") or line.startswith("| linear_probe")}
    # stem=false leaves the head alone, exactly what linear_probe trains
    assert rows["head_stem"].split("|")[4] == rows["linear_probe"].split("|")[4]
    assert "strategy options head_stem stem=False" in \
        (tmp_path / "mem" / "memory.md").read_text()


def test_plugin_strategy_is_tuned_over_its_own_search_space(plugin_path, tmp_path):
    pytest.importorskip("optuna", reason="ftlab tune needs the tune extra (optuna)")
    import yaml

    overrides = [o for o in tiny_overrides(tmp_path / "unused", **{"train.epochs": 1})
                 if not o.startswith("train.output_dir")]
    suite = {"name": "plug", "output_dir": str(tmp_path / "out"), "overrides": overrides,
             "grid": {"strategies": {"head_stem": []}},
             "tune": {"trials": 2, "seeds": [0]}}
    (tmp_path / "plug.yaml").write_text(yaml.safe_dump(suite))
    result = _ftlab(plugin_path, "tune", "plug.yaml", "--no-report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out" / "plug" / "tune" / "head_stem" / "study.json")
                        .read_text())
    assert set(record["space"]) == {"optim.lr", "strategy.lr_scale"}
    assert len(record["trials"]) == 2
    for trial in record["trials"]:
        assert 1e-4 <= trial["params"]["optim.lr"] <= 1e-1
        assert 0.1 <= trial["params"]["strategy.lr_scale"] <= 2.0
    final = yaml.safe_load((tmp_path / "out" / "plug" / "runs" / "head_stem-s0" / "config.yaml")
                           .read_text())
    assert final["strategy"]["lr_scale"] == record["best"]["params"]["strategy.lr_scale"]


def test_a_broken_plugin_is_one_line(tmp_path):
    site = tmp_path / "site"
    (site / "broken-0.1.dist-info").mkdir(parents=True)
    (site / "broken-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (site / "broken-0.1.dist-info" / "entry_points.txt").write_text(
        "[ftlab.strategies]\nbroken = no_such_module_anywhere\n")
    result = _ftlab(site, "strategies", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [textwrap.dedent("""\
        ftlab: error: plugin 'broken' (no_such_module_anywhere, entry point group \
ftlab.strategies) failed to load: ModuleNotFoundError: No module named \
'no_such_module_anywhere'; fix or uninstall the package that provides it""")]


def test_every_registry_reads_its_entry_point_group(tmp_path, monkeypatch):
    """Architectures and datasets join like strategies: an entry point naming an object
    registers it under the entry point's name, one naming a module lets its import register."""
    from ftlab.data.sources import SOURCES
    from ftlab.models.adapters import ADAPTERS, FeaturesClassifierAdapter
    from ftlab.registry import PLUGIN_GROUPS, Registry
    from ftlab.strategies.base import STRATEGIES

    from ftlab.optimization import OPTIMIZERS, SCHEDULES

    assert [r.plugin_group for r in (STRATEGIES, ADAPTERS, SOURCES, OPTIMIZERS, SCHEDULES)
            ] == list(PLUGIN_GROUPS)
    (tmp_path / "ftlab_archplugin.py").write_text(
        "from ftlab.models.adapters import FeaturesClassifierAdapter\n"
        "ADAPTER = FeaturesClassifierAdapter()\n", encoding="utf-8")
    info = tmp_path / "ftlab_archplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ftlab-archplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[ftlab.test_architectures]\nmnasnet0_5 = ftlab_archplugin:ADAPTER\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry: Registry = Registry("model.arch", "ftlab.test_architectures")
    assert registry.names() == ["mnasnet0_5"]
    assert isinstance(registry.get("mnasnet0_5"), FeaturesClassifierAdapter)
    taken: Registry = Registry("model.arch", "ftlab.test_architectures")
    taken.register("mnasnet0_5", FeaturesClassifierAdapter())
    with pytest.raises(ConfigError, match="plugin 'mnasnet0_5' .* is named like the existing "
                                          "model.arch 'mnasnet0_5'; rename the entry point"):
        taken.names()


OPTIMIZATION_PLUGIN = '''
"""A user's optimizer and schedule: sign-SGD (a stand-in for a new optimizer such as an
8-bit or schedule-free one) and a linear decay, each with its own options."""
from dataclasses import dataclass

import torch

from ftlab.config.schema import check_number
from ftlab.optimization import register_optimizer, register_schedule


@dataclass(frozen=True)
class SignOptions:
    scale: float = 1.0
    """Step = lr x scale x sign(gradient)."""

    def __post_init__(self) -> None:
        check_number("optim.scale", self.scale, low=0.0, high=10.0, low_open=True)


class SignSGD(torch.optim.Optimizer):
    def __init__(self, params, lr, weight_decay, scale):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, scale=scale))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"] * group["scale"])


@register_optimizer("signsgd", SignOptions)
def build(groups, lr, weight_decay, options):
    return SignSGD(groups, lr, weight_decay, options.scale)


@dataclass(frozen=True)
class LinearOptions:
    end: float = 0.0
    """Factor reached at the last step."""


register_schedule("linear", LinearOptions, lambda o: f"to x{o.end:g}")(
    lambda o, epoch, progress, total: 1 - (1 - o.end) * min(progress / total, 1.0))
'''


@pytest.fixture(scope="module")
def optimization_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One module registering an optimizer and a schedule, named by two entry-point groups."""
    root = tmp_path_factory.mktemp("site")
    (root / "ftlab_signsgd.py").write_text(OPTIMIZATION_PLUGIN, encoding="utf-8")
    info = root / "ftlab_signsgd-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ftlab-signsgd\n"
                                   "Version: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(
        "[ftlab.optimizers]\nsignsgd = ftlab_signsgd\n\n"
        "[ftlab.schedules]\nlinear = ftlab_signsgd\n", encoding="utf-8")
    return root


def test_plugin_optimizer_and_schedule_train_with_their_options(optimization_plugin, tmp_path):
    for command, name in (("optimizers", "signsgd"), ("schedules", "linear")):
        listed = _ftlab(optimization_plugin, command, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert re.search(rf"\| {name} +\| (optim.scale|schedule.end) ", listed.stdout)
    overrides = tiny_overrides(tmp_path / "runs", **{
        "strategy.name": "linear_probe", "optim.name": "signsgd", "optim.scale": 0.5,
        "optim.lr": 0.01, "schedule.name": "linear", "schedule.end": 0.25,
        "train.epochs": 2, "train.run_name": "plugin"})
    result = _ftlab(optimization_plugin, "train", *overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "plugin"
    import yaml

    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["optim"]["name"] == "signsgd" and config["optim"]["scale"] == 0.5
    assert config["schedule"] == {"name": "linear", "warmup_epochs": 0.0,
                                  "warmup_start_factor": 0.01, "end": 0.25}
    # 32 training images, batch 8: 4 steps per epoch, the linear factor 1 - 0.75 x step / 8
    lrs = [line.split(",")[1] for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert [float(lr) for lr in lrs] == pytest.approx([0.01, 0.00625])
    import torch

    groups = torch.load(run / "last.pt", weights_only=False)["optimizer"]["param_groups"]
    assert [(g["scale"], g["lr"]) for g in groups] == [(0.5, pytest.approx(0.0025))]
    wrong = _ftlab(optimization_plugin, "train", *overrides, "optim.momentum=0.5",
                   "optim.scales=2", "train.run_name=bad", cwd=tmp_path)
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "ftlab: error: unknown config key 'optim.scales' (did you mean 'optim.scale'?); "
        "valid keys in 'optim': name, lr, weight_decay, exclude_norm_bias_from_decay, scale"]
    assert not (tmp_path / "runs" / "bad").exists()
