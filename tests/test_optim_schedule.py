"""Optimizers on strategy param groups, and the schedule factors every group follows."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ftlab.config import OptimConfig, ScheduleConfig, StrategyConfig
from ftlab.models import build_model
from ftlab.strategies import get_strategy
from ftlab.assembly.optim import build_optimizer
from ftlab.assembly.schedule import build_scheduler, lr_factor


def _groups(optim: OptimConfig):
    built = build_model("mobilenet_v2", None, 3, pretrained=False)
    strategy = get_strategy(StrategyConfig(name="full"))
    strategy.prepare(built.model, built.adapter)
    return built.model, strategy.param_groups(built.model, built.adapter, optim)


def test_weight_decay_skips_norm_and_bias_when_asked():
    model, groups = _groups(OptimConfig(weight_decay=0.05))
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"lr_x1_decay", "lr_x1_no_decay"}
    decayed = set(by_name["lr_x1_decay"]["param_names"])
    assert by_name["lr_x1_decay"]["weight_decay"] == 0.05
    assert by_name["lr_x1_no_decay"]["weight_decay"] == 0.0
    assert "features.0.0.weight" in decayed and "classifier.1.weight" in decayed
    assert all(p.ndim > 1 for g in [by_name["lr_x1_decay"]] for p in g["params"])
    no_decay = set(by_name["lr_x1_no_decay"]["param_names"])
    assert {"features.0.1.weight", "features.0.1.bias", "classifier.1.bias"} <= no_decay
    assert decayed | no_decay == {n for n, _ in model.named_parameters()}
    _, single = _groups(OptimConfig(weight_decay=0.05, exclude_norm_bias_from_decay=False))
    assert len(single) == 1 and single[0]["weight_decay"] == 0.05


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                                       ("sgd", torch.optim.SGD)])
def test_optimizers_build_with_their_settings(name, cls):
    config = OptimConfig(name=name, lr=0.02, options={"momentum": 0.8, "nesterov": True,
                                                     "betas": (0.8, 0.99)})
    _, groups = _groups(config)
    optimizer = build_optimizer(groups, config)
    assert isinstance(optimizer, cls)
    assert all(g["lr"] == 0.02 for g in optimizer.param_groups)
    if name == "sgd":
        assert optimizer.defaults["momentum"] == 0.8 and optimizer.defaults["nesterov"]
    else:
        assert optimizer.defaults["betas"] == (0.8, 0.99)


def test_exponential_decays_once_per_epoch():
    factor = lr_factor(ScheduleConfig(name="exponential", options={"gamma": 0.5}), steps_per_epoch=10,
                       epochs=3)
    assert [factor(s) for s in (0, 9, 10, 19, 20, 29)] == [1, 1, 0.5, 0.5, 0.25, 0.25]


def test_step_and_constant():
    step = lr_factor(ScheduleConfig(name="step", options={"step_size": 2, "step_gamma": 0.1}), 5, 6)
    assert [step(s) for s in (0, 9, 10, 19, 20)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    constant = lr_factor(ScheduleConfig(name="constant"), 5, 6)
    assert {constant(s) for s in range(30)} == {1.0}


def test_cosine_ends_at_the_floor_and_warmup_is_linear():
    config = ScheduleConfig(name="cosine", options={"min_lr_factor": 0.1}, warmup_epochs=1.0,
                            warmup_start_factor=0.0)
    factor = lr_factor(config, steps_per_epoch=10, epochs=5)
    assert [factor(s) for s in (0, 5)] == pytest.approx([0.0, 0.5])  # warmup
    assert factor(10) == pytest.approx(1.0)                             # cosine starts
    assert factor(30) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factor(50) == pytest.approx(0.1)
    values = [factor(s) for s in range(10, 51)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_scheduler_keeps_absolute_group_ratios_and_resumes():
    params = [nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.SGD([{"params": [params[0]], "lr": 0.1},
                                 {"params": [params[1]], "lr": 0.04}], lr=0.1)
    scheduler = build_scheduler(optimizer, ScheduleConfig(name="exponential", options={"gamma": 0.5}), 2, 4)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.025, 0.01])
    state = scheduler.state_dict()
    fresh = torch.optim.SGD([{"params": [params[0]], "lr": 0.1},
                             {"params": [params[1]], "lr": 0.04}], lr=0.1)
    fresh.load_state_dict(optimizer.state_dict())
    resumed = build_scheduler(fresh, ScheduleConfig(name="exponential", options={"gamma": 0.5}), 2, 4)
    resumed.load_state_dict(state)
    fresh.step()
    resumed.step()
    optimizer.step()
    scheduler.step()
    assert [g["lr"] for g in fresh.param_groups] == [g["lr"] for g in optimizer.param_groups]
