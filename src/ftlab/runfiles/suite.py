"""The typed index of a suite folder, suite.json: every run of a suite, its state, and its
headline numbers.

`ftlab suite` writes it (`ftlab.suite.index`) after every change of a run's state; `ftlab
report` reads it to group the runs. Reading goes through `read_suite_index`, which checks
every key, upgrades older `format_version`s, refuses newer ones and finds the runs of a suite
folder that was moved or copied since it was written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ftlab.errors import RunDirError
from ftlab.runfiles.fields import field_values
from ftlab.runfiles.names import SUITE_FILE, SUITE_INDEX, SUITE_LOGS
from ftlab.runfiles.run import RunSummary
from ftlab.runfiles.versions import checked_version
from ftlab.yamlfile import read_yaml

SUITE_INDEX_VERSION = 1
"""The suite.json layout this code writes; 1 is also ftlab 0.1's, which had no key."""


@dataclass(frozen=True, kw_only=True)
class RunNumbers:
    """A complete run's headline numbers, copied from its summary.json into the index."""

    best_val_top1: float | None
    best_epoch: int
    test_top1: float | None
    """None for a run that did not evaluate on test (train.evaluate_test=false)."""
    test_top5: float | None
    trainable_params: int
    total_params: int
    epochs: int
    epoch_time_s: float
    images_per_s: float
    peak_memory_bytes: int | None
    wall_time_s: float

    @classmethod
    def of(cls, summary: RunSummary) -> RunNumbers:
        return cls(**{f.name: getattr(summary, f.name) for f in fields(cls)})


@dataclass(frozen=True, kw_only=True)
class SuiteRun:
    """One run of a suite as the index records it."""

    name: str
    status: str
    """pending, running, complete, failed or stopped."""
    dataset: str | None = None
    """The grid's dataset label (None for a listed run)."""
    strategy: str | None = None
    variant: str | None = None
    seed: int | None = None
    numbers: RunNumbers | None = None
    """Only for a complete run (flattened into the row on disk)."""
    seconds: float | None = None
    """Wall time of its last attempt in this suite process."""
    run_dir: str
    log: str
    """The run's console output (in the suite folder's logs/)."""
    error: str | None = None
    overrides: list[str] = field(default_factory=list)
    continue_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """One row of suite.json (and suite.csv): the numbers inline, as ftlab 0.1 wrote them."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "numbers"}
        numbers = asdict(self.numbers) if self.numbers else {}
        head = ["name", "status", "dataset", "strategy", "variant", "seed"]
        return {**{k: values.pop(k) for k in head}, **numbers, **values}

    @classmethod
    def from_dict(cls, values: Any, source: object) -> SuiteRun:
        if not isinstance(values, Mapping):
            raise RunDirError(f"{source} is not an ftlab suite index (a run is not a JSON "
                              "object); run the suite again to rewrite it")
        run = cls(**field_values(cls, values, "suite index run", source, RunDirError))
        if not any(f.name in values for f in fields(RunNumbers)):
            return run
        return replace(run, numbers=RunNumbers(**field_values(
            RunNumbers, values, f"suite index run {run.name}", source, RunDirError)))


@dataclass(frozen=True, kw_only=True)
class SuiteIndex:
    """suite.json."""

    format_version: int = SUITE_INDEX_VERSION
    suite: str
    """The suite's name."""
    file: str
    """The suite file it was run from."""
    folder: str | None = None
    """The suite folder it was written in: runs below it are found again when the folder
    moves. (Derived from the runs' logs for version 1 files of ftlab 0.1, which lack it.)"""
    updated: str
    runs: list[SuiteRun]

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**values, "runs": [run.to_dict() for run in self.runs]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, values: Any, source: object) -> SuiteIndex:
        """suite.json's values read from `source`, upgraded to this code's format_version."""
        if not isinstance(values, Mapping) or not isinstance(values.get("runs"), list):
            raise RunDirError(f"{source} is not an ftlab suite index (damaged or from another "
                              "tool); run the suite again to rewrite it")
        checked_version(values, SUITE_INDEX_VERSION, "suite index", source, RunDirError)
        runs = [SuiteRun.from_dict(row, source) for row in values["runs"]]
        index = cls(**{**field_values(cls, {**values, "runs": []}, "suite index", source,
                                      RunDirError), "runs": runs})
        if index.folder is None:  # ftlab 0.1: every run's log is in <folder>/logs/
            index = replace(index, folder=_folder_of_logs(runs))
        return index

    def moved_to(self, root: Path) -> SuiteIndex:
        """The index with the paths below the folder it was written in re-rooted at `root`
        (the same index when the folder has not moved)."""
        if self.folder is None or _same(Path(self.folder), root):
            return self
        old = Path(self.folder)

        def rebased(path: str) -> str:
            return str(root / Path(path).relative_to(old)) if Path(path).is_relative_to(old) \
                else path

        runs = [replace(run, run_dir=rebased(run.run_dir), log=rebased(run.log))
                for run in self.runs]
        return replace(self, folder=str(root), runs=runs)


