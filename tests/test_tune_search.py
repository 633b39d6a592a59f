"""`ftlab tune`: studies in a journal, trials as run folders that never see test data,
pruning, workers sharing one journal, a killed search continuing, final runs, and bad input.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna", reason="ftlab tune needs the tune extra (optuna)")

from ftlab.cli import main  # noqa: E402
from ftlab.fileio import exclusive_lock  # noqa: E402
from ftlab.runfiles import read_study_record, read_suite_index  # noqa: E402

RUN = {"data.name": "synthetic", "data.synthetic.num_classes": 4,
       "data.synthetic.train_per_class": 10, "data.synthetic.test_per_class": 4,
       "data.synthetic.image_size": 32, "data.val_fraction": 0.2, "data.resolution": 32,
       "data.num_workers": 0, "model.weights": "none", "train.epochs": 2,
       "train.batch_size": 8, "train.progress": "none", "train.tensorboard": False,
       "train.num_threads": 1}


def _suite(tmp_path: Path, name: str = "t", grid=("full", "bias"), run=None, **tune) -> Path:
    values = {**RUN, **(run or {})}
    suite = {"name": name, "output_dir": str(tmp_path / "out"),
             "overrides": [f"{k}={v}" for k, v in values.items()],
             "grid": {"strategies": {s: [] for s in grid}},
             "tune": {"trials": 3, "seeds": [0, 1], **tune}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


@pytest.fixture(autouse=True)
def _no_step_memory(monkeypatch) -> None:
    """A tuned suite's final runs are suite runs (`ftlab.suite.run_specs`), whose step
    memory (train_memory.csv, a few seconds a setting) test_suite's end-to-end test checks;
    these tests are about the search and skip measuring it in this process."""
    import ftlab.suite

    monkeypatch.setattr(ftlab.suite, "run_memory_step", lambda suite, states: None)


def _trials(storage: Path, study: str) -> list:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    loaded = optuna.load_study(study_name=study,
                               storage=JournalStorage(JournalFileBackend(str(storage))))
    return loaded.get_trials()


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ftlab: error: "), err
    return err[0]


def test_tune_searches_each_strategy_on_validation_and_tests_only_the_final_runs(tmp_path):
    path = _suite(tmp_path, refit="train")
    assert main(["tune", str(path), "--no-report"]) == 0
    root = tmp_path / "out" / "t"
    for strategy in ("full", "bias"):
        record = read_study_record(root / "tune" / strategy / "study.json")
        assert [t.number for t in record.trials] == [0, 1, 2]
        assert record.best is not None and record.best.state == "complete"
        assert set(record.space) == {"optim.lr"} and record.epochs == 2
        for trial in record.trials:  # each trial is a run folder that never saw test data
            summary = json.loads((root / "tune" / strategy / trial.run / "summary.json")
                                 .read_text())
            assert summary["test_top1"] is None and summary["best_val_top1"] == trial.value
            assert summary["status"] == trial.state
        best_lr = record.best.params["optim.lr"]
        for seed in (0, 1):  # the final runs: the best setting, both seeds, tested
            final = root / "runs" / f"{strategy}-s{seed}"
            config = yaml.safe_load((final / "config.yaml").read_text())
            assert config["optim"]["lr"] == best_lr
            assert (config["train"]["seed"], config["data"]["split_seed"]) == (seed, seed)
            assert config["train"]["evaluate_test"] is True
            assert json.loads((final / "summary.json").read_text())["test_top1"] is not None
    index = read_suite_index(root)
    assert sorted(r.name for r in index.runs) == ["bias-s0", "bias-s1", "full-s0", "full-s1"]
    journal = root / "tune" / "journal.log"
    before = journal.read_bytes()
    assert main(["tune", str(path), "--no-report"]) == 0  # done: nothing runs again
    assert len(_trials(journal, "t/full")) == 3 and len(_trials(journal, "t/bias")) == 3
    assert json.loads((root / "runs" / "full-s0" / "summary.json").read_text())["epochs"] == 2
    assert journal.read_bytes()[:len(before)] == before


def test_refit_trains_the_final_runs_on_every_labelled_image_and_chooses_nothing(tmp_path):
    path = _suite(tmp_path, grid=("bias",), run={"train.epochs": 3}, trials=2, seeds=[0],
                  pruner="none")
    assert main(["tune", str(path), "--no-report"]) == 0
    root = tmp_path / "out" / "t"
    record = read_study_record(root / "tune" / "bias" / "study.json")
    best = record.best
    trial = json.loads((root / "tune" / "bias" / best.run / "summary.json").read_text())
    assert trial["test_top1"] is None  # the search never read the test split
    assert record.refit == "train+val" and record.final_epochs == best.best_epoch
    assert best.best_epoch == trial["best_epoch"]
    final = root / "runs" / "bias-s0"
    config = yaml.safe_load((final / "config.yaml").read_text())
    summary = json.loads((final / "summary.json").read_text())
    trial_config = yaml.safe_load((root / "tune" / "bias" / best.run / "config.yaml").read_text())
    assert config["data"]["val_fraction"] == 0 and config["train"]["epochs"] == best.best_epoch
    assert config["data"]["augment"] == trial_config["data"]["augment"]  # not re-chosen
    sizes = trial["split_sizes"]
    assert summary["split_sizes"] == {"train": sizes["train"] + sizes["val"], "val": 0,
                                      "test": 16}
    # No validation image can choose anything: there is no validation split, every epoch's
    # val columns are empty, and test evaluates the last epoch's checkpoint.
    rows = (final / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 1 + best.best_epoch
    assert all(row.split(",")[header.index("val_top1")] == "" for row in rows[1:])
    assert summary["test_checkpoint"] == "last.pt" and summary["best_val_top1"] is None
    # The final run is reproducible from its config.yaml alone.
    again = tmp_path / "again"
    assert main(["train", str(final / "config.yaml"), f"train.output_dir={again}"]) == 0
    rerun = json.loads((again / "bias-s0" / "summary.json").read_text())
    assert (rerun["test_top1"], rerun["test_loss"]) == (summary["test_top1"],
                                                        summary["test_loss"])


def test_pruned_trials_stop_early_and_the_record_counts_the_epochs_saved(tmp_path,
                                                                          monkeypatch):
    """Successive halving through the trainer's epoch hook. Each trial reports minus its
    number instead of its validation top-1 (which on tiny random data ties at chance, never
    prunes, and is a float of this CPU that one image more would change): every trial after
    the first is worse at the first rung and is pruned there."""
    import ftlab.tune.trial as trial_life

    def report(self, row):
        self.trial.report(-float(self.trial.number), int(row["epoch"]))
        return self.trial.should_prune()

    monkeypatch.setattr(trial_life.Reporter, "__call__", report)
    path = _suite(tmp_path, grid=("full",), seeds=[0], trials=4, run={"train.epochs": 3})
    assert main(["tune", str(path), "--no-report"]) == 0
    record = read_study_record(tmp_path / "out" / "t" / "tune" / "full" / "study.json")
    assert [t.state for t in record.trials] == ["complete", "pruned", "pruned", "pruned"]
    assert [t.epochs for t in record.trials] == [3, 1, 1, 1]
    assert (record.epochs_trained, record.epochs_without_pruning) == (6, 12)
    for trial in record.trials[1:]:
        summary = json.loads((tmp_path / "out" / "t" / "tune" / "full" / trial.run /
                              "summary.json").read_text())
        assert (summary["status"], summary["epochs"], summary["epochs_planned"]) == \
            ("pruned", 1, 3)
        assert len((tmp_path / "out" / "t" / "tune" / "full" / trial.run / "metrics.csv")
                   .read_text().splitlines()) == 2  # a header and epoch 1: nothing after


def test_two_workers_share_one_journal_without_losing_or_repeating_a_trial(tmp_path):
    path = _suite(tmp_path, grid=("full",), trials=5, seeds=[0])
    assert main(["tune", str(path), "parallel=2", "--no-report"]) == 0
    root = tmp_path / "out" / "t"
    logs = [(root / "logs" / f"tune-worker-{i}.log").read_text() for i in (0, 1)]
    assert all("tune full: trial" in text for text in logs)  # both workers ran trials
    trials = _trials(root / "tune" / "journal.log", "t/full")
    ended = [t for t in trials if t.state.is_finished() and t.user_attrs.get("error") is None]
    assert len(ended) == 5 and sorted(t.number for t in ended) == list(range(5))
    runs = [t.user_attrs["run"] for t in ended]
    assert len(set(runs)) == 5  # one run folder per trial
    for run in runs:
        summary = json.loads((root / "tune" / "full" / run / "summary.json").read_text())
        assert summary["status"] in ("complete", "pruned")
    assert len(read_study_record(root / "tune" / "full" / "study.json").trials) == 5


def test_a_killed_tune_continues_where_it_stopped(tmp_path):
    """SIGTERM in the middle of the second trial (ftlab's train_step failpoint: each trial
    trains 3 epochs of 4 steps in the tune process, so step 18 is its epoch 2, step 2)."""
    path = _suite(tmp_path, grid=("full",), seeds=[0], run={"train.epochs": 3})
    study = tmp_path / "out" / "t" / "tune" / "full"
    command = [sys.executable, "-m", "ftlab", "tune", str(path), "--no-report"]
    process = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, timeout=300,
                             env={**os.environ, "FTLAB_FAILPOINTS": "train_step=18:TERM"})
    err = process.stderr
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "run the same ftlab tune command again" in err.strip().splitlines()[-1]
    assert (study / "trial-0001" / "last.pt").is_file()
    finished = (study / "trial-0000" / "summary.json").read_bytes()
    assert main(["tune", str(path), "--no-report"]) == 0
    assert (study / "trial-0000" / "summary.json").read_bytes() == finished  # not repeated
    log = (study / "trial-0001" / "log.txt").read_text()
    assert "ftlab: resuming in epoch" in log or "ftlab: resuming after epoch" in log
    record = read_study_record(study / "study.json")
    ended = [t for t in record.trials if t.state in ("complete", "pruned")]
    assert len(ended) == 3 and [t.run for t in ended].count("trial-0001") == 1
    stopped = [t for t in record.trials if t.state == "fail"]
    assert len(stopped) == 1 and stopped[0].error == "stopped by a signal"
    assert sorted(p.name for p in study.glob("trial-*")) == \
        sorted(t.run for t in ended)  # the stopped trial resumed its folder: no new one


def test_grid_search_runs_every_choice_once(tmp_path):
    path = _suite(tmp_path, grid=("bias",), seeds=[0], trials=10, sampler="grid",
                  pruner="none", space={"optim.lr": {"choices": [0.001, 0.01]},
                                        "data.train_crop_scale": {"choices": [[0.5, 1.0]]}})
    assert main(["tune", str(path), "--no-report"]) == 0
    record = read_study_record(tmp_path / "out" / "t" / "tune" / "bias" / "study.json")
    assert sorted(t.params["optim.lr"] for t in record.trials) == [0.001, 0.01]
    assert all(t.params["data.train_crop_scale"] == [0.5, 1.0] for t in record.trials)
    config = yaml.safe_load((tmp_path / "out" / "t" / "runs" / "bias-s0" / "config.yaml")
                            .read_text())
    assert config["data"]["train_crop_scale"] == [0.5, 1.0]


@pytest.mark.parametrize("tune, message", [
    ({"space": {"optim.lr": [0.1, 0.001]}}, "search range of optim.lr is inverted"),
    ({"space": {"optim.lr": [0.01, 0.01]}}, "search range of optim.lr is empty"),
    ({"strategies": {"bias": {"space": {"strategy.k": [1, 3]}}}},
     "strategy.k is not a hyperparameter of strategy 'bias'"),
    ({"storage": "postgresql://me:secret@127.0.0.1:1/nowhere"},
     "tune.storage postgresql://me:***@127.0.0.1:1/nowhere cannot be used"),
    ({"storage": "sqlite:////nonexistent-folder/x/study.db"}, "cannot be used"),
    ({"sampler": "grid"}, "tune.sampler=grid needs a list of values for optim.lr"),
    ({"seeds": [1, 1]}, "tune.seeds"),
])
def test_bad_tune_settings_are_one_line_and_write_nothing(tmp_path, capsys, tune, message):
    path = _suite(tmp_path, **tune)
    assert main(["tune", str(path)]) == 2
    line = _one_line(capsys)
    assert message in line and "secret" not in line
    assert not (tmp_path / "out").exists()


def test_a_study_of_another_suite_or_space_is_refused(tmp_path, capsys):
    journal = tmp_path / "shared.log"
    first = _suite(tmp_path, name="a", grid=("bias",), seeds=[0], trials=1,
                   storage=str(journal))
    assert main(["tune", str(first), "--no-report"]) == 0
    capsys.readouterr()
    other = _suite(tmp_path, name="a", grid=("bias",), seeds=[0], trials=1,
                   storage=str(journal), space={"optim.lr": [0.001, 0.1]})
    before = journal.read_bytes()
    assert main(["tune", str(other), "--no-report"]) == 2
    assert "study a/bias in tune.storage was searched over another space" in _one_line(capsys)
    assert journal.read_bytes() == before, "a refusal writes nothing"
    longer = _suite(tmp_path, name="a", grid=("bias",), seeds=[0], trials=1,
                    storage=str(journal), run={"train.epochs": 3})
    assert main(["tune", str(longer), "--no-report"]) == 2
    assert "was run with train.epochs=2, this suite sets 3" in _one_line(capsys)


def test_a_second_tune_on_the_same_suite_folder_refuses(tmp_path, capsys):
    path = _suite(tmp_path)
    tune_dir = tmp_path / "out" / "t" / "tune"
    tune_dir.mkdir(parents=True)
    with exclusive_lock(tune_dir / ".lock"):
        # another process's lock: flock locks belong to open files, so this one conflicts
        assert subprocess.run([sys.executable, "-m", "ftlab", "tune", str(path)],
                              capture_output=True, text=True).returncode == 2
    assert main(["suite", str(path)]) == 2
    assert "has a tune: section; run it with ftlab tune" in _one_line(capsys)


def test_suites_with_seeds_or_variants_are_not_tuned(tmp_path, capsys):
    path = _suite(tmp_path)
    suite = yaml.safe_load(path.read_text())
    suite["grid"]["seeds"] = [0, 1]
    path.write_text(yaml.safe_dump(suite))
    assert main(["tune", str(path)]) == 2
    assert "grid.seeds cannot be used with ftlab tune" in _one_line(capsys)


def test_a_storage_url_holds_the_study(tmp_path):
    """Any Optuna storage URL (a database server in practice; SQLite here) instead of the
    journal: the trials land there and nothing in the suite folder stands in for it."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    path = _suite(tmp_path, grid=("bias",), seeds=[0], trials=2, storage=url)
    assert main(["tune", str(path), "--no-report"]) == 0
    study = optuna.load_study(study_name="t/bias", storage=url)
    assert len(study.get_trials()) == 2 and study.best_trial.number in (0, 1)
    assert not (tmp_path / "out" / "t" / "tune" / "journal.log").exists()
    record = read_study_record(tmp_path / "out" / "t" / "tune" / "bias" / "study.json")
    assert record.best.number == study.best_trial.number


