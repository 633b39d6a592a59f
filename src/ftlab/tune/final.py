"""After the search: each study's record (study.json), and the final runs of its best
setting, one per seed of tune.seeds, which alone evaluate on test.

A final run is an ordinary run of the suite, named <dataset>-<strategy>-s<seed> like a grid
run, so the suite's index, memory table and report take it as they take any run; its seed
sets both train.seed and data.split_seed.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ftlab.assembly import resolve_config
from ftlab.config import load_config
from ftlab.errors import ConfigError
from ftlab.fileio import atomic_write_text
from ftlab.runfiles import STUDY_RECORD, StudyRecord, TrialRecord
from ftlab.suite.expand import RunSpec
from ftlab.tune.schema import REFIT_ALL, TuneConfig
from ftlab.tune.plan import StudyPlan, decoded
from ftlab.tune.space import overrides_for
from ftlab.tune.trial import ERROR_ATTR, OVER_BUDGET, RUN_ATTR, STEP_PEAK_ATTR, SURPLUS

log = logging.getLogger("ftlab")


def study_record(study: optuna.Study, plan: StudyPlan, tune: TuneConfig) -> StudyRecord:
    """The study as plain data: its ended and failed trials (surplus ones left out), the
    best, what the search cost in epochs, and each hyperparameter's importance."""
    trials = [_trial(t) for t in study.get_trials(deepcopy=False)
              if t.state.is_finished() and t.user_attrs.get(ERROR_ATTR) != SURPLUS]
    ended = [t for t in trials if t.state in ("complete", "pruned")]
    complete = [t for t in trials if t.state == "complete" and t.value is not None]
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
    refit_all = tune.refit == REFIT_ALL
    final_epochs = None if best is None else (best.best_epoch or plan.epochs) if refit_all \
        else plan.epochs
    return StudyRecord(
        study=plan.name, dataset=plan.dataset, strategy=plan.strategy,
        space=plan.describe_space(), sampler=tune.sampler, pruner=tune.pruner,
        epochs=plan.epochs, trials=trials, best=best,
        epochs_trained=sum(t.epochs for t in ended),
        epochs_without_pruning=len(ended) * plan.epochs, refit=tune.refit,
        final_epochs=final_epochs,
        importance=_importance(study, len(plan.space)) if len(complete) >= 3 else {})


def _trial(trial: FrozenTrial) -> TrialRecord:
    state = trial.state.name.lower()
    value = trial.value if trial.state == TrialState.COMPLETE else (
        trial.intermediate_values[max(trial.intermediate_values)]
        if trial.state == TrialState.PRUNED and trial.intermediate_values else None)
    values = trial.intermediate_values
    best_epoch = min(e for e, v in values.items() if v == max(values.values())) if values \
        else None
    return TrialRecord(number=trial.number, state=state, value=value,
                       params=decoded(trial.params), epochs=len(values),
                       run=trial.user_attrs.get(RUN_ATTR), error=trial.user_attrs.get(ERROR_ATTR),
                       best_epoch=best_epoch,
                       step_peak_bytes=trial.user_attrs.get(STEP_PEAK_ATTR))


def _importance(study: optuna.Study, space_size: int) -> dict[str, float]:
    """PED-ANOVA importances (Watanabe et al., 2023: which hyperparameters set the top
    trials apart; numpy only). Empty for a one-key space, where the answer is trivial, or
    where they cannot be computed."""
    if space_size < 2:
        return {}
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its note that few trials make it rough
            values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError):
        return {}
    return {key: round(float(value), 4) for key, value in values.items()}


def write_record(record: StudyRecord, plan: StudyPlan) -> Path:
    path = plan.folder / STUDY_RECORD
    atomic_write_text(path, record.to_json())
    return path


def final_specs(plans: list[StudyPlan], records: dict[str, StudyRecord], tune: TuneConfig,
                runs_folder: Path) -> list[RunSpec]:
    """The final runs: each study's best setting, once per seed.

    With refit train+val they train on every labelled image (data.val_fraction=0) for the
    best trial's best epoch, the same number of passes as the search found best (over the
    larger set, so 1 / (1 - val_fraction) times the steps). Nothing is chosen on validation
    data any more, since there is none: the last checkpoint is what test evaluates. The
    trial's augmentation is written out, because `auto` would choose by the new epoch count.
    """
    specs = []
    for plan in plans:
        record = records[plan.name]
        best = record.best
        if best is None and over_budget(record):
            log.warning("tune %s: no trial's training step fits tune.memory_budget=%s (the "
                        "smallest needs %s); nothing to retrain", plan.label,
                        tune.memory_budget, _smallest_need(record))
            continue
        if best is None:
            raise ConfigError(f"tune {plan.label}: no trial completed, so there is no setting "
                              f"to retrain; see the trials' logs in {plan.folder}")
        refit = (["data.val_fraction=0", f"train.epochs={record.final_epochs}"]
                 if record.refit == REFIT_ALL else [])
        for seed in tune.seeds:
            name = f"{plan.label}-s{seed}"
            overrides = (*plan.overrides, f"data.augment={trial_augment(plan, best.params)}",
                         *overrides_for(best.params), *refit, f"train.seed={seed}",
                         f"data.split_seed={seed}", f"train.output_dir={runs_folder}",
                         f"train.run_name={name}")
            specs.append(RunSpec(name, plan.base, overrides, dataset=plan.dataset,
                                 strategy=plan.strategy, seed=seed))
    return specs


def over_budget(record: StudyRecord) -> bool:
    """Whether every ended trial of the study was over tune.memory_budget (none ran)."""
    ended = [t for t in record.trials if t.state in ("complete", "pruned")]
    return bool(ended) and all((t.error or "").startswith(OVER_BUDGET) for t in ended)


def _smallest_need(record: StudyRecord) -> str:
    needs = [t.step_peak_bytes for t in record.trials if t.step_peak_bytes is not None]
    return f"{min(needs) / 2**20:,.1f} MiB" if needs else "more"


def trial_augment(plan: StudyPlan, params: dict[str, Any]) -> str:
    """The augmentation a trial with `params` trained with (data.augment resolved)."""
    return resolve_config(load_config(plan.base, plan.trial_overrides(params, "final"))
                          ).data.augment


def describe_best(record: StudyRecord) -> str:
    """One line: the best trial's values and validation top-1, and what pruning saved."""
    best = record.best
    assert best is not None
    values = ", ".join(_value(k, v) for k, v in best.params.items())
    ended = [t for t in record.trials if t.state in ("complete", "pruned")]
    pruned = sum(t.state == "pruned" for t in ended)
    ratio = record.epoch_ratio
    cost = (f", {pruned} pruned: {100 * ratio:.0f} % of the epochs of running all to the end"
            if ratio is not None else "")
    return (f"{record.study}: best {values} (trial {best.number}, val top-1 "
            f"{best.value:.2f} %) of {len(ended)} trials{cost}")


def _value(key: str, value: Any) -> str:
    return f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
