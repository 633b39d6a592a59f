"""The report's tuning section, from each study's study.json (`ftlab tune`): what was
searched, the best setting, what pruning saved, which hyperparameters mattered, and how the
best validation top-1 grew with the trials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftlab.report.plots import draw_history, save_data
from ftlab.runfiles import STUDY_RECORD, SUITE_TUNE, StudyRecord, read_study_record
from ftlab.tables import markdown_table

LR = "optim.lr"
"""The hyperparameter every strategy's space searches, plotted against the trials' values."""


def tuning_section(root: Path, figures: Path) -> str:
    """Empty for a suite that was not tuned."""
    records = [read_study_record(path)
               for path in sorted((root / SUITE_TUNE).glob(f"*/{STUDY_RECORD}"))]
    if not records:
        return ""
    rows = [_row(record) for record in records]
    header = ["dataset", "strategy", "trials (complete / pruned / failed)", "best setting",
              "best val top-1 %", "epochs trained", "important hyperparameters", "final runs"]
    parts = [markdown_table(header, rows), _cost(records)]
    for dataset in sorted({r.dataset or "" for r in records}):
        chosen = [r for r in records if (r.dataset or "") == dataset]
        histories = {r.strategy: _history(r) for r in chosen}
        trials = {r.strategy: _trials(r, LR) for r in chosen}
        title = f"{dataset + ': ' if dataset else ''}best validation top-1 over the trials"
        stem = figures / f"tuning-{dataset or 'all'}"
        shown = trials if any(trials.values()) else None
        save_data(draw_history(histories, title, shown, LR),
                  {"histories": {k: [list(p) for p in v] for k, v in histories.items()},
                   "trials": {k: [list(p) for p in v] for k, v in trials.items()}}, stem)
        parts.append(f"![{title}](figures/{stem.name}.png)")
    return ("## Tuning\n\nEach strategy's hyperparameters were searched on the validation "
            "split (trials never evaluate on test); the best setting was then trained once "
            "per seed, and only those runs were tested (the results above). " + _refit(records)
            + "\n\n" + "\n\n".join(parts))


def _refit(records: list[StudyRecord]) -> str:
    """What the final runs trained on (the column "final runs" says it per study)."""
    if all(r.refit == "train" for r in records):
        return ("They trained on the trials' training split, and test evaluated their best "
                "validation checkpoint.")
    return ("Final runs marked train+val were retrained on every labelled image (the "
            "validation split included, so nothing was chosen on it any more) for the best "
            "trial's best epoch, and test evaluated their last checkpoint.")


def _row(record: StudyRecord) -> list[str]:
    states = [t.state for t in record.trials]
    best = record.best
    return [record.dataset or "–", record.strategy,
            f"{states.count('complete')} / {states.count('pruned')} / {states.count('fail')}",
            ", ".join(_value(k, v) for k, v in best.params.items()) if best else "–",
            f"{best.value:.2f}" if best and best.value is not None else "–",
            f"{record.epochs_trained} of {record.epochs_without_pruning}",
            ", ".join(f"{k} {v:.0%}" for k, v in record.importance.items()) or "–",
            f"{record.refit}, {record.final_epochs} epochs" if record.final_epochs else "–"]


def _cost(records: list[StudyRecord]) -> str:
    trained = sum(r.epochs_trained for r in records)
    full = sum(r.epochs_without_pruning for r in records)
    if not full:
        return ""
    return (f"Pruning ({records[0].pruner}, on per-epoch validation top-1) trained {trained} "
            f"of the {full} epochs the same trials would have trained to the end: "
            f"{trained / full:.0%}. Importance: PED-ANOVA's share of what sets the best trials "
            "apart (two or more searched keys, three or more complete trials).")


def _history(record: StudyRecord) -> list[tuple[int, float]]:
    best, points = None, []
    for trial in sorted(record.trials, key=lambda t: t.number):
        if trial.state == "complete" and trial.value is not None:
            best = trial.value if best is None else max(best, trial.value)
        if best is not None:
            points.append((trial.number, best))
    return points


def _trials(record: StudyRecord, key: str) -> list[tuple[float, float, bool]]:
    """(value of `key`, validation top-1, complete) of each ended trial that drew `key`."""
    return [(float(t.params[key]), t.value, t.state == "complete") for t in record.trials
            if t.state in ("complete", "pruned") and t.value is not None and key in t.params]


def _value(key: str, value: Any) -> str:
    return f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
