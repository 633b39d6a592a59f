"""The names of the files and folders ftlab writes; nothing outside `ftlab.runfiles` spells
them out, so a reader and its writer cannot drift apart."""

from __future__ import annotations

# --- a run folder (`ftlab train`) ---------------------------------------------------------
CONFIG = "config.yaml"
"""The resolved config, written first: what marks a folder as a run and what --resume reads."""
METRICS = "metrics.csv"
"""One row per finished epoch, rewritten from the checkpoint's history after every epoch."""
SUMMARY = "summary.json"
"""A finished run's numbers (`RunSummary`); present only once the run is complete."""
LAST = "last.pt"
"""The checkpoint to resume from (`Checkpoint`)."""
BEST = "best.pt"
"""The checkpoint of the best validation epoch, the one tested."""
PREVIOUS = "previous.pt"
"""The checkpoint last.pt replaced: a fallback when last.pt is damaged."""
LOG = "log.txt"
TENSORBOARD = "tensorboard"
LOCK = ".lock"
RUN_MEMORY = "train_memory.csv"
"""A suite run's training-step memory at its own settings, stock and as executed (rows of
memory.csv's `MemoryRecord`), written by the suite after the run."""

# --- a suite folder (`ftlab suite`) -------------------------------------------------------
SUITE_INDEX = "suite.json"
"""The index `ftlab suite` keeps in a suite folder (`SuiteIndex`): what marks a folder as a
suite."""
SUITE_CSV = "suite.csv"
"""suite.json's runs as a spreadsheet, for people; ftlab never reads it."""
SUITE_FILE = "suite.yaml"
"""The resolved suite file, the first thing `ftlab suite` writes into its folder."""
SUITE_RUNS = "runs"
"""The suite folder's subfolder with its run folders (unless the suite sets train.output_dir)."""
SUITE_LOGS = "logs"
"""The suite folder's subfolder with each run's console output."""
SUITE_MEMORY = "memory"
"""The suite folder's subfolder with its `ftlab memory` table."""
STEP_SETTINGS = "settings.yaml"
"""The settings a suite step (its memory table, an evaluation) last ran with, in that step's
folder: the step is redone when they change."""

# --- a tuned suite folder (`ftlab tune`) --------------------------------------------------
SUITE_TUNE = "tune"
"""The suite folder's subfolder with one folder per study (its trials' run folders)."""
TUNE_JOURNAL = "journal.log"
"""The default study storage: Optuna's journal file, in the suite's tune/ folder."""
TUNE_LOCK = ".lock"
"""Held by the `ftlab tune` process that owns a suite folder (workers do not take it)."""
TUNE_LOCKS = ".trials"
"""A study folder's subfolder of per-trial locks, held by the worker running the trial."""
STUDY_RECORD = "study.json"
"""A study's trials, best setting and cost (`StudyRecord`)."""

# --- `ftlab eval`, `ftlab arch` and `ftlab export` outputs -----------------------------
EVAL_JSON = "eval.json"
"""`ftlab eval`'s numbers (`EvalRecord`); marks a folder as that command's output."""
EVAL_PER_CLASS = "per_class.csv"
EVAL_CONFUSION = "confusion.csv"
"""Rows: true class; columns: predicted class (and `other`: outputs the data has no class
for)."""
EVAL_PREDICTIONS = "predictions.csv"
"""One row per image: its file, true class, predicted class and confidence."""
ARCHITECTURE = "architecture.json"
"""A network's blocks, what trains in each and their activation memory (`ftlab arch`); a
suite writes one into each complete run folder."""
EXPORT_SIDECAR_SUFFIX = ".json"
"""An exported model's sidecar (class names and preprocessing) is the model's path with
this suffix added."""
SUITE_EVALUATIONS = "evaluations"
"""The suite folder's subfolder with one `ftlab eval` output per `evaluations` entry."""

# --- `ftlab memory` and `ftlab diff` outputs ----------------------------------------------
MEMORY_CSV = "memory.csv"
"""The rows of an `ftlab memory` table (`MemoryRecord`); marks a folder as that command's
output."""
MEMORY_MD = "memory.md"
"""The same table in Markdown, with its settings and method."""
PLAN_CSV = "plan.csv"
"""One row per strategy and execution of an `ftlab plan`: the largest batch (and
resolution) that fits the budget; marks a folder as that command's output."""
PLAN_MD = "plan.md"
"""The same answers in Markdown, with the budget, settings and method."""
PLAN_POINTS = "plan_points.csv"
"""Every training step `ftlab plan` measured: strategy, execution, batch, resolution, peak."""
PLAN_FIGURE = "plan.png"
"""Step peak against batch size per strategy, with the budget's line."""
SCHEME_JSON = "scheme.json"
"""`ftlab sparse-scheme`'s measurements and choice; marks a folder as that command's output."""
SCHEME_MD = "scheme.md"
"""The same as a table: each candidate layer's gain and costs, and what was chosen."""
SCHEME_CONFIG = "config.yaml"
"""The experiment with the chosen scheme: `ftlab train FOLDER/config.yaml` trains it."""
DIFF_JSON = "diff.json"
"""Every number of an `ftlab diff` comparison; marks a folder as that command's output."""
DIFF_SUMMARY = "summary.md"
"""An `ftlab diff` comparison in words and figures, for the terminal and the report."""

READ_BACK = (CONFIG, METRICS, SUMMARY, LAST, BEST, PREVIOUS, RUN_MEMORY, ARCHITECTURE,
             SUITE_INDEX, SUITE_FILE, STEP_SETTINGS, MEMORY_CSV, TUNE_JOURNAL, STUDY_RECORD,
             EVAL_JSON, DIFF_JSON)
"""The files ftlab reads back (to resume, report, evaluate, continue a suite or a search):
another command's output never replaces one, --overwrite or not."""
