"""Suites end to end on generated data: runs, failures, continuation, kill and resume, the
index, plots checked through their data, and a report whose numbers are the runs'."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ftlab.cli import main
from ftlab.errors import ConfigError
from ftlab.report import build_report, plot_runs
from ftlab.runfiles import RunFolder
from ftlab.suite import run_suite
from ftlab.suite.expand import expand, load_suite

COMMON = ["data.name=synthetic", "data.synthetic.train_per_class=8",
          "data.synthetic.test_per_class=4", "data.val_fraction=0.25", "data.resolution=32",
          "data.num_workers=0", "model.weights=none", "train.epochs=2", "train.batch_size=8",
          "train.tensorboard=false", "train.num_threads=1", "train.progress=plain"]


def write_suite(folder: Path, **sections) -> Path:
    suite = {"name": "tiny", "output_dir": str(folder / "out"), "overrides": COMMON,
             "grid": {"datasets": {"synth": []},
                      "strategies": {"full": [], "linear_probe": [], "scratch": []},
                      "seeds": [0, 1]},
             **sections}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_grid_expansion_names_and_overrides(tmp_path):
    path = write_suite(tmp_path, grid={"datasets": {"a": ["data.name=synthetic"]},
                                       "strategies": {"full": [], "lk": ["strategy.name=last_k",
                                                                         "strategy.k=2"]},
                                       "variants": {"fast": ["optim.lr=1e-2"]}, "seeds": [3]})
    specs = expand(load_suite(path), path)
    assert [s.name for s in specs] == ["a-full-fast-s3", "a-lk-fast-s3"]
    assert "strategy.name=full" in specs[0].overrides
    assert "strategy.name=lk" not in specs[1].overrides and "strategy.k=2" in specs[1].overrides
    assert specs[1].overrides[-2:] == (f"train.output_dir={tmp_path / 'out' / 'tiny' / 'runs'}",
                                       "train.run_name=a-lk-fast-s3")


def test_bad_suites_are_refused_before_anything_runs(tmp_path, capsys):
    path = write_suite(tmp_path, runs=[{"name": "bad", "overrides": ["optim.lr=-1"]}])
    assert main(["suite", str(path)]) == 2
    assert capsys.readouterr().err == ("ftlab: error: run bad: optim.lr=-1.0 is not allowed: a "
                                       "finite number in (0, 10]\n")
    assert not (tmp_path / "out").exists()
    unknown = write_suite(tmp_path, paralel=2)
    with pytest.raises(ConfigError, match="unknown config key 'paralel'"):
        load_suite(unknown)
    twice = write_suite(tmp_path, runs=[{"name": "synth-full-s0"}])
    with pytest.raises(ConfigError, match="two runs of the suite are named 'synth-full-s0'"):
        expand(load_suite(twice), twice)


def test_suite_end_to_end_with_a_failure_a_continuation_and_the_report(tmp_path, capsys):
    path = write_suite(tmp_path, parallel=2, runs=[
        {"name": "broken", "overrides": ["data.name=imagefolder", "data.root=/nowhere"]},
        {"name": "synth-scratch-more", "continue_from": "synth-scratch-s0",
         "overrides": ["strategy.name=scratch", "train.epochs=3"]}],
        memory={"strategies": ["full", "bias"], "batch_sizes": [2], "resolution": 32},
        analysis=[{"name": "full-vs-scratch", "a": "synth-full-s0", "b": "synth-scratch-s0"}],
        evaluations=[{"name": "full-on-val", "target": "synth-full-s0", "split": "val"}])
    result = run_suite(path)
    root = tmp_path / "out" / "tiny"
    assert result.failed == ["broken"]
    index = json.loads((root / "suite.json").read_text())
    status = {row["name"]: row for row in index["runs"]}
    assert len(status) == 8
    assert "data.root /nowhere is not a folder" in status["broken"]["error"]
    assert Path(status["broken"]["log"]).is_file()
    for name, row in status.items():
        if name != "broken":
            assert row["status"] == "complete", name
            summary = RunFolder(Path(row["run_dir"])).summary
            assert row["test_top1"] == summary["test_top1"]
    more = RunFolder(root / "runs" / "synth-scratch-more")
    source = RunFolder(root / "runs" / "synth-scratch-s0")
    assert more.summary["epochs"] == 3 and source.summary["epochs"] == 2
    assert [r["train_loss"] for r in more.metrics[:2]] == [r["train_loss"] for r in source.metrics]
    assert (root / "suite.csv").read_text().count("\n") == 9
    assert (root / "memory" / "memory.csv").is_file()
    _check_report(root, result.report)


def _check_report(root: Path, paths) -> None:
    markdown, html = paths
    text = markdown.read_text()
    for section in ("## Settings", "## Results", "## Strategy comparison", "## Training memory",
                    "## Architecture and activation memory per block",
                    "## Training from scratch vs fine-tuning", "## Parameter analysis", "## Runs"):
        assert section in text
    assert "](../analysis/full-vs-scratch/layers.png)" in text
    runs = {row["name"]: RunFolder(Path(row["run_dir"]))
            for row in json.loads((root / "suite.json").read_text())["runs"]}
    for name, folder in runs.items():
        assert f"| {name} |" in text
        if folder.complete:
            s = folder.summary
            assert re.search(rf"\| {name} \| complete \|[^\n]*\| {s['best_val_top1']:.2f} \| "
                             rf"{s['test_top1']:.2f} \|", text), name
    # The results row of full: mean ± 95 % CI over the two seeds (t with 1 degree of
    # freedom: 12.706 standard errors), from the summaries.
    values = [runs[f"synth-full-s{i}"].summary["test_top1"] for i in (0, 1)]
    from statistics import fmean, stdev

    half = 12.706 * stdev(values) / 2 ** 0.5  # either rounding, should it sit on a boundary
    assert any(f"{fmean(values):.2f} ± {h:.2f}" in text for h in (half - 1e-9, half + 1e-9))
    figure = json.loads((root / "report" / "figures" /
                         "compare-synth-full-linear_probe-scratch.json").read_text())
    val = figure["panels"][0]
    assert val["metric"] == "val_top1" and len(val["curves"]) == 3
    full = next(c for c in val["curves"] if c["label"] == "full")
    seeds = [runs[f"synth-full-s{i}"].series("val_top1")[1] for i in (0, 1)]
    assert full["values"] == pytest.approx([fmean(v) for v in zip(*seeds)])
    scratch = json.loads((root / "report" / "figures" / "scratch-synth.json").read_text())
    labels = {c["label"]: len(c["epochs"]) for c in scratch["panels"][0]["curves"]}
    assert labels == {"full": 2, "scratch": 2, "scratch (synth-scratch-more)": 3}
    # The trade-off figures: each strategy's mean over seeds against its measured step memory
    # (train_memory.csv, as executed), the Pareto front marked.
    pareto = json.loads((root / "report" / "figures" / "pareto-memory-synth.json").read_text())
    points = {p["label"]: p for p in pareto["points"]}
    assert points["full"]["test_top1"] == pytest.approx(fmean(values))
    memory = runs["synth-full-s0"].train_memory["efficient"]
    assert memory.batch_size == 8 and runs["synth-full-s0"].step_memory("efficient") > 0
    assert points["full"]["cost"] == pytest.approx(
        fmean(runs[f"synth-full-s{i}"].step_memory("efficient") for i in (0, 1)) / 2**20)
    cheapest = min(points.values(), key=lambda p: p["cost"])
    assert cheapest["pareto"] and "## Which strategy" in text and "best overall: " in text
    # The evaluations entry: ftlab eval of a suite run, its top-1 a row of the results table.
    evaluated = json.loads((root / "evaluations" / "full-on-val" / "eval.json").read_text())
    assert evaluated["top1"] == runs["synth-full-s0"].summary["best_val_top1"]
    assert (f"| synthetic | full-on-val (evaluated, val split) | eval | – | – | "
            f"{evaluated['top1']:.2f} |") in text
    # Each strategy's architecture (its first run's architecture.json, written by the suite).
    blocks = json.loads((runs["synth-full-s0"].path / "architecture.json").read_text())
    assert blocks["batch_size"] == 8 and blocks["resolution"] == 32
    assert "![mobilenet_v2 · linear_probe · batch 8 at 32 px]" in text
    page = html.read_text()
    assert page.count('src="data:image/png;base64,') == 6 + 3 and "<table>" in page


def test_submitit_local_executor(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setattr("ftlab.suite.run_memory_step", lambda *args: None)  # not about it
    path = write_suite(tmp_path, executor="submitit", submitit={"cluster": "local",
                                                                "timeout_min": 10},
                       grid={"strategies": {"linear_probe": []}, "seeds": [0, 1]},
                       runs=[{"name": "broken", "overrides": ["data.name=imagefolder",
                                                              "data.root=/nowhere"]}])
    result = run_suite(path, report=False)
    assert result.failed == ["broken"]
    assert result.states["linear_probe-s0"].status == "complete"
    assert RunFolder(tmp_path / "out" / "tiny" / "runs" / "linear_probe-s1").complete
    assert list((tmp_path / "out" / "tiny" / "submitit").iterdir())


def test_plot_draws_exactly_the_runs_metrics(tiny, tmp_path, capsys):
    import ftlab

    runs = [Path(ftlab.train(None, overrides=tiny(**{"train.epochs": 3, "train.seed": seed,
                                                     "train.run_name": f"r{seed}"}))["run_dir"])
            for seed in (0, 1)]
    figure, paths = plot_runs(runs, ["val_top1", "train_loss"], tmp_path / "plots" / "curves",
                              labels=["first", "second"], title="two seeds")
    assert [p.suffix for p in paths] == [".png", ".svg", ".json"]
    assert all(p.stat().st_size > 0 for p in paths)
    axes = figure.axes
    assert len(axes) == 2 and figure.get_suptitle() == "two seeds"
    for ax, metric in zip(axes, ["val_top1", "train_loss"]):
        assert [line.get_label() for line in ax.get_lines()] == ["first", "second"]
        for line, run in zip(ax.get_lines(), runs):
            epochs, values = RunFolder(run).series(metric)
            assert list(line.get_xdata()) == epochs and list(line.get_ydata()) == values
    smoothed, _ = plot_runs(runs[:1], ["train_loss"], tmp_path / "smooth", smoothing=0.6)
    raw = RunFolder(runs[0]).series("train_loss")[1]
    drawn = list(smoothed.axes[0].get_lines()[0].get_ydata())
    assert drawn[0] == pytest.approx(raw[0])
    assert drawn[1] == pytest.approx((0.6 * 0.4 * raw[0] + 0.4 * raw[1]) / (1 - 0.36))
    assert main(["plot", str(runs[0]), "--output", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli.png").is_file()
    assert main(["plot", str(tmp_path)]) == 2
    assert "is not an ftlab run folder" in capsys.readouterr().err


def test_report_of_plain_run_folders(tiny, tmp_path):
    import ftlab

    for strategy in ("full", "scratch"):
        ftlab.train(None, overrides=tiny(**{"strategy.name": strategy, "train.epochs": 1}))
    markdown, html = build_report(tmp_path / "runs")
    text = markdown.read_text()
    assert "| synthetic | full | 1/1 |" in text and "| synthetic | scratch | 1/1 |" in text
    assert "## Training from scratch vs fine-tuning" in text and html.is_file()


def test_suite_analysis_entries_set_the_probe_size_and_k(tmp_path):
    from ftlab.suite.expand import load_suite

    path = tmp_path / "suite.yaml"
    path.write_text("runs: [{name: a}, {name: b}]\nanalysis:\n"
                    "  - {name: ab, a: a, b: b, probe_size: 16, k: 4}\n  - {name: ba, a: b, b: a}\n",
                    encoding="utf-8")
    first, second = load_suite(path).analysis
    assert (first.probe_size, first.k) == (16, 4) and (second.probe_size, second.k) == (64, 8)
    with pytest.raises(ConfigError, match="analysis.k=0 is not allowed"):
        load_suite(path, ["analysis=[{name: x, a: a, b: b, k: 0}]"])


def test_suite_analysis_settings_reach_the_diff(tmp_path, monkeypatch):
    """Each entry is `ftlab diff`'s DiffConfig, with runs of the suite named by their folders;
    `probe_dataset` (the earlier name of `probe`) still works."""
    import ftlab.analysis
    from ftlab.config import DiffConfig
    from ftlab.suite import analysis_step
    from ftlab.suite.expand import RunSpec
    from ftlab.suite.state import RunState

    path = tmp_path / "suite.yaml"
    path.write_text("runs: [{name: a}, {name: b}]\nanalysis:\n"
                    "  - {name: ab, a: a, b: b, ref: 'pretrained:IMAGENET1K_V1', "
                    "probe_dataset: b, probe_size: 16, k: 4}\n"
                    "  - {name: ba, a: b, b: /elsewhere/best.pt, probe: a}\n", encoding="utf-8")
    from ftlab.config import load_config

    one_epoch = load_config(None, ["train.epochs=1"])
    states = {name: RunState(RunSpec(name, None, ()), tmp_path / name, tmp_path / "log",
                             one_epoch, status="complete") for name in "ab"}
    calls = []
    monkeypatch.setattr(ftlab.analysis, "diff", lambda config, out: calls.append((config, out)))
    analysis_step(load_suite(path), tmp_path, states)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert all(isinstance(config, DiffConfig) for config, _ in calls)
    assert [(c.a, c.b, c.ref, c.probe, c.probe_size, c.k, out) for c, out in calls] == [
        (a, b, "pretrained:IMAGENET1K_V1", b, 16, 4, tmp_path / "analysis" / "ab"),
        (b, "/elsewhere/best.pt", None, a, 64, 8, tmp_path / "analysis" / "ba")]
    with pytest.raises(ConfigError, match="analysis.probe_size=0 is not allowed"):
        load_suite(path, ["analysis=[{name: x, a: a, b: b, probe_size: 0}]"])
    with pytest.raises(ConfigError, match="analysis.name='../x' is not allowed"):
        load_suite(path, ["analysis=[{name: ../x, a: a, b: b}]"])


def test_runs_start_from_their_written_config_keeping_the_threads_it_sets(tmp_path,
                                                                          monkeypatch):
    """Each run's resolved config is written before any run starts and is all `ftlab train`
    gets. With parallel=2, threads and workers the base config sets are kept; only unset
    ones get the CPU share (here 4 CPUs / 2 runs: 2 threads, 1 worker)."""
    import os
    import sys

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr("ftlab.suite.run_memory_step", lambda *args: None)  # not about it
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"train": {"num_threads": 1}, "data": {"num_workers": 0}}))
    tiny = [o for o in COMMON if not o.startswith(("train.num_threads", "data.num_workers"))]
    path = write_suite(tmp_path, base=str(base), parallel=2, overrides=tiny,
                       grid={"strategies": {"linear_probe": []}, "seeds": [0]},
                       runs=[{"name": "unset", "overrides": [
                           "strategy.name=linear_probe", "train.epochs=1",
                           "train.num_threads=null", "data.num_workers=null"]}])
    result = run_suite(path, report=False)
    assert not result.failed
    for name, (threads, workers) in {"linear_probe-s0": (1, 0), "unset": (2, 1)}.items():
        state = result.states[name]
        config = yaml.safe_load((state.run_dir / "config.yaml").read_text())  # as trained
        assert (config["train"]["num_threads"], config["data"]["num_workers"]) == (threads,
                                                                                 workers)
        command = state.log.read_text().splitlines()[0]
        assert command == f"$ {sys.executable} -m ftlab train {state.run_dir / 'config.yaml'}"


def test_written_configs_and_the_commands_that_start_or_resume_them(tmp_path, monkeypatch):
    """Not started: `ftlab train RUN/config.yaml`. Started: --resume with the run's own
    settings (epochs, name, folder, threads), which --resume accepts and parses back exactly;
    a suite run again rewrites the config of runs not started, never of started ones."""
    import ftlab.suite as suite_module
    from ftlab.config import load_config
    from ftlab.suite.expand import OWN_SETTINGS
    from ftlab.suite.state import train_command
    from ftlab.training.api import RESUMABLE_KEYS

    assert set(OWN_SETTINGS) <= RESUMABLE_KEYS  # what a suite passes, --resume accepts

    monkeypatch.setattr(suite_module, "run_states", lambda *args: None)
    monkeypatch.setattr(suite_module, "memory_step", lambda *args: None)
    path = write_suite(tmp_path, grid={"strategies": {"full": []}, "seeds": [0, 1]})
    states = run_suite(path, report=False).states
    first, second = states["full-s0"], states["full-s1"]
    for state in (first, second):
        assert load_config(state.run_dir / "config.yaml") == state.config
        assert train_command(state)[3:] == ["train", str(state.run_dir / "config.yaml")]
    (first.run_dir / "metrics.csv").write_text("epoch\n")  # it has started
    (first.run_dir / "config.yaml").write_text("as trained\n")
    command = train_command(first)
    assert command[3:6] == ["train", "--resume", str(first.run_dir)]
    resumed = load_config(None, command[6:])
    assert (resumed.train.epochs, resumed.train.run_name, resumed.train.output_dir,
            resumed.train.num_threads) == (2, "full-s0", str(tmp_path / "out" / "tiny" / "runs"),
                                           1)
    path.write_text(path.read_text().replace("train.epochs=2", "train.epochs=3"))
    states = run_suite(path, report=False).states
    assert (first.run_dir / "config.yaml").read_text() == "as trained\n"
    assert load_config(second.run_dir / "config.yaml").train.epochs == 3
    assert "train.epochs=3" in train_command(states["full-s0"])


def test_a_continued_run_is_its_source_under_its_own_name_copied_once(tmp_path):
    from ftlab.config import config_to_dict
    from ftlab.suite.expand import validate
    from ftlab.suite.state import initial_states, ready_to_start

    path = write_suite(tmp_path, runs=[{"name": "more", "continue_from": "synth-scratch-s1",
                                        "overrides": ["train.epochs=3"]}])
    specs = expand(load_suite(path), path)
    configs = validate(specs)
    more, source = config_to_dict(configs["more"]), config_to_dict(configs["synth-scratch-s1"])
    assert more["train"].pop("epochs") == 3 and source["train"].pop("epochs") == 2
    assert more["train"].pop("run_name") == "more"
    source["train"].pop("run_name")
    assert more == source  # strategy scratch and seed 1, from the source; not its defaults
    root = tmp_path / "out" / "tiny"
    states = initial_states(specs, configs, root)
    target, origin = states["more"].run_dir, states["synth-scratch-s1"].run_dir
    assert not ready_to_start(states["more"], states)  # the source has not finished
    origin.mkdir(parents=True)
    for name in ("config.yaml", "metrics.csv", "last.pt", "summary.json"):
        (origin / name).write_text(name)
    states["synth-scratch-s1"].status = "complete"
    target.mkdir(parents=True)
    (target / "config.yaml").write_text("written when the suite was expanded")
    stale = root / "runs" / ".more.copying"  # a copy cut short by a kill
    stale.mkdir()
    (stale / "half").write_text("")
    assert ready_to_start(states["more"], states)
    assert sorted(p.name for p in target.iterdir()) == ["config.yaml", "last.pt", "metrics.csv"]
    assert (target / "config.yaml").read_text() == "config.yaml" and not stale.exists()
    (target / "last.pt").write_text("trained on")
    assert ready_to_start(states["more"], states)
    assert (target / "last.pt").read_text() == "trained on"  # copied once, never again