def read_suite_index(root: Path) -> SuiteIndex:
    """The suite.json of the suite folder `root`, its paths pointing into `root` even when
    the folder was moved or copied; one line naming the file when it cannot be read."""
    path = root / SUITE_INDEX
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise RunDirError(f"{path} is not an ftlab suite index (damaged or from another "
                          "tool); run the suite again to rewrite it") from None
    return SuiteIndex.from_dict(values, path).moved_to(root)


def _folder_of_logs(runs: list[SuiteRun]) -> str | None:
    folders = {str(Path(run.log).parent.parent) for run in runs
               if Path(run.log).parent.name == SUITE_LOGS}
    return folders.pop() if len(folders) == 1 else None


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


SCRATCH_VS_FINETUNE = ("scratch", "full")
"""The strategies whose curves the report's scratch-vs-fine-tune section shows by default."""


@dataclass(frozen=True)
class ReportSettings:
    """What a suite's report shows: the `report:` section and the overrides of the suite.yaml
    `ftlab suite` wrote into the suite folder (ftlab 0.1's has the same keys). A folder of
    run folders has none, and gets these defaults."""

    title: str | None = None
    compare: list[list[str]] = field(default_factory=list)
    """Groups of strategy names plotted together per dataset; empty: all strategies."""
    scratch_vs_finetune: list[str] = field(default_factory=lambda: list(SCRATCH_VS_FINETUNE))
    smoothing: float = 0.0
    overrides: list[str] = field(default_factory=list)
    """The overrides every run of the suite has."""
    memory_budget: str | None = None
    """A tuned suite's tune.memory_budget (as written, e.g. 512MiB): the recommendation
    names the most accurate strategy within it."""


def read_report_settings(root: Path) -> ReportSettings:
    """The report settings of the suite folder `root` (defaults without a suite.yaml).

    Raises:
        ConfigError: suite.yaml cannot be read as YAML.
        RunDirError: a key is not of its type (a damaged file, or not ftlab's).
    """
    path = root / SUITE_FILE
    values = read_yaml(path, "suite settings") if path.is_file() else None
    if not isinstance(values, Mapping):
        return ReportSettings()
    section = values.get("report") or {}
    if not isinstance(section, Mapping):
        raise RunDirError(f"{path} is not a readable suite file: its 'report' is "
                          f"{type(section).__name__}, not a mapping")
    given = {**section, **({"overrides": values["overrides"]} if "overrides" in values else {})}
    tune = values.get("tune")
    if isinstance(tune, Mapping) and tune.get("memory_budget") is not None:
        given["memory_budget"] = str(tune["memory_budget"])
    kwargs = field_values(ReportSettings, {k: v for k, v in given.items() if v is not None},
                          "suite file", path, RunDirError)
    settings = ReportSettings(**kwargs)
    names = [*settings.scratch_vs_finetune, *settings.overrides,
             *(name for group in settings.compare
               for name in (group if isinstance(group, list) else [group]))]
    if not all(isinstance(group, list) for group in settings.compare) or \
            not all(isinstance(name, str) for name in names) or \
            len(settings.scratch_vs_finetune) != 2:
        raise RunDirError(f"{path} is not a readable suite file: report.compare must be lists "
                          "of strategy names, report.scratch_vs_finetune two names and "
                          "overrides strings")
    return settings
