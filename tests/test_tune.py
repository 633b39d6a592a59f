"""Search spaces of `ftlab tune`: a strategy's own, changed by the suite, checked."""

from __future__ import annotations

import re

import pytest

from ftlab.config.search import FloatRange, IntRange
from ftlab.errors import ConfigError
from ftlab.tune import describe, overrides_for, strategy_space


def test_a_strategy_space_is_its_declaration_changed_by_the_suite():
    assert strategy_space("bias") == {"optim.lr": FloatRange(1e-4, 3e-2, log=True)}
    space = strategy_space("last_k", {"optim.weight_decay": {"low": 1e-6, "high": 1e-2,
                                                             "log": True}},
                           {"strategy.k": [1, 4], "optim.lr": None, "optim.momentum": [0.8, 0.99]})
    assert space == {"strategy.k": IntRange(1, 4),
                     "optim.weight_decay": FloatRange(1e-6, 1e-2, log=True),
                     "optim.momentum": FloatRange(0.8, 0.99)}
    assert describe(space)["strategy.k"] == {"kind": "IntRange", "low": 1, "high": 4, "step": 1}


@pytest.mark.parametrize("strategy, change, message", [
    ("full", {"strategy.k": [1, 4]}, "tune.space: strategy.k is not a hyperparameter of "
                                     "strategy 'full' (its options: none)"),
    ("tinytl", {"strategy.kk": [1, 4]}, "tune.space: strategy.kk is not a hyperparameter of "
                                        "strategy 'tinytl' (its options: variant, n_groups"),
    ("full", {"optim.lrr": [1e-4, 1e-2]}, "tune.space: optim.lrr is not a config key"),
    ("full", {"train.seed": [0, 9]}, "tune.space: train.seed cannot be searched"),
    ("full", {"optim.lr": [1e-2, 1e-4]}, "search range of optim.lr is inverted"),
    ("full", {"optim.lr": None}, "the search space of full is empty"),
])
def test_bad_spaces_are_one_line(strategy, change, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        strategy_space(strategy, change)


def test_drawn_values_become_overrides_that_load():
    from ftlab.config import load_config

    overrides = overrides_for({"optim.lr": 0.00123, "strategy.k": 4, "data.hflip": False,
                               "data.train_crop_scale": [0.35, 1.0]})
    assert overrides == ["optim.lr=0.00123", "strategy.k=4", "data.hflip=false",
                         "data.train_crop_scale=[0.35, 1.0]"]
    config = load_config(None, ["strategy.name=last_k", *overrides])
    assert (config.optim.lr, config.strategy.options["k"], config.data.hflip,
            config.data.train_crop_scale) == (0.00123, 4, False, (0.35, 1.0))


def test_intervals_over_seeds_and_paired_differences():
    from ftlab.stats import mean_interval, paired_difference, t95

    interval = mean_interval([1.0, 2.0, 3.0])  # sd 1, se 1/sqrt(3), t(2) = 4.303
    assert interval.mean == 2.0 and interval.half_width == pytest.approx(4.303 / 3 ** 0.5)
    assert interval.format(2) == "2.00 ± 2.48" and interval.covers(4.4) \
        and not interval.covers(4.5)
    assert mean_interval([5.0]).half_width is None and mean_interval([5.0]).covers(100.0)
    assert (t95(1), t95(22), t95(1000)) == (12.706, 2.086, 1.960)  # 22: next smaller, 20
    best = {0: 90.0, 1: 91.0, 2: 92.0}
    close = {0: 89.0, 1: 90.5, 2: 91.0, 7: 50.0}  # seed 7 has no pair and is left out
    gap = paired_difference(best, close)  # differences 1, 0.5, 1
    assert gap.n == 3 and gap.mean == pytest.approx(5 / 6) and not gap.covers(0.0)
    noisy = paired_difference(best, {0: 91.0, 1: 89.0, 2: 92.5})  # -1, 2, -0.5
    assert noisy.covers(0.0)  # not distinguishable at this budget
    with pytest.raises(ValueError, match="share no seed"):
        paired_difference(best, {5: 1.0})


def _result(label, by_seed, memory, seconds=10.0):
    from ftlab.report.compare import StrategyResult
    from ftlab.stats import mean_interval

    return StrategyResult(dataset="d", label=label, test=mean_interval(list(by_seed.values())),
                          by_seed=by_seed, memory_mib=memory, stock_mib=None,
                          epoch_time_s=seconds)


def test_strategies_against_the_best_the_pareto_front_and_the_recommendation():
    from ftlab.report.compare import against_best, pareto, recommendation

    full = _result("full", {0: 90.0, 1: 91.0, 2: 92.0}, 1000.0, seconds=30.0)
    tinytl = _result("tinytl", {0: 89.5, 1: 90.9, 2: 91.2}, 200.0)  # a real gap? no: noisy
    bias = _result("bias", {0: 80.0, 1: 81.0, 2: 82.0}, 150.0, seconds=5.0)  # 10 points below
    probe = _result("linear_probe", {0: 79.0, 1: 80.0}, 300.0)  # dearer and worse than bias
    rows = {v.result.label: v for v in against_best([bias, probe, tinytl, full])}
    assert rows["full"].verdict == "best"
    assert rows["tinytl"].verdict == "not distinguishable at this budget"
    assert rows["tinytl"].difference.mean == pytest.approx((-0.5 - 0.1 - 0.8) / 3)
    assert rows["bias"].verdict == "worse" and rows["bias"].difference.mean == -10.0
    assert rows["linear_probe"].difference.n == 2  # the two seeds it shares with full
    assert [r.label for r in pareto([full, tinytl, bias, probe], "memory_mib")] == \
        ["bias", "tinytl", "full"]
    assert [r.label for r in pareto([full, tinytl, bias, probe], "epoch_time_s")] == \
        ["bias", "tinytl", "full"]
    lines = recommendation([full, tinytl, bias, probe])
    assert lines[0].startswith("best overall: full 91.0 ± 2.5 % test top-1 at 1,000 MiB")
    assert lines[1] == "within 25% of its memory: tinytl 90.5 ± 2.3 % at 200 MiB (20%)"
    assert lines[2] == "cheapest within 1 point of it: tinytl 90.5 ± 2.3 % at 200 MiB"
    assert lines[3] == "not distinguishable at this budget from full: tinytl"
    assert lines[4] == ("Pareto-optimal in accuracy and memory: bias (81.0 % at 150 MiB), "
                        "tinytl (90.5 % at 200 MiB), full (91.0 % at 1,000 MiB)")
