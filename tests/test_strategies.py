"""Every registered strategy: what trains, at which lr, with which statistics, and on resume."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

import ftlab
from ftlab.config import OptimConfig, ScheduleConfig, StrategyConfig, load_config
from ftlab.errors import ConfigError
from ftlab.models import build_model
from ftlab.models.adapters import FeaturesClassifierAdapter
from ftlab.strategies import (
    ParamInfo,
    Strategy,
    get_strategy,
    register_strategy,
    strategy_class,
    strategy_names,
)
from ftlab.strategies.base import STRATEGIES
from ftlab.strategies.peft_base import PeftStrategy
from ftlab.assembly.optim import build_optimizer
from ftlab.assembly.schedule import build_scheduler, lr_factor
from extras import BY_ROLE, needs_extra

ARCHS = ["mobilenet_v2", "resnet18"]


def _prepared(name: str, arch: str = "mobilenet_v2", classes: int = 5, size: int = 64,
              **options):
    needs_extra(name, arch)
    built = build_model(arch, None, classes, pretrained=False, seed=0)
    norm_stats = options.pop("norm_stats", "auto")
    strategy = get_strategy(StrategyConfig(name=name, norm_stats=norm_stats, options=options))
    torch.manual_seed(1)
    trainable = strategy.prepare(built.model, built.adapter, input_size=size)
    return built.model, built.adapter, strategy, trainable


def _steps(model, strategy, optimizer, scheduler=None, n=3, size=64):
    torch.manual_seed(2)
    strategy.set_train_mode(model)
    for _ in range(n):
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(torch.randn(4, 3, size, size)),
                                           torch.randint(0, 5, (4,)))
        penalty = strategy.penalty(model)
        (loss if penalty is None else loss + penalty).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", strategy_names())
def test_frozen_stay_bit_identical_and_trainable_move(name, arch):
    model, adapter, strategy, trainable = _prepared(name, arch)
    groups = strategy.param_groups(model, adapter, OptimConfig(lr=1e-2))
    optimized = [n for g in groups for n in g["param_names"]]
    assert set(trainable) <= set(optimized)
    # The optimizer holds exactly the trainable parameters (gradual_unfreeze: every
    # parameter that will train at some epoch; only the head's train in epoch 1).
    if name == "gradual_unfreeze":
        assert set(optimized) == {n for n, _ in model.named_parameters()}
        assert all(n.startswith(adapter.head_name(model)) for n in trainable)
    else:
        assert sorted(optimized) == sorted(trainable)
    if isinstance(strategy, PeftStrategy):
        _start_updates_off_zero(model, trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _steps(model, strategy, torch.optim.Adam(groups))
    for n, p in model.named_parameters():
        if n in trainable:
            assert not torch.equal(before[n], p), f"{n} should have trained"
        else:
            assert torch.equal(before[n], p), f"{n} should be frozen"


def _start_updates_off_zero(model: nn.Module, trainable: list[str]) -> None:
    """LoRA-style updates start at zero (B = 0: the network starts as pretrained), so the
    other factor's gradient is zero until B moves, and in a random-init network too small
    for Adam to move it within three steps. Started off zero, every factor must move."""
    torch.manual_seed(3)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in trainable and not p.any():
                p.normal_(0.0, 0.01)


@pytest.mark.parametrize("name, schedule", [
    (name, schedule) for name in strategy_names()
    for schedule in ["exponential", "cosine", "step", "constant"]
    if name not in BY_ROLE or schedule == "cosine"])  # one lr multiplier: one schedule
def test_group_lrs_are_absolute_under_every_schedule(name, schedule):
    model, adapter, strategy, _ = _prepared(name)
    optim = OptimConfig(lr=0.01)
    groups = strategy.param_groups(model, adapter, optim)
    multipliers = [g["lr_multiplier"] for g in groups]
    optimizer = build_optimizer(groups, optim)
    config = ScheduleConfig(name=schedule, warmup_epochs=0.5,
                            options={"step_size": 1, "gamma": 0.5})
    scheduler = build_scheduler(optimizer, config, steps_per_epoch=2, epochs=4)
    _steps(model, strategy, optimizer, scheduler, n=3)
    factor = lr_factor(config, 2, 4)(3)
    for group, multiplier in zip(optimizer.param_groups, multipliers):
        assert group["lr"] == pytest.approx(0.01 * multiplier * factor)


def test_linear_probe_trains_exactly_the_head():
    model, adapter, strategy, trainable = _prepared("linear_probe", classes=10)
    assert trainable == ["classifier.1.weight", "classifier.1.bias"]
    assert sum(p.numel() for n, p in model.named_parameters() if n in trainable) == 1280 * 10 + 10
    strategy.set_train_mode(model)
    assert not any(m.training for m in model.features.modules()
                   if isinstance(m, nn.BatchNorm2d))


def test_last_k_is_the_reference_last_three_layers():
    model, _, _, trainable = _prepared("last_k", k=3)
    expected = [n for n, _ in model.named_parameters()
                if n.startswith(("features.16.", "features.17.", "features.18.", "classifier."))]
    assert trainable == expected


def test_bias_and_norm_last_select_what_they_say():
    model, _, strategy, trainable = _prepared("bias")
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert set(trainable) == {n for n, _ in model.named_parameters() if n.endswith("bias")} | {
        "classifier.1.weight"}
    strategy.set_train_mode(model)
    assert not any(m.training for m in norms)  # pretrained statistics kept by default
    model, _, strategy, trainable = _prepared("norm_last")
    expected = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert {n.rsplit(".", 1)[0] for n in trainable} == expected | {"classifier.1"}
    strategy.set_train_mode(model)
    assert all(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_norm_stats_setting_overrides_the_default():
    model, _, strategy, _ = _prepared("bias", norm_stats="update")
    strategy.set_train_mode(model)
    assert all(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    model, _, strategy, _ = _prepared("full", norm_stats="freeze")
    strategy.set_train_mode(model)
    assert not any(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_separate_lr_reference_preset_matches_the_report_parameter_for_parameter():
    model, adapter, strategy, _ = _prepared("separate_lr")
    groups = {g["lr_multiplier"]: g["param_names"] for g in
              strategy.param_groups(model, adapter, OptimConfig())}
    names = {id(p): n for n, p in model.named_parameters()}
    classifier = [names[id(p)] for p in model.classifier.parameters()]
    last_five = [names[id(p)] for p in model.features[-5:].parameters()]  # the definition
    rest = [n for n in names.values() if n not in classifier + last_five]
    assert groups == {1.0: classifier, 0.6: last_five, 0.4: rest}


def test_separate_lr_reference_as_run_matches_the_reports_code():
    model, adapter, strategy, _ = _prepared("separate_lr", preset="reference_as_run")
    # The reference report's code, verbatim in logic: its middle group holds module ids.
    classifier_map = list(map(id, model.classifier.parameters()))
    low_map = list(map(id, model.features[-5:]))
    classifier_params = [p for p in model.parameters() if id(p) in classifier_map]
    low_params = [p for p in model.parameters() if id(p) in low_map]
    deep_params = [p for p in model.parameters() if id(p) not in low_map + classifier_map]
    assert low_params == []
    ours = {g["lr_multiplier"]: g["params"] for g in
            strategy.param_groups(model, adapter, OptimConfig())}
    assert [id(p) for p in ours[1.0]] == [id(p) for p in classifier_params]
    assert [id(p) for p in ours[0.4]] == [id(p) for p in deep_params]


def test_separate_lr_general_rules():
    from ftlab.strategies import LrRule

    model, adapter, strategy, trainable = _prepared(
        "separate_lr", preset=None, default_multiplier=0.5,
        lr_rules=[LrRule(pattern=r"^features\.0\.", multiplier=0.0),
                  LrRule(blocks=(1, 2), multiplier=0.1), LrRule(head=True, multiplier=2.0)])
    groups = {g["lr_multiplier"]: g["param_names"] for g in
              strategy.param_groups(model, adapter, OptimConfig())}
    assert not any(n.startswith("features.0.") for n in trainable)  # x0 freezes
    assert all(n.startswith(("features.1.", "features.2.")) for n in groups[0.1])
    assert groups[2.0] == ["classifier.1.weight", "classifier.1.bias"]
    assert set(groups) == {0.1, 0.5, 2.0}
    with pytest.raises(ConfigError, match="strategy.preset='nope' is unknown"):
        get_strategy(StrategyConfig(name="separate_lr", options={"preset": "nope"}))


def test_layer_decay_multipliers_follow_depth():
    model, adapter, strategy, _ = _prepared("layer_decay", decay=0.5)
    multipliers = {n: m for g in strategy.param_groups(model, adapter, OptimConfig())
                   for n, m in zip(g["param_names"], [g["lr_multiplier"]] * len(g["params"]))}
    assert multipliers["classifier.1.weight"] == 1.0
    assert multipliers["features.18.0.weight"] == 0.5
    assert multipliers["features.0.0.weight"] == 0.5**19


def test_gradual_unfreeze_stages():
    model, adapter, strategy, _ = _prepared("gradual_unfreeze", head_epochs=2,
                                            blocks_per_stage=4, epochs_per_stage=2)
    top = {1: [], 2: [], 3: [15, 16, 17, 18], 4: [15, 16, 17, 18],
           5: list(range(11, 19)), 11: list(range(0, 19))}
    index = adapter.block_indexer(model)
    for epoch, blocks in top.items():
        names = strategy.begin_epoch(epoch, model, adapter)
        assert sorted({index(n) for n in names} - {19}) == blocks, epoch
        assert strategy.state_dict()["unfrozen_blocks"] == 4 * max(0, (epoch - 1) // 2)
    strategy.begin_epoch(3, model, adapter)
    strategy.set_train_mode(model)
    assert not model.features[14].conv[0][1].training and model.features[15].conv[0][1].training


@pytest.mark.parametrize("arch", ARCHS)
def test_tinytl_starts_as_the_backbone(arch):
    plain = build_model(arch, None, 5, pretrained=False, seed=0).model
    model, _, strategy, trainable = _prepared("tinytl", arch, size=64)
    assert any(".lite_residual." in n for n in trainable)
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    plain.load_state_dict(model.state_dict(), strict=False)  # backbone keys are unchanged
    for mode in ("eval", "train"):
        getattr(plain, mode)()
        getattr(model, mode)()
        with torch.no_grad():
            torch.manual_seed(3)  # the same dropout mask for both
            ours = model(x)
            torch.manual_seed(3)
            assert torch.equal(ours, plain(x)), mode


def test_tinytl_branch_shapes_and_variants():
    model, _, strategy, trainable = _prepared("tinytl", size=64)
    deepest = model.features[17].lite_residual  # 2 x 2 input at 64 px: global pool, 1 x 1
    assert deepest.conv1.kernel_size == (1, 1) and isinstance(deepest.pool, nn.AdaptiveAvgPool2d)
    early = model.features[2].lite_residual     # 32 x 32 input: pooled 16, kernel 5
    assert early.conv1.kernel_size == (5, 5) and early.conv1.groups == 2
    assert early.conv2.stride == (2, 2)
    assert "features.2.lite_residual.final_bn.bias" not in trainable   # L+B
    assert "features.2.conv.1.1.bias" in trainable
    _, _, _, only_l = _prepared("tinytl", variant="L")
    assert "features.2.lite_residual.final_bn.bias" in only_l
    assert not any(n.endswith("bias") and "lite_residual" not in n and "classifier" not in n
                   for n in only_l)
    model_b, _, _, only_b = _prepared("tinytl", variant="B")
    assert not any("lite_residual" in n for n, _ in model_b.named_parameters())
    wide, _, _, _ = _prepared("tinytl", size=64, group_width=8, expand=0.5)
    branch = wide.features[16].lite_residual  # 160 input channels: 20 groups of 8, 80 wide
    assert (branch.conv1.groups, branch.conv1.out_channels) == (20, 80)
    strategy.set_train_mode(model)
    assert model.features[2].lite_residual.bn1.training
    assert not model.features[2].conv[0][1].training


def test_tinytl_refuses_an_architecture_without_known_blocks():
    class Unknown(FeaturesClassifierAdapter):
        residual_block_types = ()

    built = build_model("mobilenet_v2", None, 5, pretrained=False)
    strategy = get_strategy(StrategyConfig(name="tinytl"))
    with pytest.raises(ConfigError, match="tinytl .*cannot apply to MobileNetV2: its adapter "
                                          "knows no residual blocks"):
        strategy.prepare(built.model, Unknown(), input_size=64)
    assert get_strategy(StrategyConfig(name="tinytl", options={"variant": "B"})).prepare(
        built.model, Unknown(), input_size=64)


def test_l2sp_penalty_is_the_distance_to_the_start():
    model, adapter, strategy, _ = _prepared("l2sp", alpha=2.0, beta=0.5)
    head = model.classifier[1]
    expected_head = 0.25 * (head.weight.pow(2).sum() + head.bias.pow(2).sum())
    assert strategy.penalty(model).item() == pytest.approx(expected_head.item(), rel=1e-5)
    with torch.no_grad():
        model.features[0][0].weight.add_(0.1)
    drift = 1.0 * 0.01 * model.features[0][0].weight.numel()
    assert strategy.penalty(model).item() == pytest.approx(expected_head.item() + drift, rel=1e-4)


def test_options_of_other_strategies_are_refused():
    with pytest.raises(ConfigError, match=r"strategy.k is not used by strategy 'full' \(it is "
                                          r"an option of last_k\)"):
        get_strategy(StrategyConfig(name="full", options={"k": 5}))
    with pytest.raises(ConfigError, match="strategy.variant is not used by strategy 'bias'"):
        ftlab.assembly.experiment.check_config(
            load_config(None, ["strategy.name=bias", "strategy.variant=L", "train.device=cpu"]))


def test_registry_rejects_duplicates_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        register_strategy(type("Again", (Strategy,), {"name": "full", "summary": "x"}))
    with pytest.raises(ConfigError, match="strategy.name='nope' is unknown"):
        get_strategy(StrategyConfig(name="nope"))


def test_a_strategy_that_trains_nothing_is_an_error():
    class Nothing(Strategy):
        name = "nothing"
        summary = "x"

        def is_trainable(self, param: ParamInfo) -> bool:
            return False

    built = build_model("mobilenet_v2", None, 5, pretrained=False)
    with pytest.raises(ConfigError, match="leaves no parameter to train"):
        Nothing(StrategyConfig(name="nothing")).prepare(built.model, built.adapter)
    assert "nothing" not in STRATEGIES


STRATEGY_RUNS = {name: {} for name in strategy_names()}
STRATEGY_RUNS["gradual_unfreeze"] = {"strategy.blocks_per_stage": 5}
STRATEGY_RUNS["last_k"] = {"strategy.k": 2}


@pytest.mark.parametrize("name", strategy_names())
def test_resume_restores_trainable_sets_and_lrs(name, tiny):
    needs_extra(name, "mobilenet_v2")
    extra = {"strategy.name": name, "data.synthetic.train_per_class": 6, "data.val_fraction": 0.3,
             **{k: v for k, v in STRATEGY_RUNS[name].items()}}
    first = ftlab.train(None, overrides=tiny(**extra, **{"train.epochs": 2,
                                                           "train.run_name": "resumed"}))
    run_dir = Path(first["run_dir"])
    saved = torch.load(run_dir / "last.pt", weights_only=True)
    assert saved["strategy"] == name and saved["trainable"]
    resumed = ftlab.train(resume=run_dir, overrides=["train.epochs=3"])
    straight = ftlab.train(None, overrides=tiny(**extra, **{"train.epochs": 3,
                                                              "train.run_name": "straight"}))
    a = torch.load(run_dir / "last.pt", weights_only=True)
    b = torch.load(Path(straight["run_dir"]) / "last.pt", weights_only=True)
    assert a["trainable"] == b["trainable"]
    assert [g["lr"] for g in a["optimizer"]["param_groups"]] == \
        [g["lr"] for g in b["optimizer"]["param_groups"]]
    for key in b["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert resumed["test_top1"] == straight["test_top1"]
    assert resumed["trainable_params"] == straight["trainable_params"]


@pytest.mark.parametrize("name", strategy_names())
def test_search_spaces_are_valid_and_name_real_keys(name):
    """Every strategy's search space: ranges that a search can draw from, and keys that a
    config has (its own options for strategy.*)."""
    import dataclasses

    from ftlab.config import ExperimentConfig

    cls = strategy_class(name)
    assert "optim.lr" in cls.search_space
    options = {f.name for f in dataclasses.fields(cls.Options)}
    sections = {f.name: f for f in dataclasses.fields(ExperimentConfig)}
    for key, spec in cls.search_space.items():
        spec.check(key)
        section, _, field = key.partition(".")
        if section == "strategy":
            assert field in options, f"{name} searches {key}, not one of its options"
        else:
            fields = {f.name for f in dataclasses.fields(sections[section].default_factory())}
            assert field in fields, f"{name} searches {key}, which no config has"


def test_search_ranges_refuse_empty_inverted_and_malformed_specs():
    from ftlab.config.search import FloatRange, IntRange, parse_range

    assert parse_range("optim.lr", {"low": 1e-4, "high": 1e-1, "log": True}) == \
        FloatRange(1e-4, 1e-1, log=True)
    assert parse_range("strategy.k", [1, 6]) == IntRange(1, 6)
    cases = [
        ("optim.lr", (1e-2, 1e-4), "search range of optim.lr is inverted ([0.01, 0.0001]); "
                                   "write it as [0.0001, 0.01]"),
        ("strategy.k", (3, 3), "search range of strategy.k is empty ([3, 3])"),
        ("optim.lr", "fast", "search range of optim.lr is 'fast'; write [low, high]"),
        ("train.label_smoothing", {"choices": []}, "is an empty list of choices"),
        ("optim.lr", {"low": 0, "high": 1, "log": True}, "a log range needs low > 0"),
    ]
    for key, spec, expected in cases:
        with pytest.raises(ConfigError, match=re.escape(expected)):
            parse_range(key, spec)


def test_an_unset_learning_rate_is_the_strategy_default_and_is_recorded(tiny):
    """optim.lr left unset: each strategy's own measured default, written into the run's
    config.yaml and carried by its param groups; a set optim.lr wins."""
    import yaml

    from ftlab.assembly import resolve_config
    from ftlab.config import load_config
    from ftlab.strategies import strategy_class, strategy_names

    for name in strategy_names():
        config = resolve_config(load_config(None, [f"strategy.name={name}"]))
        assert config.optim.lr == strategy_class(name).default_lr, name
    assert resolve_config(load_config(None, ["strategy.name=bias", "optim.lr=0.5"])).optim.lr \
        == 0.5
    summary = ftlab.train(None, overrides=tiny(**{"strategy.name": "linear_probe",
                                                  "train.epochs": 1}))
    saved = yaml.safe_load((Path(summary["run_dir"]) / "config.yaml").read_text())
    assert saved["optim"]["lr"] == strategy_class("linear_probe").default_lr
    metrics = (Path(summary["run_dir"]) / "metrics.csv").read_text().splitlines()
    column = metrics[0].split(",").index(next(c for c in metrics[0].split(",")
                                              if c.startswith("lr/")))
    assert float(metrics[1].split(",")[column]) == strategy_class("linear_probe").default_lr
