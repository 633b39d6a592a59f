"""A tuning worker: asks a study for a trial, trains it as an ftlab run folder, tells the
result; study after study, until each has its trials.

Trials run in this process (`ftlab.train` with an epoch hook that reports validation top-1
to the study and asks its pruner whether to go on), so a trial costs no process start. Any
number of workers, here or on other machines, may share the studies' storage: each trial is
asked for once, locked by its worker, and the trials of a worker that dies are enqueued
again by whoever notices (`ftlab.tune.study.recover_stale`).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import Trial, TrialState

from ftlab.config.search import Choice, FloatRange
from ftlab.errors import FtlabError, Stopped, TrainingDiverged
from ftlab.fileio import exclusive_lock
from ftlab.runfiles import CONFIG, training_started
from ftlab.runtime import StopFlag
from ftlab.suite.schema import TuneConfig
from ftlab.tune.plan import StudyPlan, encoded
from ftlab.tune.study import (
    ERROR_ATTR,
    RESUME_ATTR,
    RUN_ATTR,
    SURPLUS,
    counts,
    has_waiting,
    is_surplus,
    open_study,
    recover_stale,
    requeue,
    reseed,
    trial_lock,
)

log = logging.getLogger("ftlab")


def work(plans: list[StudyPlan], storage: optuna.storages.BaseStorage, tune: TuneConfig,
         suite: str, worker: int = 0, threads: int | None = None) -> None:
    """Run trials of each plan's study in turn until every study has its trials (counting
    those of other workers). SIGTERM/SIGINT: the running trial saves a checkpoint and is
    enqueued again, and `Stopped` is raised.

    `threads`: this worker's share of the CPUs, for trials whose config leaves
    train.num_threads and data.num_workers unset (workers side by side on one machine).
    """
    stop = StopFlag()
    with stop.installed():
        for plan in plans:
            study = open_study(plan, storage, tune, suite, worker)
            plan.folder.mkdir(parents=True, exist_ok=True)
            while not stop.requested and _wants_trial(study, plan):
                run_trial(study, plan, tune, worker, threads)
    if stop.requested:
        raise Stopped(f"{stop.name} received: tuning stopped; run the same ftlab tune command "
                      "again to continue", stop.signum or 15)


def _wants_trial(study: optuna.Study, plan: StudyPlan) -> bool:
    recover_stale(study, plan)
    done, running = counts(study)
    return done + len(running) < plan.trials or (done < plan.trials and has_waiting(study))


def run_trial(study: optuna.Study, plan: StudyPlan, tune: TuneConfig, worker: int = 0,
              threads: int | None = None) -> None:
    """Ask for one trial and run it to its end (complete, pruned or failed)."""
    reseed(study, plan, tune, worker)
    trial = study.ask()
    lock = trial_lock(plan, trial.number)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(lock):
        resume = trial.user_attrs.get(RESUME_ATTR)
        if is_surplus(study, plan, trial.number):
            _drop_surplus(study, trial, resume)
            return
        params = suggest(trial, plan)
        run = resume or f"trial-{trial.number:04d}"
        trial.set_user_attr(RUN_ATTR, run)
        log.info("tune %s: trial %d %s", plan.label, trial.number, _params_text(params))
        try:
            summary = _train(plan, trial, params, run, threads)
        except Stopped as err:
            trial.set_user_attr(ERROR_ATTR, "stopped by a signal")
            requeue(study, trial.number, trial.params, run, "was stopped")
            raise Stopped(f"stopped: trial {trial.number} of {plan.label} saved a checkpoint "
                          f"in {plan.folder / run} and resumes there; run the same ftlab tune "
                          "command again to continue", err.exit_code - 128) from None
        except TrainingDiverged as err:
            _tell(study, trial, TrialState.PRUNED, error=str(err))
            return
        except FtlabError as err:
            _tell(study, trial, TrialState.FAIL, error=str(err))
            raise
        state = TrialState.PRUNED if summary["status"] == "pruned" else TrialState.COMPLETE
        _tell(study, trial, state, value=summary["best_val_top1"])
        _log_result(study, plan, trial.number, state, summary)


def suggest(trial: Trial, plan: StudyPlan) -> dict[str, Any]:
    """Draw the plan's space (a retried trial gets its earlier values back)."""
    params = {}
    for key, spec in plan.space.items():
        if isinstance(spec, FloatRange):
            params[key] = trial.suggest_float(key, spec.low, spec.high, log=spec.log)
        elif isinstance(spec, Choice):
            params[key] = trial.suggest_categorical(key, [encoded(v) for v in spec.values])
        else:
            params[key] = trial.suggest_int(key, spec.low, spec.high, step=spec.step)
    return params


def _train(plan: StudyPlan, trial: Trial, params: dict[str, Any], run: str,
           threads: int | None) -> dict[str, Any]:
    from ftlab.training import train

    folder = plan.folder / run
    hook = _Reporter(trial)
    cpus = []
    if threads and plan.config.train.num_threads is None:
        cpus.append(f"train.num_threads={threads}")
    if threads and plan.config.data.num_workers is None:
        cpus.append(f"data.num_workers={threads - 1}")
    if training_started(folder):
        return train(resume=folder, overrides=cpus, on_epoch=hook)
    overwrite = (folder / CONFIG).is_file()  # a trial stopped before its first checkpoint
    return train(None, overrides=plan.trial_overrides(params, run) + cpus, overwrite=overwrite,
                 on_epoch=hook)


class _Reporter:
    """The epoch hook of a trial: validation top-1 to the study; the pruner's verdict back."""

    def __init__(self, trial: Trial) -> None:
        self.trial = trial

    def __call__(self, row: dict[str, Any]) -> bool:
        value = row.get("val_top1")
        if value is None or not math.isfinite(value):
            return False
        self.trial.report(float(value), int(row["epoch"]))
        return self.trial.should_prune()


def _tell(study: optuna.Study, trial: Trial, state: TrialState, value: float | None = None,
          error: str | None = None) -> None:
    if error:
        trial.set_user_attr(ERROR_ATTR, error)
    try:
        if state == TrialState.COMPLETE:
            study.tell(trial, value)
        else:
            study.tell(trial, state=state)
    except UpdateFinishedTrialError:  # taken for dead while it ran (a lock not honoured)
        log.warning("tune %s: trial %d had already been ended by another worker; its result "
                    "is not recorded", study.study_name, trial.number)


def _drop_surplus(study: optuna.Study, trial: Trial, resume: str | None) -> None:
    """A trial asked for after the study had its trials: ended unrun. A retried trial's
    values go back into the queue, so nothing it would resume is lost."""
    trial.set_user_attr(ERROR_ATTR, SURPLUS)
    study.tell(trial, state=TrialState.FAIL)
    if resume:
        study.enqueue_trial(trial.params or {}, user_attrs={RESUME_ATTR: resume})


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


def _log_result(study: optuna.Study, plan: StudyPlan, number: int, state: TrialState,
                summary: dict[str, Any]) -> None:
    done, _ = counts(study)
    try:
        best = f"best so far {study.best_value:.2f} % (trial {study.best_trial.number})"
    except ValueError:
        best = "no complete trial yet"
    log.info("tune %s: trial %d %s after %d of %d epochs: val top-1 %.2f %%; %s; %d of %d "
             "trials done", plan.label, number, state.name.lower(), summary["epochs"],
             plan.epochs, summary["best_val_top1"], best, done, plan.trials)
