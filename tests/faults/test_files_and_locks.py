"""A full disk, a second process on the same run, and damaged or hostile checkpoints."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import torch
from conftest import tiny_overrides

import ftlab
from faults.runs import RUN, VERIFIED, assert_same_result, finish, ftlab_train
from ftlab.cli import main
from ftlab.fileio import torch_bytes


def test_disk_full_during_a_write_keeps_the_previous_file(tmp_path, clean, fault_rng,
                                                          reliability):
    hit = fault_rng.randint(3, 8)  # past the config: a metrics file or a checkpoint
    overrides = tiny_overrides(tmp_path / "runs", **RUN, **{"train.run_name": "run"})
    run_dir = tmp_path / "runs" / "run"
    first = ftlab_train(*overrides, failpoints=f"atomic_write={hit}:ENOSPC")
    assert first.returncode == 1, first.stderr[-2000:]
    line = first.stderr.strip()
    assert line.count("\n") == 0 and "(No space left on device)" in line, line
    assert "intact" in line and "Traceback" not in line
    assert not list(run_dir.glob(".*.tmp"))
    finish(run_dir, overrides)
    assert_same_result(run_dir, clean)
    reliability.fault("ENOSPC (disk full)", f"atomic write #{hit} (seed-drawn)",
                      "exit 1, one line naming the file; previous version intact; resumed",
                      VERIFIED)


def test_second_process_on_a_run_folder_is_refused(tmp_path, clean, reliability, capsys):
    overrides = tiny_overrides(tmp_path / "runs", **RUN, **{"train.run_name": "run"})
    run_dir = tmp_path / "runs" / "run"
    first = subprocess.Popen([sys.executable, "-m", "ftlab", "train", *overrides],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / "config.yaml").is_file():
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
        time.sleep(0.01)
    first.send_signal(signal.SIGSTOP)  # hold it mid-run while this process tries
    try:
        second = main(["train", "--resume", str(run_dir)])
        second_err = capsys.readouterr().err
        again = main(["train", *overrides])
        again_err = capsys.readouterr().err
    finally:
        first.send_signal(signal.SIGCONT)
    assert second == 2 and second_err == (
        f"ftlab: error: run folder {run_dir} is in use by another ftlab process (pid "
        f"{first.pid}); wait for it to finish or stop it, or set train.run_name to a new "
        "name\n")
    assert again == 2 and "already exists" in again_err
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert_same_result(run_dir, clean)
    reliability.fault("second `ftlab train` on a running run's folder (resume, and new)",
                      "while the first is mid-run", "refused: exit 2, one line naming the pid",
                      "the first run's " + VERIFIED)


class _RunsCode:
    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_damaged_or_hostile_last_checkpoint_falls_back_to_the_previous(tmp_path, clean,
                                                                       reliability, capsys):
    original = tmp_path / "runs" / "original"
    ftlab.train(None, overrides=tiny_overrides(tmp_path / "runs", **{
        **RUN, "train.run_name": "original", "train.epochs": 2}))
    assert torch.load(original / "previous.pt", weights_only=True)["epoch"] == 1
    marker = tmp_path / "code-ran"
    _RunsCode.marker = str(marker)
    damages = {
        "truncated": lambda data: data[: len(data) // 3],
        "with flipped bits (zip CRC mismatch)": lambda data: data[:4096]
        + bytes(b ^ 0xFF for b in data[4096:8192]) + data[8192:],
        "replaced by a pickle that runs code": lambda data: torch_bytes({"model": _RunsCode()}),
        "emptied (zero bytes)": lambda data: b"",
    }
    for name, damage in damages.items():
        run_dir = tmp_path / "runs" / name.split()[0]
        shutil.copytree(original, run_dir)
        last = run_dir / "last.pt"
        last.write_bytes(damage(last.read_bytes()))
        ftlab.train(resume=run_dir, overrides=["train.epochs=3"])
        log = (run_dir / "log.txt").read_text()
        assert f"checkpoint {last}" in log
        assert f"resuming from {run_dir / 'previous.pt'} (after epoch 1) instead" in log
        assert not marker.exists(), "the pickle's code must never run"
        assert_same_result(run_dir, clean)
        reliability.fault(f"last.pt {name}", "between runs; previous.pt intact",
                          "warning naming the file; resumed from previous.pt", VERIFIED)
    run_dir = tmp_path / "runs" / "replaced"
    (run_dir / "last.pt").write_bytes(pickle.dumps({"model": _RunsCode()}))
    (run_dir / "previous.pt").unlink()
    assert main(["train", "--resume", str(run_dir), "train.epochs=4"]) == 2
    err = capsys.readouterr().err
    assert not marker.exists() and err.count("\n") == 1
    assert err.startswith(f"ftlab: error: checkpoint {run_dir / 'last.pt'} ")
    reliability.inputs("checkpoint pickles that would run code, no good checkpoint left",
                       "refused: exit 2, one line naming the file; the code never ran")
