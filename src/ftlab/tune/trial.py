"""One trial's life, from ask to tell, and the re-queue of trials whose worker is gone.

Read `TrialLife.run` top to bottom: the study is reseeded and asked for a trial; the
worker locks it (`<study>/.trials/<number>.lock`, held while it trains); a trial asked for
after the study already has its trials is ended unrun (surplus); the trial draws its
hyperparameters (a re-queued trial gets its earlier ones back), trains as an ftlab run folder
with an epoch hook that reports validation top-1 and asks the pruner whether to go on, and
is told complete, pruned (also when it diverged) or failed. Stopped by a signal, it keeps its
checkpoint and is re-queued to resume its folder. A trial left RUNNING by a worker that died
is recognised by its free lock and re-queued by whichever worker notices first
(`recover_stale`).

Why lock files, when Optuna has heartbeats (`heartbeat_interval` with
`RetryFailedTrialCallback`, for RDB storages): Optuna's heartbeat thread runs only inside
`Study.optimize`, and ftlab's workers use ask-and-tell, because a trial is a resumable run
folder that a retry must continue, not a function called again; its journal-file and Redis
storages have no heartbeat at all. A lock held by the living worker's process is released
by the kernel when that process dies, on every storage, which is what a heartbeat
approximates with a timeout.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import Trial, TrialState

from ftlab.config.search import Choice, FloatRange
from ftlab.errors import FtlabError, Stopped, TrainingDiverged
from ftlab.fileio import exclusive_lock, lock_in_use
from ftlab.runfiles import CONFIG, TUNE_LOCKS, training_started
from ftlab.tune.plan import StudyPlan, encoded
from ftlab.tune.budget import BudgetCheck
from ftlab.tune.schema import TuneConfig, budget_bytes
from ftlab.tune.study import reseed

log = logging.getLogger("ftlab")

RESUME_ATTR = "ftlab_resume"
"""A re-queued trial's user attribute: the run folder it continues."""
RUN_ATTR = "run"
ERROR_ATTR = "error"
STEP_PEAK_ATTR = "step_peak_bytes"
"""With tune.memory_budget: the measured peak of the trial's training step, in bytes."""
OVER_BUDGET = "over the memory budget"
"""How ERROR_ATTR of a trial whose step did not fit tune.memory_budget begins."""
SURPLUS = "surplus"
"""ERROR_ATTR of a trial asked after the study had its trials (a race between workers)."""
ENDED = (TrialState.COMPLETE, TrialState.PRUNED)
STARTUP_GRACE_S = 600.0
"""A RUNNING trial with no lock file yet is taken for dead only after this long (its worker
may be between asking for it and locking it)."""


