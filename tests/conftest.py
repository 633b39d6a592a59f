"""Shared fixtures: tiny fast configs on generated data, and the offline mirror."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import subprocess
import tempfile
import time
import zlib
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("FTLAB_MIRROR", REPO.parent / "shared" / "mirror"))
MIRROR_WEIGHTS = MIRROR / "weights" / "mobilenet_v2_imagenet.pth"
MIRROR_DATA = MIRROR / "cifar10-mini"


def _share_cores() -> None:
    """Under pytest-xdist, each worker process gets its share of the cores. N workers each
    running torch's default of one OpenMP thread per core oversubscribe the machine, and
    OpenMP's spinning threads then slow a float64 backward pass 100-fold (0.4 s -> 46 s),
    depending on what the other worker happens to run: a test suite whose time depends on
    its order. Subprocesses the tests start inherit the share through OMP_NUM_THREADS."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


_share_cores()


def tiny_overrides(output_dir: Path, **extra: object) -> list[str]:
    """A run that takes about a second: 4 classes x 8 generated 32 px images, 2 epochs."""
    values: dict[str, object] = {
        "data.name": "synthetic",
        "data.synthetic.num_classes": 4,
        "data.synthetic.train_per_class": 10,
        "data.synthetic.test_per_class": 4,
        "data.synthetic.image_size": 32,
        "data.val_fraction": 0.2,
        "data.resolution": 32,
        "data.num_workers": 0,
        "model.arch": "mobilenet_v2",
        "model.weights": "none",
        "train.epochs": 2,
        "train.batch_size": 8,
        "train.output_dir": str(output_dir),
        "train.progress": "none",
        "train.tensorboard": False,
        "train.num_threads": 1,
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


@pytest.fixture
def tiny(tmp_path: Path):
    """Build the override list of a tiny run in this test's own folder."""
    return lambda **extra: tiny_overrides(tmp_path / "runs", **extra)


@pytest.fixture
def mirror() -> Path:
    if not (MIRROR_WEIGHTS.is_file() and (MIRROR_DATA / "train").is_dir()):
        pytest.skip(f"offline mirror not found at {MIRROR} (set FTLAB_MIRROR)")
    return MIRROR


def _can_write(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


@contextlib.contextmanager
def made_read_only(folder: Path):
    """`folder` (made here) such that this process cannot write into it: permission bits,
    and where those do not bind (root), the immutable attribute (chattr +i); None where
    neither can be had. Writable again afterwards, so it can be deleted."""
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    immutable = _can_write(folder) and shutil.which("chattr") is not None and \
        subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        yield None if _can_write(folder) else folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


@pytest.fixture
def read_only_folder(tmp_path: Path):
    """A folder this process cannot write into (`made_read_only`), or the test is skipped."""
    with made_read_only(tmp_path / "read-only") as folder:
        if folder is None:
            pytest.skip("this process writes into any folder (root without chattr +i)")
        yield folder


@pytest.fixture(autouse=True)
def _seeded(request: pytest.FixtureRequest) -> None:
    """Every test starts from random state of its own, a function of its name alone: what it
    draws without a generator of its own cannot depend on the tests that ran before it in
    this process (the order pytest-randomly picks, or the xdist worker it landed on)."""
    seed = zlib.crc32(request.node.nodeid.encode("utf-8"))
    torch.manual_seed(seed)
    random.seed(seed)


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """No test touches the user's caches or data; torch's thread count and the 'ftlab'
    logger (handlers, level, propagation, disabled) are as they were after each test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("FTLAB_DATA", str(tmp_path / "data"))
    threads = torch.get_num_threads()
    logger = logging.getLogger("ftlab")
    saved = (logger.level, logger.propagate, logger.disabled)
    yield
    torch.set_num_threads(threads)
    logger.handlers.clear()
    logger.level, logger.propagate, logger.disabled = saved


@pytest.hookimpl(trylast=True)  # after pytest-randomly has settled its seed
def pytest_configure(config) -> None:
    """The main process (not an xdist worker) fixes the fault seed and makes the folder the
    fault tests' records meet in; workers inherit both through the environment. The fault
    seed is pytest-randomly's seed where that plugin runs, so one number repeats both the
    test order and the injection points."""
    from faults.records import FOLDER_ENV, SEED_ENV

    order_seed = getattr(config.option, "randomly_seed", None)
    if isinstance(order_seed, int) and config.getoption("hypothesis_seed", None) is None:
        from hypothesis import core  # as hypothesis's own plugin applies --hypothesis-seed

        core.global_force_seed = order_seed
    if "PYTEST_XDIST_WORKER" in os.environ:
        return
    default = order_seed if isinstance(order_seed, int) else time.time_ns() % 2**31
    os.environ.setdefault(SEED_ENV, str(default))
    os.environ[FOLDER_ENV] = tempfile.mkdtemp(prefix="ftlab-reliability-")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """The seeds, printed even under -q: the line to repeat this session exactly."""
    from faults.records import SEED_ENV

    if "PYTEST_XDIST_WORKER" in os.environ:
        return
    order_seed = getattr(config.option, "randomly_seed", None)
    order = (f"test order -p randomly --randomly-seed={order_seed}"
             if isinstance(order_seed, int) and config.getoption("randomly_reorganize", True)
             else "test order as collected")
    terminalreporter.write_line(f"seeds: {order}; {SEED_ENV}={os.environ.get(SEED_ENV, '?')}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus) -> None:
    from faults.records import FOLDER_ENV, write_report

    if "PYTEST_XDIST_WORKER" in os.environ or FOLDER_ENV not in os.environ:
        return
    folder = Path(os.environ.pop(FOLDER_ENV))
    write_report(folder)
    shutil.rmtree(folder, ignore_errors=True)
