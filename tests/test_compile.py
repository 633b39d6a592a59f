"""`train.compile` with memory-efficient execution: a real torch.compile once (inductor, on
CPU, in its own process and cache folder): the gradients, every rewrite engaged and the
layers between compiled; and the eager fallback when compiling fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import ftlab
from ftlab.assembly.compiled import CompiledOrEager, compiler_error

# One step of a small network covering the plan's rewrites, in float64: stock autograd, and
# the planned copy through ftlab's compile wrapper. Printed as one JSON line.
CHILD = textwrap.dedent("""
    import json, torch
    from torch import nn
    from ftlab.assembly.compiled import CompiledOrEager
    from ftlab.efficient import apply_memory_plan, self_check
    from ftlab.efficient.owned import OWNER

    torch.manual_seed(0)

    def network():
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(inplace=True),  # frozen
            nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
            nn.Conv2d(8, 8, 1), nn.SiLU(), nn.AvgPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).double()

    def freeze(model):
        for p in model[0].parameters():
            p.requires_grad_(False)
        model[1].eval()
        model[1].weight.requires_grad_(False)
        return model

    stock = freeze(network())
    planned = freeze(network())
    planned.load_state_dict(stock.state_dict())
    plan = apply_memory_plan(planned, probe_size=8)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])

    def gradients(model, call):
        out = call(x)
        nn.functional.cross_entropy(out, y).backward()
        return out, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    def nodes(out):  # the backward graph's nodes: ftlab's functions by name, others by class
        seen, found, stack = set(), set(), [out.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            owner = made_by_node(node)
            found.add(owner.__name__ if owner is not None else type(node).__name__)
            stack.extend(next_node for next_node, _ in node.next_functions)
        return sorted(found)

    def made_by_node(node):
        return getattr(node, OWNER, None)

    _, expected = gradients(stock, stock)
    compiled = CompiledOrEager(planned)
    out, got = gradients(planned, compiled)
    print(json.dumps({
        "plan": plan.describe(), "failed": compiled.failed, "nodes": nodes(out),
        "rules_off": sorted(v.rule for v in self_check().values() if not v.passed),
        "names_equal": sorted(expected) == sorted(got),
        "max_error": max((expected[n] - got[n]).abs().max().item() for n in expected),
        "scale": max(g.abs().max().item() for g in expected.values())}))
""")

ENGAGED = ("FrozenConv2dFunction", "NormClampFunction", "SharedClampFunction",
           "KeptInputActivation", "RecomputedInputConvFunction", "BlockAvgPoolFunction",
           "GlobalAvgPoolFunction")
"""The plan's functions for CHILD's network: a rule that did not engage under compile, or
that the self-check switched off, is missing."""


def test_memory_efficient_execution_under_a_real_torch_compile(tmp_path):
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"),
           "TORCHINDUCTOR_COMPILE_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                            env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "1 frozen convs keep no input (1 with their BatchNorm folded in)" in report["plan"]
    assert "1 rebuild their input" in report["plan"] and "2 average pools" in report["plan"]
    assert report["rules_off"] == []  # the self-check passed every rule
    # ftlab's functions run (eagerly, at graph breaks: they read autograd nodes at run time)
    assert set(ENGAGED) <= set(report["nodes"]), report["nodes"]
    if report["failed"] is not None:  # no working compiler here: the eager fallback, said so
        assert "train.compile: torch.compile failed" in result.stderr
    else:  # the stock layers between them were compiled
        assert "CompiledFunctionBackward" in report["nodes"], report["nodes"]
    assert report["names_equal"]
    assert report["max_error"] <= 1e-10 * report["scale"]  # float64: equal up to round-off


def _compile_failing_with(monkeypatch, error: Exception) -> None:
    def stand_in(model):
        def compiled(*args, **kwargs):
            raise error
        return compiled

    monkeypatch.setattr(torch, "compile", stand_in)


def test_a_compiler_failure_falls_back_to_eager_with_one_warning(tiny, monkeypatch):
    from torch._dynamo.exc import BackendCompilerFailed

    eager = ftlab.train(None, overrides=tiny(**{"train.run_name": "eager"}))
    failure = BackendCompilerFailed(lambda *a: None, RuntimeError("no C++ compiler found\nmore"),
                                    None)
    assert compiler_error(failure) and not compiler_error(ValueError("shapes"))
    _compile_failing_with(monkeypatch, failure)
    fallen = ftlab.train(None, overrides=tiny(**{"train.run_name": "fallen",
                                                 "train.compile": True}))
    log = (Path(fallen["run_dir"]) / "log.txt").read_text().splitlines()
    warnings = [line.partition(" train.compile")[2] for line in log if "train.compile" in line]
    assert warnings == [": torch.compile failed (BackendCompilerFailed, "
                        "RuntimeError: no C++ compiler found); training goes on without "
                        "compiling, with the same gradients"]
    assert (fallen["test_top1"], fallen["test_loss"]) == (eager["test_top1"], eager["test_loss"])


def test_an_error_of_the_model_itself_is_not_taken_for_a_compiler_failure(tiny, monkeypatch):
    _compile_failing_with(monkeypatch, ValueError("the model's own error"))
    model = CompiledOrEager(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="the model's own error"):
        model(torch.zeros(1, 2))
    assert model.failed is None