class TrialLife:
    """One trial of `plan`'s study, run by this worker from ask to tell."""

    def __init__(self, study: optuna.Study, plan: StudyPlan, tune: TuneConfig,
                 worker: int = 0, threads: int | None = None,
                 budget_check: BudgetCheck | None = None) -> None:
        self.study, self.plan, self.tune = study, plan, tune
        self.worker, self.threads = worker, threads
        self.budget_check = budget_check or BudgetCheck()

    def run(self) -> None:
        """Ask for one trial and run it to its end (complete, pruned or failed)."""
        reseed(self.study, self.plan, self.tune, self.worker)
        trial = self.study.ask()
        lock = trial_lock(self.plan, trial.number)
        lock.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(lock):
            resume = trial.user_attrs.get(RESUME_ATTR)
            if is_surplus(self.study, self.plan, trial.number):
                self._drop_surplus(trial, resume)
                return
            params = suggest(trial, self.plan)
            run = resume or f"trial-{trial.number:04d}"
            if not resume and self._over_budget(trial, params, run):
                return
            trial.set_user_attr(RUN_ATTR, run)
            log.info("tune %s: trial %d %s", self.plan.label, trial.number, _params_text(params))
            try:
                summary = self._train(trial, params, run)
            except Stopped as err:
                self._requeue_stopped(trial, run, err)
            except TrainingDiverged as err:
                self._tell(trial, TrialState.PRUNED, error=str(err))
                return
            except FtlabError as err:
                self._tell(trial, TrialState.FAIL, error=str(err))
                raise
            state = TrialState.PRUNED if summary["status"] == "pruned" else TrialState.COMPLETE
            self._tell(trial, state, value=summary["best_val_top1"])
            self._log_result(trial.number, state, summary)

    def _over_budget(self, trial: Trial, params: dict[str, Any], run: str) -> bool:
        """With tune.memory_budget: measure the trial's training step before it trains; one
        over the budget ends pruned unrun, with its need recorded (`STEP_PEAK_ATTR`)."""
        budget = budget_bytes(self.tune)
        if budget is None:
            return False
        peak = self.budget_check.peak(self.plan.trial_overrides(params, run), self.plan.base)
        trial.set_user_attr(STEP_PEAK_ATTR, peak)
        if peak <= budget:
            return False
        need = f"{peak / 2**20:,.1f} MiB"
        log.info("tune %s: trial %d %s needs %s per training step, over the budget of %s; "
                 "not run", self.plan.label, trial.number, _params_text(params), need,
                 self.tune.memory_budget)
        self._tell(trial, TrialState.PRUNED,
                   error=f"{OVER_BUDGET}: its training step needs {need}, more than "
                   f"tune.memory_budget={self.tune.memory_budget}; not run")
        return True

    def _drop_surplus(self, trial: Trial, resume: str | None) -> None:
        """A trial asked for after the study had its trials: ended unrun. A re-queued
        trial's values go back into the queue, so nothing it would resume is lost."""
        trial.set_user_attr(ERROR_ATTR, SURPLUS)
        self.study.tell(trial, state=TrialState.FAIL)
        if resume:
            self.study.enqueue_trial(trial.params or {}, user_attrs={RESUME_ATTR: resume})

    def _train(self, trial: Trial, params: dict[str, Any], run: str) -> dict[str, Any]:
        """The trial as an ftlab run folder (resumed where it has a checkpoint)."""
        from ftlab.training import train

        folder = self.plan.folder / run
        hook = Reporter(trial)
        cpus = []
        if self.threads and self.plan.config.train.num_threads is None:
            cpus.append(f"train.num_threads={self.threads}")
        if self.threads and self.plan.config.data.num_workers is None:
            cpus.append(f"data.num_workers={self.threads - 1}")
        if training_started(folder):
            return train(resume=folder, overrides=cpus, on_epoch=hook)
        overwrite = (folder / CONFIG).is_file()  # a trial stopped before its first checkpoint
        return train(None, overrides=self.plan.trial_overrides(params, run) + cpus,
                     overwrite=overwrite, on_epoch=hook)

    def _requeue_stopped(self, trial: Trial, run: str, err: Stopped) -> None:
        trial.set_user_attr(ERROR_ATTR, "stopped by a signal")
        requeue(self.study, trial.number, trial.params, run, "was stopped")
        raise Stopped(f"stopped: trial {trial.number} of {self.plan.label} saved a checkpoint "
                      f"in {self.plan.folder / run} and resumes there; run the same ftlab tune "
                      "command again to continue", err.exit_code - 128) from None

    def _tell(self, trial: Trial, state: TrialState, value: float | None = None,
              error: str | None = None) -> None:
        if error:
            trial.set_user_attr(ERROR_ATTR, error)
        try:
            if state == TrialState.COMPLETE:
                self.study.tell(trial, value)
            else:
                self.study.tell(trial, state=state)
        except UpdateFinishedTrialError:  # taken for dead while it ran (a lock not honoured)
            log.warning("tune %s: trial %d had already been ended by another worker; its "
                        "result is not recorded", self.study.study_name, trial.number)

    def _log_result(self, number: int, state: TrialState, summary: dict[str, Any]) -> None:
        done, _ = counts(self.study)
        try:
            best = (f"best so far {self.study.best_value:.2f} % "
                    f"(trial {self.study.best_trial.number})")
        except ValueError:
            best = "no complete trial yet"
        log.info("tune %s: trial %d %s after %d of %d epochs: val top-1 %.2f %%; %s; %d of %d "
                 "trials done", self.plan.label, number, state.name.lower(), summary["epochs"],
                 self.plan.epochs, summary["best_val_top1"], best, done, self.plan.trials)


