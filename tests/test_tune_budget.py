"""tune.memory_budget: trials whose training step does not fit are recorded, not run, and
the recommendation names the most accurate strategy within the budget."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip("optuna", reason="ftlab tune needs the tune extra (optuna)")

from ftlab.cli import main  # noqa: E402
from ftlab.config import load_config  # noqa: E402
from ftlab.memory.probe import experiment_step_peak  # noqa: E402
from ftlab.runfiles import read_report_settings, read_study_record  # noqa: E402

from test_tune_search import RUN as SEARCH_RUN  # noqa: E402

RUN = {**SEARCH_RUN, "train.epochs": 1}


def _peak(strategy: str) -> int:
    config = load_config(None, [f"{k}={v}" for k, v in RUN.items()]
                         + [f"strategy.name={strategy}"])
    return experiment_step_peak(config, 4, torch.device("cpu"))


def test_trials_over_the_budget_are_recorded_not_run_and_the_answer_keeps_within_it(
        tmp_path, monkeypatch):
    """full's step needs more than the budget (set between the strategies' own measured
    peaks, on this machine); bias and sparse_update fit."""
    import ftlab.tune.budget

    peaks = {name: _peak(name) for name in ("full", "bias", "sparse_update")}
    assert peaks["full"] > max(peaks["bias"], peaks["sparse_update"])
    budget_kib = (peaks["full"] + max(peaks["bias"], peaks["sparse_update"])) // 2 // 1024
    measured = []
    real = ftlab.tune.budget.experiment_step_peak
    monkeypatch.setattr(ftlab.tune.budget, "experiment_step_peak",
                        lambda *a: measured.append(a[0].strategy.name) or real(*a))
    suite = {"name": "b", "output_dir": str(tmp_path / "out"),
             "overrides": [f"{k}={v}" for k, v in RUN.items()],
             "grid": {"strategies": {"full": [], "bias": [], "sparse_update": []}},
             "tune": {"trials": 2, "seeds": [0], "memory_budget": f"{budget_kib}KiB"}}
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(suite))
    assert main(["tune", str(path), "--no-report"]) == 0
    root = tmp_path / "out" / "b"
    full = read_study_record(root / "tune" / "full" / "study.json")
    assert [t.state for t in full.trials] == ["pruned", "pruned"] and full.best is None
    for trial in full.trials:
        assert trial.error.startswith("over the memory budget: its training step needs")
        assert trial.step_peak_bytes == peaks["full"] and trial.epochs == 0
        assert not (root / "tune" / "full" / f"trial-{trial.number:04d}").exists()
    bias = read_study_record(root / "tune" / "bias" / "study.json")
    assert bias.best is not None and bias.best.step_peak_bytes == peaks["bias"]
    assert sorted(measured) == ["bias", "full", "sparse_update"]  # once each: lr is not memory
    assert not (root / "runs" / "full-s0").exists() and (root / "runs" / "bias-s0").is_dir()
    assert read_report_settings(root).memory_budget == f"{budget_kib}KiB"
    from ftlab.report import recommendations

    lines = recommendations(root)["synthetic"]
    assert lines[0].startswith(f"most accurate within {budget_kib}KiB: ")
    assert lines[0].split(": ")[1].split()[0] in ("bias", "sparse_update")


@pytest.mark.parametrize("budget", ["512MB", "0.5GiB", "-1"])
def test_an_unparseable_budget_is_one_line_before_anything_runs(tmp_path, capsys, budget):
    suite = {"name": "b", "output_dir": str(tmp_path / "out"),
             "overrides": [f"{k}={v}" for k, v in RUN.items()],
             "grid": {"strategies": {"bias": []}},
             "tune": {"trials": 1, "seeds": [0], "memory_budget": budget}}
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(suite))
    assert main(["tune", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tune.memory_budget=" in err[0]
    assert not (tmp_path / "out").exists()
