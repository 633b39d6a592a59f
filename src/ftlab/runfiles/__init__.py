"""The files ftlab writes and reads back, typed and versioned: the lowest layer, so that
training (the writer) and report, analysis and suite (the readers) share one definition.

- `names`: every file and folder name;
- `run`: a run folder's checkpoint (`Checkpoint`) and summary.json (`RunSummary`);
- `suite`: a suite folder's index, suite.json (`SuiteIndex`);
- `study`: a tuning study's record, study.json (`StudyRecord`);
- `memory`: the rows of memory.csv (`MemoryRecord`);
- `evaluation`: `ftlab eval`'s eval.json (`EvalRecord`);
- `architecture`: a network block by block, architecture.json (`ArchitectureRecord`);
- `folder`: a run folder on disk (`RunFolder`) and finding run folders;
- `versions`: each file's `format_version`, and refusing one from a newer ftlab.
"""

from ftlab.runfiles.folder import (
    RunFolder,
    is_run_folder,
    read_metrics_csv,
    run_folder_contents,
    run_folders_below,
    training_started,
)
from ftlab.runfiles.architecture import (
    ARCHITECTURE_VERSION,
    ArchitectureRecord,
    BlockRecord,
    read_architecture,
)
from ftlab.runfiles.evaluation import EVAL_VERSION, EvalRecord, read_eval_record
from ftlab.runfiles.memory import MEMORY_VERSION, MemoryRecord, memory_csv, read_memory_csv
from ftlab.runfiles.names import (
    ARCHITECTURE,
    BEST,
    CONFIG,
    DIFF_JSON,
    DIFF_SUMMARY,
    EVAL_CONFUSION,
    EVAL_JSON,
    EVAL_PER_CLASS,
    EVAL_PREDICTIONS,
    EXPORT_SIDECAR_SUFFIX,
    LAST,
    LOCK,
    LOG,
    MEMORY_CSV,
    MEMORY_MD,
    METRICS,
    PLAN_CSV,
    PLAN_FIGURE,
    PLAN_MD,
    PLAN_POINTS,
    PREVIOUS,
    READ_BACK,
    RUN_MEMORY,
    SCHEME_CONFIG,
    SCHEME_JSON,
    SCHEME_MD,
    SUITE_CSV,
    SUITE_EVALUATIONS,
    SUITE_FILE,
    SUITE_INDEX,
    SUITE_LOGS,
    SUITE_MEMORY,
    STEP_SETTINGS,
    SUITE_RUNS,
    SUITE_TUNE,
    STUDY_RECORD,
    SUMMARY,
    TENSORBOARD,
    TUNE_JOURNAL,
    TUNE_LOCK,
    TUNE_LOCKS,
)
from ftlab.runfiles.run import (
    CHECKPOINT_VERSION,
    SUMMARY_VERSION,
    Checkpoint,
    PartialEpoch,
    RunSummary,
    checkpoint_version,
    read_summary,
)
from ftlab.runfiles.study import STUDY_VERSION, StudyRecord, TrialRecord, read_study_record
from ftlab.runfiles.suite import (
    SCRATCH_VS_FINETUNE,
    SUITE_INDEX_VERSION,
    ReportSettings,
    RunNumbers,
    SuiteIndex,
    SuiteRun,
    read_report_settings,
    read_suite_index,
)

__all__ = [
    "ARCHITECTURE", "ARCHITECTURE_VERSION", "ArchitectureRecord", "BlockRecord",
    "read_architecture", "EVAL_CONFUSION", "EVAL_JSON", "EVAL_PER_CLASS", "EVAL_PREDICTIONS",
    "EVAL_VERSION", "EXPORT_SIDECAR_SUFFIX", "EvalRecord", "SUITE_EVALUATIONS",
    "read_eval_record", "BEST", "CHECKPOINT_VERSION", "CONFIG", "DIFF_JSON", "DIFF_SUMMARY", "LAST", "LOCK", "LOG",
    "MEMORY_CSV", "MEMORY_MD", "MEMORY_VERSION", "METRICS", "PLAN_CSV", "PLAN_FIGURE", "PLAN_MD",
    "PLAN_POINTS", "PREVIOUS",
    "READ_BACK", "RUN_MEMORY", "SCHEME_CONFIG", "SCHEME_JSON", "SCHEME_MD",
    "SCRATCH_VS_FINETUNE", "STEP_SETTINGS", "SUITE_CSV", "SUITE_FILE", "SUITE_INDEX", "SUITE_INDEX_VERSION", "SUITE_LOGS",
    "SUITE_MEMORY", "SUITE_RUNS", "SUITE_TUNE", "STUDY_RECORD", "STUDY_VERSION", "SUMMARY",
    "SUMMARY_VERSION", "TENSORBOARD", "TUNE_JOURNAL", "TUNE_LOCK", "TUNE_LOCKS", "Checkpoint",
    "MemoryRecord", "PartialEpoch", "ReportSettings", "RunFolder", "RunNumbers", "RunSummary", "SuiteIndex",
    "StudyRecord", "SuiteRun", "TrialRecord", "checkpoint_version", "is_run_folder", "memory_csv", "read_memory_csv",
    "read_metrics_csv", "read_report_settings", "read_study_record", "read_summary",
    "read_suite_index", "run_folder_contents",
    "run_folders_below", "training_started",
]