def suggest(trial: Trial, plan: StudyPlan) -> dict[str, Any]:
    """Draw the plan's space (a re-queued trial gets its earlier values back)."""
    params = {}
    for key, spec in plan.space.items():
        if isinstance(spec, FloatRange):
            params[key] = trial.suggest_float(key, spec.low, spec.high, log=spec.log)
        elif isinstance(spec, Choice):
            params[key] = trial.suggest_categorical(key, [encoded(v) for v in spec.values])
        else:
            params[key] = trial.suggest_int(key, spec.low, spec.high, step=spec.step)
    return params


class Reporter:
    """The epoch hook of a trial: validation top-1 to the study; the pruner's verdict back."""

    def __init__(self, trial: Trial) -> None:
        self.trial = trial

    def __call__(self, row: dict[str, Any]) -> bool:
        value = row.get("val_top1")
        if value is None or not math.isfinite(value):
            return False
        self.trial.report(float(value), int(row["epoch"]))
        return self.trial.should_prune()


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


# --- counting ----------------------------------------------------------------------------
def counts(study: optuna.Study) -> tuple[int, list[int]]:
    """(trials ended complete or pruned, numbers of the RUNNING trials)."""
    trials = study.get_trials(deepcopy=False)
    return (sum(t.state in ENDED for t in trials),
            sorted(t.number for t in trials if t.state == TrialState.RUNNING))


def has_waiting(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def is_surplus(study: optuna.Study, plan: StudyPlan, number: int) -> bool:
    """Whether trial `number`, just asked, goes past the study's trials: workers that asked
    at the same moment keep the lower numbers."""
    done, running = counts(study)
    return number in running and running.index(number) >= plan.trials - done


# --- trials of dead workers --------------------------------------------------------------
def trial_lock(plan: StudyPlan, number: int) -> Path:
    return plan.folder / TUNE_LOCKS / f"{number}.lock"


def recover_stale(study: optuna.Study, plan: StudyPlan) -> list[int]:
    """Fail every RUNNING trial whose worker is gone and enqueue it again; returns their
    numbers. Failing is a compare-and-set in the storage, so of several workers that find
    the same dead trial exactly one enqueues it."""
    recovered = []
    now = dt.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        lock = trial_lock(plan, trial.number)
        if lock.exists():
            if lock_in_use(lock):
                continue
        elif trial.datetime_start and \
                (now - trial.datetime_start).total_seconds() < STARTUP_GRACE_S:
            continue
        run = trial.user_attrs.get(RUN_ATTR) or trial.user_attrs.get(RESUME_ATTR)
        if requeue(study, trial.number, trial.params, run, "its worker is gone"):
            recovered.append(trial.number)
    return recovered


def requeue(study: optuna.Study, number: int, params: dict[str, Any], run: str | None,
            why: str) -> bool:
    """Fail trial `number` and enqueue its hyperparameters again, to resume its run folder
    `run`. False when the trial had already ended (another worker got there first)."""
    try:
        study.tell(number, state=TrialState.FAIL)
    except (UpdateFinishedTrialError, RuntimeError, ValueError):
        return False
    study.enqueue_trial(params, user_attrs={RESUME_ATTR: run} if run else None)
    log.info("tune %s: trial %d %s; enqueued again%s", study.study_name, number, why,
             f" to resume {run}" if run else "")
    return True