def test_submitit_jobs_are_tuning_workers(tmp_path):
    """executor: submitit sends `parallel` worker jobs (here submitit's local cluster) that
    share the suite's journal; the final runs follow through the same executor."""
    pytest.importorskip("submitit")
    path = _suite(tmp_path, grid=("linear_probe",), seeds=[0], trials=3)
    suite = yaml.safe_load(path.read_text())
    suite.update(executor="submitit", parallel=2,
                 submitit={"cluster": "local", "timeout_min": 10})
    path.write_text(yaml.safe_dump(suite))
    assert main(["tune", str(path), "--no-report"]) == 0
    root = tmp_path / "out" / "t"
    logs = [(root / "logs" / f"tune-worker-{i}.log").read_text() for i in (0, 1)]
    assert all("--worker" in text for text in logs)
    started = [re.findall(r"tune linear_probe: trial (\d+) optim", text) for text in logs]
    assert sorted(int(n) for found in started for n in found) == [0, 1, 2]  # all in the jobs
    record = read_study_record(root / "tune" / "linear_probe" / "study.json")
    assert sorted(t.number for t in record.trials) == [0, 1, 2]
    assert json.loads((root / "runs" / "linear_probe-s0" / "summary.json").read_text()
                      )["test_top1"] is not None
    assert list((root / "submitit").iterdir())


