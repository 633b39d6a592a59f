"""`ftlab tune SUITE.yaml`: search every dataset x strategy, then run the final runs.

1. Plans: each study's space and trial settings, all checked before anything is written.
2. Search: `parallel` workers (this process alone when 1; local processes, or submitit
   jobs with `executor: submitit`) share the studies' storage until each study has its
   trials. `ftlab tune FILE --worker` on other machines joins a search whose tune.storage
   they can reach.
3. Records: tune/<study>/study.json for each study; the best settings are printed.
4. Final runs: each best setting with tune.seeds, as runs of the suite (index, memory
   table, analyses and report as `ftlab suite` makes them).

A killed `ftlab tune` continues where it stopped: ended trials stay ended, the stopped trial
resumes its run folder, complete final runs are skipped. One `ftlab tune` process owns a
suite folder (tune/.lock); a second one on the same folder refuses.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import optuna

from ftlab.config import config_to_dict, flatten, load_run_config
from ftlab.errors import ConfigError, RunDirError, Stopped
from ftlab.fileio import LockHeld, exclusive_lock
from ftlab.runfiles import CONFIG, SUITE_LOGS, SUITE_RUNS, SUITE_TUNE, TUNE_LOCK, training_started
from ftlab.runtime import StopFlag, cpu_share, ensure_console_log, start_logged, stop_all
from ftlab.suite import SuiteResult, prepare_folder, run_specs
from ftlab.suite.expand import RunSpec, expand, suite_dir, validate
from ftlab.suite.schema import GridConfig
from ftlab.suite.state import last_error
from ftlab.tune.final import describe_best, final_specs, study_record, write_record
from ftlab.tune.schema import TunedSuiteConfig
from ftlab.tune.plan import NOT_COMPARED, StudyPlan, build_plans, load_tuned_suite
from ftlab.tune.journal import check_journal_path
from ftlab.tune.study import journal_path, open_storage, open_study
from ftlab.tune.worker import work

log = logging.getLogger("ftlab")


def run_tune(path: str | Path, overrides: Sequence[str] = (), report: bool = True
             ) -> SuiteResult:
    """Tune the suite file's grid, run the final runs, write the report (see the module)."""
    ensure_console_log()
    suite_file = Path(path)
    suite = load_tuned_suite(suite_file, overrides)
    tune = suite.tune
    plans = build_plans(suite, suite_file)
    listed = _listed_runs(suite, suite_file)
    tune_dir = suite_dir(suite, suite_file) / SUITE_TUNE
    storage = open_storage(tune.storage, tune_dir) if _is_url(tune.storage) else None
    if tune.storage is not None and storage is None:  # a journal file of the user's choosing
        check_journal_path(journal_path(tune.storage, tune_dir))
    root = prepare_folder(suite, suite_file)
    tune_dir.mkdir(exist_ok=True)
    with _owned(tune_dir / TUNE_LOCK):
        storage = storage or open_storage(tune.storage, tune_dir)
        _search(suite, suite_file, list(overrides), plans, storage)
        records = {}
        for plan in plans:
            record = study_record(open_study(plan, storage, tune, suite.name, 0), plan, tune)
            write_record(record, plan)
            records[plan.name] = record
            if record.best is not None:
                log.info("tune %s", describe_best(record))
        specs = final_specs(plans, records, tune, root / SUITE_RUNS) + listed
        configs = validate(specs)
        _check_final_runs(specs, configs)
        result = run_specs(suite, suite_file, root, specs, configs, report)
    _print_answer(root)
    return result


def _print_answer(root: Path) -> None:
    """The report's recommendation, at the end of the command."""
    from ftlab.report import recommendations

    for dataset, lines in recommendations(root).items():
        log.info("which strategy on %s:\n  %s", dataset, "\n  ".join(lines))


def run_worker(path: str | Path, overrides: Sequence[str], index: int,
               threads: int | None = None) -> None:
    """`ftlab tune FILE --worker`: trials of the suite's studies until each has its trials,
    nothing else (no final runs, no report); the storage must exist already."""
    ensure_console_log()
    suite_file = Path(path)
    suite = load_tuned_suite(suite_file, overrides)
    tune = suite.tune
    plans = build_plans(suite, suite_file)
    tune_dir = suite_dir(suite, suite_file) / SUITE_TUNE
    if not _is_url(tune.storage) and not tune_dir.is_dir():
        raise RunDirError(f"{tune_dir} does not exist: start ftlab tune {suite_file} first "
                          "(workers join its search)")
    work(plans, open_storage(tune.storage, tune_dir), tune, suite.name, index, threads)


