"""The strategy base: registry, freezing, param groups with absolute lrs, norm statistics."""

from __future__ import annotations

import pytest
import torch

from ftlab.config import OptimConfig, StrategyConfig
from ftlab.errors import ConfigError
from ftlab.models import build_model, count_parameters
from ftlab.strategies import ParamInfo, Strategy, get_strategy, register_strategy, strategy_names
from ftlab.strategies.base import STRATEGIES


class HeadAtDoubleLr(Strategy):
    """Test strategy: only the last block and the head train, the head at twice the lr."""

    name = "test_head_double"
    summary = "test"

    def is_trainable(self, param: ParamInfo) -> bool:
        return param.block >= param.num_blocks - 1

    def lr_multiplier(self, param: ParamInfo) -> float:
        return 2.0 if param.is_head else 1.0


@pytest.fixture
def custom():
    register_strategy(HeadAtDoubleLr)
    yield get_strategy(StrategyConfig(name=HeadAtDoubleLr.name))
    STRATEGIES.unregister(HeadAtDoubleLr.name)


def _mobilenet():
    built = build_model("mobilenet_v2", None, 5, pretrained=False)
    return built.model, built.adapter


@pytest.mark.parametrize("name", strategy_names())
def test_every_registered_strategy_prepares_and_steps(name):
    model, adapter = _mobilenet()
    strategy = get_strategy(StrategyConfig(name=name))
    trainable = strategy.prepare(model, adapter)
    assert trainable and strategy.summary
    groups = strategy.param_groups(model, adapter, OptimConfig())
    assert sum(len(g["params"]) for g in groups) == len(trainable)
    strategy.set_train_mode(model)
    optimizer = torch.optim.Adam(groups)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()


def test_full_trains_everything_and_scratch_starts_random():
    assert get_strategy(StrategyConfig(name="full")).pretrained
    assert not get_strategy(StrategyConfig(name="scratch")).pretrained
    model, adapter = _mobilenet()
    names = get_strategy(StrategyConfig(name="full")).prepare(model, adapter)
    assert names == [n for n, _ in model.named_parameters()]


def test_registry_rejects_duplicates_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        register_strategy(type("Again", (Strategy,), {"name": "full", "summary": "x"}))
    with pytest.raises(ConfigError, match="strategy.name='nope' is unknown"):
        get_strategy(StrategyConfig(name="nope"))


def test_frozen_parameters_and_absolute_group_lrs(custom):
    model, adapter = _mobilenet()
    trainable = custom.prepare(model, adapter)
    assert all(n.startswith(("features.18.", "classifier.1.")) for n in trainable)
    frozen = [p for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and count_parameters(model)[0] < count_parameters(model)[1]
    groups = custom.param_groups(model, adapter, OptimConfig(lr=0.01))
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs == {"lr_x2": pytest.approx(0.02), "lr_x1": pytest.approx(0.01)}
    head_group = next(g for g in groups if g["name"] == "lr_x2")
    assert head_group["param_names"] == ["classifier.1.weight", "classifier.1.bias"]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    custom.set_train_mode(model)
    optimizer = torch.optim.Adam(groups)  # steps of ~lr whatever the gradient's scale
    model(torch.randn(4, 3, 32, 32)).logsumexp(1).sum().backward()
    optimizer.step()
    for name, param in model.named_parameters():
        changed = not torch.equal(before[name], param)
        assert changed == param.requires_grad, name


def test_frozen_norm_layers_keep_their_statistics(custom):
    model, adapter = _mobilenet()
    custom.prepare(model, adapter)
    custom.set_train_mode(model)
    frozen_bn = model.features[1].conv[0][1]
    trained_bn = model.features[18][1]
    assert not frozen_bn.training and trained_bn.training
    stats = frozen_bn.running_mean.clone()
    model(torch.randn(4, 3, 32, 32))
    assert torch.equal(frozen_bn.running_mean, stats)


def test_a_strategy_that_trains_nothing_is_an_error():
    class Nothing(Strategy):
        name = "nothing"
        summary = "x"

        def is_trainable(self, param):
            return False

    model, adapter = _mobilenet()
    with pytest.raises(ConfigError, match="leaves no parameter to train"):
        Nothing(StrategyConfig(name="nothing")).prepare(model, adapter)
