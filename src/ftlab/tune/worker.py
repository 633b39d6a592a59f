"""A tuning worker: trials of each study in turn, until each has its trials.

Trials run in this process (`TrialLife` in `ftlab.tune.trial`, which trains through
`ftlab.train`), so a trial costs no process start. Any number of workers, here or on other
machines, may share the studies' storage: before each trial a worker re-queues the trials of
workers that died (`recover_stale`), then asks for one more while the study wants it.
"""

from __future__ import annotations

import optuna

from ftlab.errors import Stopped
from ftlab.runtime import StopFlag
from ftlab.tune.budget import BudgetCheck
from ftlab.tune.plan import StudyPlan
from ftlab.tune.schema import TuneConfig
from ftlab.tune.study import open_study
from ftlab.tune.trial import TrialLife, counts, has_waiting, recover_stale


def work(plans: list[StudyPlan], storage: optuna.storages.BaseStorage, tune: TuneConfig,
         suite: str, worker: int = 0, threads: int | None = None) -> None:
    """Run trials of each plan's study in turn until every study has its trials (counting
    those of other workers). SIGTERM/SIGINT: the running trial saves a checkpoint and is
    enqueued again, and `Stopped` is raised.

    `threads`: this worker's share of the CPUs, for trials whose config leaves
    train.num_threads and data.num_workers unset (workers side by side on one machine).
    """
    stop = StopFlag()
    budget = BudgetCheck()  # one measurement per distinct step, for all of this worker's trials
    with stop.installed():
        for plan in plans:
            study = open_study(plan, storage, tune, suite, worker)
            plan.folder.mkdir(parents=True, exist_ok=True)
            while not stop.requested and _wants_trial(study, plan):
                TrialLife(study, plan, tune, worker, threads, budget).run()
    if stop.requested:
        raise Stopped(f"{stop.name} received: tuning stopped; run the same ftlab tune command "
                      "again to continue", stop.signum or 15)


def _wants_trial(study: optuna.Study, plan: StudyPlan) -> bool:
    recover_stale(study, plan)
    done, running = counts(study)
    return done + len(running) < plan.trials or (done < plan.trials and has_waiting(study))
