"""Run files are typed and versioned: files of ftlab 0.1 (tests/fixtures/release-0.1, made by
that release's code, see make_release_0_1.py) resume, report and diff; files of a newer
format_version are refused in one line; what this code writes carries its format_version."""

from __future__ import annotations

import csv
import functools
import json
import re
import shutil
from dataclasses import fields
from pathlib import Path

import pytest
import torch

import ftlab
import ftlab.models.factory
from fixtures.make_release_0_1 import tiny_mobilenet_v2
from ftlab.cli import main
from ftlab.errors import CheckpointError, NewerFormatError, RunDirError
from ftlab.runfiles import (
    Checkpoint,
    MemoryRecord,
    RunFolder,
    RunSummary,
    SuiteIndex,
    read_memory_csv,
    read_suite_index,
)
from ftlab.training.checkpoint import latest_checkpoint
from ftlab.training.loop import EpochTally

RELEASE = Path(__file__).parent / "fixtures" / "release-0.1"
TIME_COLUMNS = {"epoch_time_s", "train_time_s", "images_per_s"}


@pytest.fixture
def old(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the 0.1 fixture, and the small MobileNetV2 its run folders were trained with
    (in place of torchvision's, as when they were made)."""
    factory = ftlab.models.factory
    monkeypatch.setattr(factory, "get_model", tiny_mobilenet_v2)
    # Layouts are cached per architecture name; this one has another layout under that name,
    # so it gets a cache of its own for the test (and leaves none behind).
    monkeypatch.setattr(factory, "_layout", functools.cache(factory._layout.__wrapped__))
    copy = tmp_path / "release-0.1"
    shutil.copytree(RELEASE, copy)
    return copy


def _metrics(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [{k: float(v) for k, v in row.items() if k not in TIME_COLUMNS}
                for row in csv.DictReader(handle)]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ftlab: error: "), err
    return err[0]


def _set_version(path: Path, version: object) -> None:
    """Rewrite a run file as a file of another `format_version` would be."""
    if path.suffix == ".pt":
        values = torch.load(path, weights_only=True)
        torch.save({**values, "format_version": version}, path)
    elif path.suffix == ".json":
        path.write_text(json.dumps({**json.loads(path.read_text()), "format_version": version}))
    else:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[*rows[0], "format_version"])
            writer.writeheader()
            writer.writerows({**row, "format_version": version} for row in rows)


# --- files of ftlab 0.1 ---------------------------------------------------------------------

def test_the_fixture_is_release_0_1s_and_small():
    """No format_version anywhere: these are the files the old code wrote, kept small."""
    assert sum(p.stat().st_size for p in RELEASE.rglob("*") if p.is_file()) < 1_000_000
    checkpoint = torch.load(RELEASE / "run-stopped" / "last.pt", weights_only=True)
    assert "format_version" not in checkpoint and checkpoint["format"] == "ftlab-checkpoint/1"
    assert checkpoint["partial"]["epoch"] == 2 and checkpoint["epoch"] == 1
    for path in [*RELEASE.rglob("summary.json"), RELEASE / "suite" / "suite.json"]:
        assert "format_version" not in json.loads(path.read_text()), path
    assert "format_version" not in (RELEASE / "suite" / "memory" / "memory.csv").read_text()


def test_a_finished_0_1_run_trains_on_with_more_epochs(old):
    run = old / "run-finished"
    before = _metrics(run)
    assert main(["train", "--resume", str(run), "train.epochs=3"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["format_version"] == 2 and summary["epochs"] == 3  # rewritten by this code
    assert _metrics(run)[:2] == before and len(_metrics(run)) == 3
    checkpoint = torch.load(run / "last.pt", weights_only=True)
    assert checkpoint["format_version"] == 1 and checkpoint["epoch"] == 3
    assert "ftlab: resuming after epoch 2" in (run / "log.txt").read_text()


def test_a_0_1_run_stopped_mid_epoch_resumes_to_the_uninterrupted_result(old):
    """run-stopped is run-finished's config stopped after step 2 of epoch 2: the tally, random
    state and learning rates of its `partial` epoch must carry it on from there.

    What is portable between CPUs is asserted against the fixture: where the run resumes
    (epoch, step), what it keeps (epoch 1's row as written), the schedule's learning rate and
    the epoch's length. The weights it reaches are floats of this CPU (Adam turns last-bit
    differences in near-zero gradients into steps of up to lr, so run-finished's weights,
    made on another CPU, cannot be the reference): they must equal, bit for bit, a reference
    continued here from the same checkpoint, rewritten by this code as it upgrades a file."""
    stopped, finished = old / "run-stopped", old / "run-finished"
    reference = old / "run-stopped-upgraded"
    shutil.copytree(stopped, reference)
    state = torch.load(stopped / "last.pt", weights_only=True)
    upgraded = Checkpoint.from_dict(state, "last.pt").to_dict()
    assert set(upgraded) - set(state) == {"format_version"}, "0.1's layout is today's"
    assert set(state["partial"]["tally"]) == {f.name for f in fields(EpochTally)}
    torch.save(upgraded, reference / "last.pt")
    for run in (stopped, reference):
        assert main(["train", "--resume", str(run)]) == 0
        assert "ftlab: resuming in epoch 2 after step 2" in (run / "log.txt").read_text()

    got, want = (torch.load(run / "last.pt", weights_only=True) for run in (stopped, reference))
    assert (got["epoch"], got["partial"]) == (2, None)
    assert got["model"].keys() == want["model"].keys() == state["model"].keys()
    for key, tensor in want["model"].items():
        assert torch.equal(got["model"][key], tensor), key
    assert any(not torch.equal(got["model"][key], state["model"][key])
               for key in got["trainable"]), "the stopped epoch's last two steps trained"
    rows, written = _metrics(stopped), _metrics(finished)
    assert rows == _metrics(reference) and len(rows) == 2
    assert rows[0] == written[0], "epoch 1 as the fixture wrote it"
    assert rows[1]["lr/lr_x1"] == written[1]["lr/lr_x1"] == state["partial"]["lrs"]["lr/lr_x1"]
    assert rows[1]["skipped_steps"] == written[1]["skipped_steps"] == 0


def test_a_0_1_run_folder_reports(old, capsys):
    run = old / "run-finished"
    assert main(["report", str(run)]) == 0
    text = (run / "report" / "report.md").read_text()
    summary = json.loads((RELEASE / "run-finished" / "summary.json").read_text())
    assert f"| run-finished | complete | synthetic | full | 0 | 2 | " \
           f"{summary['best_val_top1']:.2f} | {summary['test_top1']:.2f} |" in text

    assert f"{summary['arch']}, weights {summary['weights']}" in text


def test_a_moved_0_1_suite_folder_reports_its_runs_and_memory_table(old):
    """The index names its runs by the absolute paths of the folder it was made in (gone):
    they are found in the folder where the suite is now."""
    suite = old / "suite"
    index = json.loads((suite / "suite.json").read_text())
    assert not Path(index["runs"][0]["run_dir"]).exists()
    assert read_suite_index(suite).runs[0].run_dir == str(suite / "runs" / "synth-full-s0")
    assert main(["report", str(suite)]) == 0
    text = (suite / "report" / "report.md").read_text()
    assert "2 runs, 2 complete, 0 failed" in text
    for name in ("synth-full-s0", "synth-linear_probe-s0"):
        summary = json.loads((suite / "runs" / name / "summary.json").read_text())
        assert f"| {name} | complete |" in text and f"{summary['test_top1']:.2f}" in text
    assert "## Training memory" in text
    memory = list(csv.DictReader(open(suite / "memory" / "memory.csv", newline="")))
    assert f"| bias | 2 | efficient | {int(memory[3]['activations_bytes']) / 2**20:,.1f} |" \
        in text


def test_0_1_run_folders_diff(old, capsys):
    out = old / "diff"
    assert main(["diff", str(old / "run-finished"), str(old / "run-stopped"), "--probe-size",
                 "8", "--output-dir", str(out)]) == 0
    written = json.loads((out / "diff.json").read_text())
    assert written["a"]["label"] == "run-finished" and written["a"]["arch"] == "mobilenet_v2"
    assert written["a"]["strategy"] == "full" and written["layers"]


# --- files of a newer ftlab -------------------------------------------------------------------

@pytest.mark.parametrize("command, file", [
    (["train", "--resume", "run-finished", "train.epochs=3"], "run-finished/last.pt"),
    (["train", "--resume", "run-stopped"], "run-stopped/last.pt"),
    (["diff", "run-finished", "run-stopped"], "run-finished/best.pt"),
    (["report", "run-finished"], "run-finished/summary.json"),
    (["report", "suite"], "suite/suite.json"),
    (["report", "suite"], "suite/runs/synth-full-s0/summary.json"),
    (["report", "suite"], "suite/memory/memory.csv"),
])
def test_a_file_from_a_newer_ftlab_is_refused_in_one_line(old, capsys, command, file):
    _set_version(old / file, 999)
    assert main([str(old / a) if (old / a).exists() else a for a in command]) == 2
    line = _one_error_line(capsys)
    assert f"{old / file} is a " in line and "format_version 999, written by a newer ftlab" in line
    current = 2 if file.endswith("summary.json") else 1
    assert f"reads format_version {current} at most: upgrade ftlab" in line


def test_a_newer_last_checkpoint_is_not_passed_over_for_previous(old):
    """A damaged last.pt falls back to previous.pt; one from the future must not."""
    run = old / "run-finished"
    shutil.copy(run / "last.pt", run / "previous.pt")
    _set_version(run / "last.pt", 2)
    with pytest.raises(NewerFormatError, match="format_version 2"):
        latest_checkpoint(run)
    (run / "last.pt").write_bytes(b"damaged")
    assert latest_checkpoint(run).epoch == 2


@pytest.mark.parametrize("version", ["two", 0, -1, True, 1.5])
def test_a_format_version_that_is_not_a_positive_integer_is_refused(old, version):
    path = old / "run-finished" / "summary.json"
    _set_version(path, version)
    with pytest.raises(RunDirError, match=r"summary.json is not a readable run summary: its "
                                          r"format_version .* is not a positive whole number"):
        RunFolder(path.parent).run_summary


# --- typed files ------------------------------------------------------------------------------

def test_a_damaged_file_names_the_file_and_the_key(old):
    summary = old / "run-finished" / "summary.json"
    values = json.loads(summary.read_text())
    summary.write_text(json.dumps({k: v for k, v in values.items() if k != "test_top1"}))
    with pytest.raises(RunDirError, match=rf"^{re.escape(str(summary))} is not a complete run "
                                          r"summary: it has no 'test_top1'"):
        RunFolder(summary.parent).run_summary
    with pytest.raises(RunDirError, match=r"its 'epochs' is str, not int"):
        RunSummary.from_dict({**values, "epochs": "two"}, summary)
    summary.write_text("{")
    with pytest.raises(RunDirError, match=r"summary.json cannot be read \(not JSON\)"):
        RunFolder(summary.parent).run_summary
    state = torch.load(old / "run-finished" / "last.pt", weights_only=True)
    with pytest.raises(CheckpointError, match=r"not a complete ftlab checkpoint: it has no "
                                              r"'optimizer'"):
        Checkpoint.from_dict({k: v for k, v in state.items() if k != "optimizer"}, "last.pt")
    with pytest.raises(CheckpointError, match="not an ftlab checkpoint"):
        Checkpoint.from_dict(state["model"], "weights.pt")


def test_0_1_files_read_into_the_current_format(old):
    checkpoint = Checkpoint.from_dict(torch.load(old / "run-stopped" / "last.pt",
                                                 weights_only=True), "last.pt")
    assert checkpoint.format_version == 1 and checkpoint.partial.tally["steps"] == 2
    again = Checkpoint.from_dict(checkpoint.to_dict(), "again")
    assert (again.partial.epoch, again.partial.tally, again.partial.lrs) == \
        (2, checkpoint.partial.tally, {"lr/lr_x1": pytest.approx(0.00095)})
    assert again.history == checkpoint.history and again.best == checkpoint.best
    index = read_suite_index(old / "suite")
    assert index.folder == str(old / "suite") and index.runs[0].numbers.epochs == 2
    assert SuiteIndex.from_dict(index.to_dict(), "again") == index
    records = read_memory_csv(old / "suite" / "memory" / "memory.csv")
    assert [(r.strategy, r.execution, r.batch_size) for r in records] == [
        ("full", "stock", 2), ("full", "efficient", 2), ("bias", "stock", 2),
        ("bias", "efficient", 2)]
    assert all(isinstance(r, MemoryRecord) and r.format_version == 1 for r in records)


def test_what_this_code_writes_carries_its_format_version(tiny, tmp_path):
    summary = ftlab.train(None, overrides=tiny(**{"train.epochs": 1}))
    run = Path(summary["run_dir"])
    assert summary["format_version"] == 2
    assert json.loads((run / "summary.json").read_text())["format_version"] == 2
    for name in ("last.pt", "best.pt"):
        state = torch.load(run / name, weights_only=True)
        assert (state["format"], state["format_version"]) == ("ftlab-checkpoint/1", 1)
    from ftlab.memory.report import measure_row, to_csv

    row = measure_row("mobilenet_v2", "bias", 2, 32, "stock")
    (tmp_path / "memory.csv").write_text(to_csv([row]))
    header, line = (tmp_path / "memory.csv").read_text().splitlines()
    assert header.split(",")[-1] == "format_version" and line.split(",")[-1] == "1"
    assert read_memory_csv(tmp_path / "memory.csv")[0].trainable_params == row.trainable_params


def test_a_suite_index_records_its_folder(tmp_path):
    from test_suite import write_suite

    from ftlab.suite import run_suite

    path = write_suite(tmp_path, grid={"strategies": {"linear_probe": []}, "seeds": [0]})
    result = run_suite(path, report=False)
    index = json.loads((result.root / "suite.json").read_text())
    assert index["format_version"] == 1 and index["folder"] == str(result.root)
    moved = tmp_path / "moved"
    shutil.move(result.root, moved)
    run = read_suite_index(moved).runs[0]
    assert run.run_dir == str(moved / "runs" / "linear_probe-s0")
    assert RunFolder(Path(run.run_dir)).run_summary.epochs == 2



def test_report_settings_are_read_typed_from_a_suite_file(old, tmp_path):
    from ftlab.runfiles import SCRATCH_VS_FINETUNE, ReportSettings, read_report_settings
    from ftlab.suite.schema import ReportConfig

    settings = read_report_settings(old / "suite")  # ftlab 0.1's suite.yaml
    assert settings == ReportSettings(
        title=None, compare=[], scratch_vs_finetune=["scratch", "full"], smoothing=0.0,
        overrides=settings.overrides)
    assert "train.epochs=2" in settings.overrides
    assert read_report_settings(tmp_path) == ReportSettings()  # a folder of run folders
    assert ReportConfig().scratch_vs_finetune == list(SCRATCH_VS_FINETUNE)
    suite = tmp_path / "suite.yaml"
    suite.write_text("overrides: [data.name=synthetic]\nreport:\n  title: T\n"
                     "  compare: [[full, bias]]\n  smoothing: 0.5\n"
                     "  scratch_vs_finetune: [scratch, bias]\n")
    assert read_report_settings(tmp_path) == ReportSettings(
        title="T", compare=[["full", "bias"]], scratch_vs_finetune=["scratch", "bias"],
        smoothing=0.5, overrides=["data.name=synthetic"])
    for bad in ("report: 3\n", "report:\n  smoothing: high\n", "report:\n  compare: [full]\n",
                "report:\n  scratch_vs_finetune: [scratch]\n", "overrides: [1]\n"):
        suite.write_text(bad)
        with pytest.raises(RunDirError, match="suite.yaml is not a readable suite file") as err:
            read_report_settings(tmp_path)
        assert "\n" not in str(err.value)