def test_refit_final_runs_take_the_best_trials_best_epoch_and_its_augmentation(tmp_path):
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from ftlab.config import load_config
    from ftlab.tune.schema import TuneConfig
    from ftlab.tune.final import final_specs, study_record
    from ftlab.tune.plan import build_plans, load_tuned_suite

    path = _suite(tmp_path, grid=("full",), run={"train.epochs": 5})
    plan = build_plans(load_tuned_suite(path, []), path)[0]
    study = optuna.create_study(direction="maximize")
    lr = FloatDistribution(1e-5, 3e-3, log=True)
    for value, curve in ((55.0, {1: 40.0, 2: 55.0, 3: 55.0, 4: 50.0, 5: 45.0}),
                         (50.0, {1: 30.0, 2: 40.0, 3: 45.0, 4: 48.0, 5: 50.0})):
        study.add_trial(create_trial(params={"optim.lr": 1e-3}, distributions={"optim.lr": lr},
                                     value=value, intermediate_values=curve))
    for refit, epochs, val_fraction in (("train+val", 2, 0.0), ("train", 5, 0.2)):
        tune = TuneConfig(refit=refit, seeds=[3])
        record = study_record(study, plan, tune)
        assert record.best.best_epoch == 2 and record.final_epochs == epochs  # first of a tie
        [spec] = final_specs([plan], {plan.name: record}, tune, tmp_path / "runs")
        config = load_config(spec.base, list(spec.overrides))
        assert (config.train.epochs, config.data.val_fraction) == (epochs, val_fraction)
        # the trials' augmentation (auto chose it for 5 epochs), not auto's for 2
        assert config.data.augment == plan.config.data.augment != "auto"
