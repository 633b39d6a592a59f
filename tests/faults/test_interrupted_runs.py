"""Runs and suites killed or stopped at random moments end as an uninterrupted run would.

Each case starts `ftlab train` in a subprocess with a failpoint (ftlab.faults) that sends
SIGKILL or SIGTERM at a randomly drawn hit of one place: a training step, an evaluation
batch, an atomic file write (between fsync and rename, e.g. mid-checkpoint) or the end of an
epoch. It then does what a user would (resume, or start again if the run never got as far
as its config) until the run is complete, and compares the final weights, metrics and test
result with an uninterrupted run, in deterministic CPU mode.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import tiny_overrides
from test_suite import write_suite

from faults.records import WRITE_ENV
from faults.runs import RUN, VERIFIED, assert_same_result, finish, ftlab_train
from ftlab.suite import run_suite

POINTS = {"train_step": 12, "eval_batch": 10, "atomic_write": 8, "epoch_end": 2}
"""How often each failpoint is hit at least in a RUN (the draw stays within)."""
SIGNALS = ("KILL", "TERM")
CASES = ([(point, sig) for point in POINTS for sig in SIGNALS]
         if os.environ.get(WRITE_ENV) == "1" else
         [(point, SIGNALS[i % 2]) for i, point in enumerate(POINTS)]) + [("train_step", "INT")]
"""Every failpoint with every signal for RELIABILITY.md (`make reliability`); in the default
suite, every failpoint once and every signal at least once (a run killed or stopped at one
point does not depend on how it was stopped at another), which keeps `make test` within
its time."""


@pytest.mark.parametrize("point, sig", CASES)
def test_interrupted_run_resumes_to_the_clean_result(tmp_path, clean, fault_rng, reliability,
                                                     point, sig):
    hit = fault_rng.randint(1, POINTS[point])
    overrides = tiny_overrides(tmp_path / "runs", **RUN, **{"train.run_name": "run"})
    run_dir = tmp_path / "runs" / "run"
    first = ftlab_train(*overrides, failpoints=f"{point}={hit}:{sig}")
    where = f"{point.replace('_', ' ')} #{hit} (seed-drawn)"
    if sig == "KILL":
        assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
        outcome = "killed; resumed"
    elif first.returncode == 0:  # the signal came during the last step or the final test
        outcome = (f"SIG{sig} in the last epoch's final step, its evaluation or the test: "
                   "nothing left to stop for, the run finished normally")
    else:
        signum = signal.Signals[f"SIG{sig}"]
        assert first.returncode == 128 + signum, first.stderr[-2000:]
        message = first.stderr.strip().splitlines()
        assert len(message) == 1 and message[0].startswith(f"ftlab: stopped: SIG{sig} received")
        assert f"continue with: ftlab train --resume {run_dir}" in message[0]
        assert "Traceback" not in first.stderr
        outcome = (f"stopped cleanly with a checkpoint of that point, exit {128 + signum}; "
                   "resumed")
    finish(run_dir, overrides)
    assert_same_result(run_dir, clean)
    reliability.fault(f"SIG{sig}", where, outcome, VERIFIED)


def test_kill_at_a_random_moment(tmp_path, clean, fault_rng, reliability):
    overrides = tiny_overrides(tmp_path / "runs", **RUN, **{"train.run_name": "run"})
    run_dir = tmp_path / "runs" / "run"
    delay = fault_rng.uniform(1.0, 6.0)
    process = subprocess.Popen([sys.executable, "-m", "ftlab", "train", *overrides],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finish(run_dir, overrides)
    assert_same_result(run_dir, clean)
    reliability.fault("SIGKILL", f"{delay:.1f} s after start (random)", "killed; resumed",
                      VERIFIED)


def test_stopped_suite_continues_to_the_clean_result(tmp_path, clean, reliability):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "stopped", "output_dir": str(tmp_path / "out"),
        "overrides": [o for o in tiny_overrides(tmp_path, **RUN) if "output_dir" not in o],
        "grid": {"strategies": {"full": []}, "seeds": [0]}}))
    run_dir = tmp_path / "out" / "stopped" / "runs" / "full-s0"
    process = subprocess.Popen([sys.executable, "-m", "ftlab", "suite", str(suite),
                                "--no-report"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    # The run has started (its config.yaml is there from the start: the suite writes it).
    while not (run_dir / "log.txt").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "ftlab: stopped: SIGTERM received" in err and "Traceback" not in err
    index = json.loads((run_dir.parents[1] / "suite.json").read_text())
    assert [run["status"] for run in index["runs"]] == ["stopped"]
    assert ftlab_suite(suite).returncode == 0
    assert_same_result(run_dir, clean)
    reliability.fault("SIGTERM to `ftlab suite`", "while its run trains",
                      "run checkpointed and marked stopped, exit 143; suite rerun continued",
                      VERIFIED)


def test_killed_suite_resumes_where_it_stopped(tmp_path, reliability, monkeypatch):
    path = write_suite(tmp_path, grid={"strategies": {"full": [], "linear_probe": []},
                                       "seeds": [0, 1]})
    root = tmp_path / "out" / "tiny"
    process = subprocess.Popen([sys.executable, "-m", "ftlab", "suite", str(path), "--no-report"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = root / "runs" / "full-s0" / "summary.json"
    deadline = time.monotonic() + 180
    while not first.exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = json.loads(first.read_text())["finished_at"]
    unfinished = [n for n in ("full-s1", "linear_probe-s0", "linear_probe-s1")
                  if not (root / "runs" / n / "summary.json").exists()]
    assert unfinished, "the kill must land before the suite ends"
    monkeypatch.setattr("ftlab.suite.run_memory_step", lambda *args: None)  # not about it
    result = run_suite(path, report=False)
    assert not result.failed
    assert all(s.status == "complete" for s in result.states.values())
    assert json.loads(first.read_text())["finished_at"] == finished  # not run again
    reliability.fault("SIGKILL to `ftlab suite`", "after its first run finished",
                      "rerun skipped the finished run, resumed the rest",
                      "finished run not run again (same finished_at); all runs complete")


def ftlab_suite(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ftlab", "suite", str(path), "--no-report"],
                          capture_output=True, text=True, timeout=300)
