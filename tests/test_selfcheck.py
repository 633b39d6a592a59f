"""The self-check of memory-efficient execution: every rule passes on this torch, and a rule
whose gradients or internals are broken is switched off with one warning while training
goes on with stock autograd's gradients for its pattern."""

from __future__ import annotations

import logging

import pytest
import timm  # noqa: F401  (loaded: the squeeze-excitation rule is checked too)
import torch
from torch import nn

from ftlab.efficient import (
    RULES,
    apply_memory_plan,
    checked_rules,
    planned_modules,
    remove_memory_plan,
    self_check,
)
from ftlab.efficient import functions, selfcheck
from ftlab.efficient.modules import FrozenConv2d


@pytest.fixture
def fresh_check(monkeypatch):
    """An empty cache for this test; the process's verdicts come back afterwards."""
    monkeypatch.setattr(selfcheck, "_CHECKED", {})


def test_every_rule_passes_its_check_against_stock_autograd(fresh_check, caplog):
    with caplog.at_level(logging.WARNING, logger="ftlab"):
        verdicts = self_check("cpu")
    assert list(verdicts) == list(RULES)
    assert [name for name, verdict in verdicts.items() if not verdict.passed] == []
    assert caplog.records == []
    assert checked_rules("cpu") == frozenset(RULES)


def test_the_check_runs_once_per_process_and_leaves_the_random_stream_alone(
        fresh_check, monkeypatch):
    state = torch.get_rng_state()
    self_check("cpu")
    assert torch.equal(torch.get_rng_state(), state)
    calls = []
    monkeypatch.setattr(selfcheck, "check_rule", lambda *a: calls.append(a))
    assert checked_rules("cpu") == frozenset(RULES)
    assert calls == []


def _model() -> nn.Module:
    """A frozen conv and BatchNorm with trained biases between two trained convs."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1),
                          nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).double()
    model[1].weight.requires_grad_(False)
    model[2].weight.requires_grad_(False)
    model[2].eval()
    return model


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model.zero_grad(set_to_none=True)
    model(x).logsumexp(1).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_a_wrong_gradient_switches_its_rule_and_those_built_on_it_off(
        fresh_check, monkeypatch, caplog):
    backward = functions.FrozenConv2dFunction.backward

    def skewed(ctx, grad):  # a torch change that alters the bias gradient by 0.1 %
        grads = list(backward(ctx, grad))
        grads[3] = grads[3] * 1.001 if grads[3] is not None else None
        return tuple(grads)

    monkeypatch.setattr(functions.FrozenConv2dFunction, "backward", staticmethod(skewed))
    model = _model()
    stock = _grads(model)
    with caplog.at_level(logging.WARNING, logger="ftlab"):
        plan = apply_memory_plan(model, probe_size=8)
    verdicts = self_check("cpu")
    assert "gradients differ from stock autograd's" in verdicts["frozen_conv"].reason
    assert verdicts["fold_norm"].reason == "it needs rule frozen_conv"
    assert {n for n, v in verdicts.items() if not v.passed} == {"frozen_conv", "fold_norm"}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and "rule frozen_conv is off with torch " \
        f"{torch.__version__} on cpu" in warnings[0]
    assert plan.frozen_convs == 0 and plan.shared_activations == 1 and plan.pools == 1
    assert not any(isinstance(m, FrozenConv2d) for _, m in planned_modules(model))
    planned = _grads(model)
    assert all(torch.allclose(planned[n], stock[n], rtol=0, atol=1e-12) for n in stock)
    remove_memory_plan(model)


def test_a_missing_op_switches_its_rule_off_and_training_goes_on(
        fresh_check, monkeypatch, caplog):
    """As if torch dropped the op the rule rebuilds a batch norm's output with: the rule
    raises in its check."""
    def missing(self, kept):
        raise AttributeError("'_OpNamespace' 'aten' object has no attribute 'batch_norm'")

    monkeypatch.setattr(functions.NormClamp, "normalized", missing)
    with caplog.at_level(logging.WARNING, logger="ftlab"):
        verdicts = self_check("cpu")
    assert {n for n, v in verdicts.items() if not v.passed} == {"relu_rebuild"}
    assert verdicts["relu_rebuild"].reason.startswith("AttributeError")
    assert [r.getMessage() for r in caplog.records][0].startswith(
        "memory-efficient execution: rule relu_rebuild is off")
    model = _model()
    model[2].train()  # a ReLU after a training BatchNorm: the rule's pattern
    stock = _grads(model)
    plan = apply_memory_plan(model, probe_size=8)
    assert plan.rebuilt_activations == 0 and plan.shared_activations == 1
    assert plan.frozen_convs == 1
    planned = _grads(model)
    assert all(torch.allclose(planned[n], stock[n], rtol=0, atol=1e-12) for n in stock)


def test_an_unrecognised_pattern_switches_its_rule_off(fresh_check, monkeypatch):
    """As if torch changed a node the MLP rule recognises its input by (the tagged norm
    output's `grad_fn`): the rule silently stops matching, which only the missing function
    in its pattern's graph shows."""
    from ftlab.efficient import recompute

    monkeypatch.setattr(recompute, "tag_of", lambda *args: None)
    verdict = self_check("cpu")["recompute_mlp"]
    assert not verdict.passed
    assert verdict.reason == "its pattern was not recognised: no RecomputedActivation"
