"""Studies in their storage: opening one (and refusing one of another experiment), and its
sampler (reseeded per trial) and pruner.

The storage is Optuna's: by default a journal file in the suite folder (no server), or any
storage URL that workers on several machines share. What happens to one trial of a study,
dead workers' trials included, is `ftlab.tune.trial`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import optuna

from ftlab.errors import ConfigError
from ftlab.runfiles import TUNE_JOURNAL
from ftlab.tune.journal import JournalFile
from ftlab.tune.schema import TuneConfig
from ftlab.tune.plan import StudyPlan, grid_values

log = logging.getLogger("ftlab")

STUDY_ATTR = "ftlab"
"""The study's user attribute recording its suite, space and experiment."""

def open_storage(spec: str | None, tune_dir: Path) -> optuna.storages.BaseStorage:
    """The studies' storage: None -> tune/journal.log; a URL -> that Optuna storage; any
    other text -> a journal file at that path. Unreachable: one line, nothing written."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if spec is None or "://" not in spec:
        from optuna.storages.journal import JournalStorage

        return JournalStorage(JournalFile(journal_path(spec, tune_dir)))
    try:
        if spec.startswith("redis://"):
            from optuna.storages.journal import JournalRedisBackend, JournalStorage

            return JournalStorage(JournalRedisBackend(spec))
        return optuna.storages.RDBStorage(spec)
    except Exception as err:  # drivers and servers raise their own types
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"tune.storage {_without_password(spec)} cannot be used ({reason}); "
                          "check the URL, that the server is up, and that its driver is "
                          "installed") from None


def journal_path(spec: str | None, tune_dir: Path) -> Path:
    """The journal file tune.storage names (None: the suite folder's tune/journal.log)."""
    return tune_dir / TUNE_JOURNAL if spec is None else Path(spec).expanduser()


def _without_password(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def open_study(plan: StudyPlan, storage: optuna.storages.BaseStorage, tune: TuneConfig,
               suite: str, worker: int) -> optuna.Study:
    """The plan's study (created on first use), with this worker's sampler and the pruner.
    A study of the same name made by another suite, space or experiment is refused.

    A new study's first trial is the configured setting (the suite's values, or the
    strategy's defaults, where the space contains them): the search starts from what an
    untuned run would use, so the best it reports is never worse on validation than that.
    """
    settings = {"study_name": plan.name, "storage": storage,
                "sampler": _sampler(plan, tune, tune.sampler_seed + (
                    0 if tune.sampler == "grid" else worker)),
                "pruner": _pruner(plan, tune)}
    mine = {"suite": suite, "space": plan.describe_space(), "config": plan.fingerprint()}
    if plan.name not in optuna.get_all_study_names(storage):
        try:  # creation is atomic in the storage: one worker creates, the others load
            study = optuna.create_study(direction="maximize", **settings)
            start = plan.configured_params()
            if start and tune.sampler != "grid":
                study.enqueue_trial(start)
            study.set_user_attr(STUDY_ATTR, mine)
            return study
        except optuna.exceptions.DuplicatedStudyError:  # another worker was first
            pass
    # Checked before anything is written: a refused study's journal stays as it was.
    study = optuna.load_study(**settings)
    theirs = study.user_attrs.get(STUDY_ATTR)
    if theirs is None:  # its creator has not recorded them (yet)
        study.set_user_attr(STUDY_ATTR, mine)
    else:
        _check_same_study(plan, theirs, mine)
    return study


def _check_same_study(plan: StudyPlan, theirs: dict[str, Any], mine: dict[str, Any]) -> None:
    where = f"study {plan.name} in tune.storage"
    fix = ("give this suite another name or tune.storage, or delete that study "
           "(optuna delete-study)")
    if theirs.get("suite") != mine["suite"]:
        raise ConfigError(f"{where} was created by suite {theirs.get('suite')!r}; {fix}")
    if theirs.get("space") != mine["space"]:
        raise ConfigError(f"{where} was searched over another space ({_space(theirs['space'])}"
                          f" there, {_space(mine['space'])} here); {fix}")
    old, new = theirs.get("config", {}), mine["config"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            raise ConfigError(f"{where} was run with {key}={old.get(key)!r}, this suite sets "
                              f"{new.get(key)!r}: its trials would not compare; {fix}")


def _space(space: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{key} {spec}" for key, spec in space.items())


def reseed(study: optuna.Study, plan: StudyPlan, tune: TuneConfig, worker: int) -> None:
    """Give the study a sampler seeded for its next trial: a hash of tune.sampler_seed, the
    worker and the trials so far. The search stays repeatable, a restarted worker does not
    draw again the values it drew before its restart (as one seeded once would), and the
    seeds of successive trials are unrelated (consecutive integers seed nearly the same
    first draws)."""
    if tune.sampler == "grid":  # its seed orders the grid: every worker must share it
        return
    text = f"{tune.sampler_seed}/{worker}/{len(study.get_trials(deepcopy=False))}"
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    study.sampler = _sampler(plan, tune, seed)


def _sampler(plan: StudyPlan, tune: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    if tune.sampler == "grid":
        grid = {key: grid_values(spec) for key, spec in plan.space.items()}
        return _GridSampler(grid, seed=seed)
    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(n_startup_trials=tune.startup_trials, seed=seed,
                                      constant_liar=True)


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its end-of-grid `Study.stop()`, which works only inside
    `Study.optimize`; ftlab's workers stop by counting trials (at most the grid's size)."""

    def after_trial(self, study, trial, state, values) -> None:  # type: ignore[override]
        return None


def _pruner(plan: StudyPlan, tune: TuneConfig) -> optuna.pruners.BasePruner:
    if tune.pruner == "none" or plan.epochs <= tune.min_epochs:
        return optuna.pruners.NopPruner()
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=tune.min_epochs,
                                              max_resource=plan.epochs,
                                              reduction_factor=tune.reduction_factor)
    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=tune.startup_trials,
                                           n_warmup_steps=tune.min_epochs - 1)
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=tune.min_epochs,
                                                  reduction_factor=tune.reduction_factor)