def _is_url(storage: str | None) -> bool:
    return storage is not None and "://" in storage


def _listed_runs(suite: TunedSuiteConfig, suite_file: Path) -> list[RunSpec]:
    """The suite's explicitly listed runs, run untuned beside the final runs."""
    if not suite.runs:
        return []
    specs = expand(replace(suite, grid=GridConfig()), suite_file)
    validate(specs)
    return specs


@contextmanager
def _owned(lock_file: Path) -> Iterator[None]:
    try:
        with exclusive_lock(lock_file):
            yield
    except LockHeld as held:
        raise RunDirError(f"suite folder {lock_file.parent.parent} is in use by another ftlab "
                          f"tune (pid {held.holder}); wait for it, or add workers to its "
                          "search with ftlab tune FILE --worker") from None


def _search(suite: TunedSuiteConfig, suite_file: Path, overrides: list[str],
            plans: list[StudyPlan], storage: optuna.storages.BaseStorage) -> None:
    """Workers until every study has its trials; then this process finishes whatever dead
    workers left (their trials were enqueued again)."""
    tune = suite.tune
    workers = suite.parallel
    if workers > 1 or suite.executor == "submitit":
        threads = cpu_share(workers) if suite.executor == "local" else None
        root = suite_dir(suite, suite_file)
        commands = [_worker_command(suite_file, overrides, i, threads) for i in range(workers)]
        logs = [root / SUITE_LOGS / f"tune-worker-{i}.log" for i in range(workers)]
        codes = (_submitit(suite, root, commands, logs) if suite.executor == "submitit"
                 else _local(commands, logs))
        for i, code in enumerate(codes):
            if code != 0:
                log.warning("tune: worker %d ended with %s", i, last_error(logs[i], code))
    work(plans, storage, tune, suite.name, workers)


def _worker_command(suite_file: Path, overrides: list[str], index: int,
                    threads: int | None) -> list[str]:
    command = [sys.executable, "-m", "ftlab", "tune", str(suite_file), *overrides,
               "--worker", str(index)]
    return command + (["--threads", str(threads)] if threads else [])


def _local(commands: list[list[str]], logs: list[Path]) -> list[int]:
    """Worker processes here; SIGTERM/SIGINT are passed on (each saves its trial)."""
    processes = [start_logged(command, log_file) for command, log_file in zip(commands, logs)]
    log.info("tune: %d workers started (logs in %s)", len(processes), logs[0].parent)
    stop = StopFlag()
    with stop.installed():
        while any(p.poll() is None for p in processes):
            if stop.requested:
                stop_all(processes)
                raise Stopped(f"{stop.name} received: the workers saved their trials and "
                              "stopped; run the same ftlab tune command again to continue",
                              stop.signum or 15)
            time.sleep(0.2)
    return [p.returncode for p in processes]


def _submitit(suite: TunedSuiteConfig, root: Path, commands: list[list[str]], logs: list[Path]
              ) -> list[int]:
    """Worker jobs through submitit (Slurm): they share the storage, which must be one
    every node reaches (a journal file on a shared filesystem, or a URL)."""
    from ftlab.suite.submitit_executor import job_executor, run_logged

    executor = job_executor(suite, root)
    jobs = [executor.submit(run_logged, command, str(log_file))
            for command, log_file in zip(commands, logs)]
    log.info("tune: %d worker jobs submitted", len(jobs))
    return [job.result() for job in jobs]


def _check_final_runs(specs: list[RunSpec], configs: dict) -> None:
    """A final run already started with other settings (the best trial changed since, say
    after more trials) is not silently kept: say which setting differs and how to redo it."""
    for spec in specs:
        folder = Path(configs[spec.name].train.output_dir) / spec.name
        if not training_started(folder):
            continue
        saved = flatten(config_to_dict(load_run_config(folder / CONFIG)))
        wanted = flatten(config_to_dict(configs[spec.name]))
        for key in sorted(wanted):
            if key not in NOT_COMPARED and key != "train.epochs" and saved.get(key) != wanted[key]:
                raise ConfigError(f"final run {spec.name} was trained with {key}="
                                  f"{saved.get(key)!r}, the study's best is now "
                                  f"{wanted[key]!r}; delete {folder} to train it again")
