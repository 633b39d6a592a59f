"""The tuning journal after a crash and under damage: a torn last record is cut off and the
search goes on with every complete trial; damage inside is refused, the file untouched;
storage paths that cannot hold a journal are refused before anything is opened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="ftlab tune needs the tune extra (optuna)")

from optuna.storages.journal import JournalStorage  # noqa: E402
from test_tune_search import _suite  # noqa: E402

from ftlab.cli import main  # noqa: E402
from ftlab.errors import ConfigError  # noqa: E402
from ftlab.tune.journal import DAMAGED_SUFFIX, JournalFile  # noqa: E402


def _journal_with_trials(path: Path, trials: int = 4) -> bytes:
    """A journal written by Optuna through ftlab's backend: one study, `trials` trials."""
    study = optuna.create_study(study_name="s", storage=JournalStorage(JournalFile(path)))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=trials)
    return path.read_bytes()


def _complete(path: Path) -> list[tuple[int, float]]:
    study = optuna.load_study(study_name="s", storage=JournalStorage(JournalFile(path)))
    return [(t.number, t.value) for t in study.get_trials() if t.state.is_finished()]


@pytest.mark.parametrize("damage", ["torn mid-line", "cut to half", "random bytes appended"])
def test_a_torn_tail_is_cut_off_and_every_complete_record_kept(tmp_path, damage, caplog,
                                                               fault_rng, reliability):
    path = tmp_path / "journal.log"
    whole = _journal_with_trials(path)
    trials = _complete(path)
    last = len(whole.splitlines(keepends=True)[-1])
    damaged = {"torn mid-line": lambda: whole[:-fault_rng.randint(2, last - 1)],
               "cut to half": lambda: whole[:len(whole) // 2],
               "random bytes appended": lambda: whole + fault_rng.randbytes(200)}[damage]()
    path.write_bytes(damaged)
    with caplog.at_level("WARNING", logger="ftlab"):
        survived = _complete(path)
    complete = whole[:whole.rfind(b"\n", 0, len(damaged) + 1) + 1]  # up to the last newline
    assert path.read_bytes() == (whole if damage == "random bytes appended" else complete)
    assert survived == trials[:len(survived)] and len(survived) >= 1
    if damage == "random bytes appended":
        assert survived == trials
    elif damage == "torn mid-line":  # the torn record was the last trial's end
        assert len(survived) == len(trials) - 1
    copies = list(tmp_path.glob(f"journal.log{DAMAGED_SUFFIX}*"))
    assert len(copies) == 1 and copies[0].read_bytes() == damaged
    warning = [r.getMessage() for r in caplog.records if "torn record" in r.getMessage()]
    assert len(warning) == 1 and f"({len(damaged) - len(path.read_bytes())} bytes" in warning[0]
    _complete(path)  # repaired: opened again without another copy
    assert len(list(tmp_path.glob(f"journal.log{DAMAGED_SUFFIX}*"))) == 1
    reliability.inputs("tuning journal with a torn tail (mid-line, half, random bytes)",
                       "tail cut off with one warning, complete records kept, copy kept")


def test_damage_inside_the_journal_is_refused_and_the_file_untouched(tmp_path, capsys,
                                                                     reliability):
    path = tmp_path / "journal.log"
    whole = _journal_with_trials(path)
    first = whole.index(b"\n") + 1
    damaged = whole[:first] + b'{"op_code":\xff garbage\n' + whole[first:]
    path.write_bytes(damaged)
    with pytest.raises(ConfigError, match=rf"tune journal {path} is damaged at byte {first} "):
        JournalFile(path)
    assert path.read_bytes() == damaged and not list(tmp_path.glob(f"*{DAMAGED_SUFFIX}*"))
    suite = _suite(tmp_path, grid=("bias",), seeds=[0], trials=1, storage=str(path))
    assert main(["tune", str(suite), "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"is damaged at byte {first} of {len(damaged)}" in err[0], err
    assert path.read_bytes() == damaged
    reliability.inputs("tuning journal damaged inside (complete records after a bad line)",
                       "refused: exit 2, one line naming the file and byte offset, untouched")


def test_storage_that_cannot_hold_a_journal_is_refused_before_anything_opens(tmp_path,
                                                                            capsys,
                                                                            reliability):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    locked = tmp_path / "read-only"
    locked.mkdir()
    locked.chmod(0o555)
    cases = {str(folder): "is a folder", str(fifo): "is not a regular file",
             str(locked / "journal.log"): "cannot be written"}
    if os.geteuid() == 0:  # root writes anywhere: the permission case cannot be made
        cases.pop(str(locked / "journal.log"))
    for storage, message in cases.items():
        suite = _suite(tmp_path, grid=("bias",), seeds=[0], trials=1, storage=storage)
        assert main(["tune", str(suite), "--no-report"]) == 2  # a FIFO would hang here
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"journal file {storage}" in err[0] and message in err[0], err
        assert not (tmp_path / "out" / "t" / "tune").exists() or \
            not list((tmp_path / "out" / "t" / "tune").rglob("trial-*"))
    reliability.inputs("tune.storage naming a folder, a FIFO or a read-only folder",
                       "refused: exit 2, one line, nothing opened", len(cases))


def test_a_tune_killed_while_writing_its_journal_loses_and_repeats_no_trial(
        tmp_path, fault_rng, reliability, monkeypatch):
    """SIGKILL half-way through a journal write (the `journal_write` failpoint), then the
    same `ftlab tune` again: the torn record is cut off, and every trial that had ended
    stays ended with its value; the search ends with its trials, each run folder once."""
    hit = fault_rng.randint(6, 16)  # past the study's creation, within the trials
    path = _suite(tmp_path, grid=("full",), seeds=[0], trials=3)
    tune_dir = tmp_path / "out" / "t" / "tune"
    env = {**os.environ, "FTLAB_FAILPOINTS": f"journal_write={hit}:KILL"}
    killed = subprocess.run([sys.executable, "-m", "ftlab", "tune", str(path), "--no-report"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    journal = tune_dir / "journal.log"
    assert not journal.read_bytes().endswith(b"\n"), "killed half-way through a record"
    storage = JournalStorage(JournalFile(journal))  # repairs, as the next tune does
    before = {t.number: (t.state, t.value, t.user_attrs.get("run"))
              for t in optuna.load_study(study_name="t/full", storage=storage).get_trials()
              if t.state.is_finished()}

    import ftlab.suite  # the final run's step memory is not what this is about

    monkeypatch.setattr(ftlab.suite, "run_memory_step", lambda suite, states: None)
    assert main(["tune", str(path), "--no-report"]) == 0
    study = optuna.load_study(study_name="t/full", storage=JournalStorage(JournalFile(journal)))
    trials = study.get_trials()
    for number, ended in before.items():
        assert (trials[number].state, trials[number].value,
                trials[number].user_attrs.get("run")) == ended, number
    done = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                             optuna.trial.TrialState.PRUNED)]
    runs = [t.user_attrs.get("run") for t in done]
    assert len(done) == 3 and len(set(runs)) == 3
    assert sorted(p.name for p in (tune_dir / "full").glob("trial-*")) == sorted(runs)
    assert len(list(tune_dir.glob(f"journal.log{DAMAGED_SUFFIX}*"))) == 1
    reliability.fault("SIGKILL to `ftlab tune`", f"half-way through journal write #{hit} "
                      "(seed-drawn)", "torn record cut off with a warning; rerun completed",
                      "trials ended before the kill unchanged (state, value, run folder); "
                      "3 trials, each run folder once")
