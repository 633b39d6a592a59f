"""`ftlab suite`: many runs from one file, their index, the memory table, and the report."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import yaml

from ftlab.config import ExperimentConfig
from ftlab.errors import ConfigError
from ftlab.fileio import atomic_write_text, check_output_folder
from ftlab.runfiles import (
    BEST,
    DIFF_JSON,
    EVAL_JSON,
    MEMORY_CSV,
    SUITE_EVALUATIONS,
    SUITE_FILE,
    SUITE_MEMORY,
    STEP_SETTINGS,
)
from ftlab.suite.execute import LocalExecutor, share_cpus
from ftlab.suite.expand import (
    RunSpec,
    expand,
    has_section,
    load_suite,
    suite_dir,
    to_container,
    validate,
)
from ftlab.suite.index import write_index
from ftlab.suite.schema import SuiteConfig
from ftlab.suite.state import RunState, initial_states, write_configs

log = logging.getLogger("ftlab")


@dataclass(frozen=True)
class SuiteResult:
    root: Path
    states: dict[str, RunState]
    report: tuple[Path, Path] | None

    @property
    def failed(self) -> list[str]:
        return [name for name, state in self.states.items() if state.status == "failed"]


def run_suite(path: str | Path, overrides: Sequence[str] = (), report: bool = True
              ) -> SuiteResult:
    """Run (or resume) every run of the suite file, then its memory table and report.

    Every run's config is resolved and validated before the first starts, and written into
    its folder (`RUN/config.yaml`, what `ftlab train` starts it from); complete runs are
    skipped.
    """
    from ftlab.runtime import ensure_console_log

    ensure_console_log()
    suite_file = Path(path)
    try:
        suite = load_suite(suite_file, list(overrides))
    except ConfigError:
        if has_section(suite_file, "tune"):
            raise ConfigError(f"suite {suite_file} has a tune: section; run it with ftlab "
                              f"tune {suite_file} (ftlab suite trains untuned grids)") from None
        raise
    specs = expand(suite, suite_file)
    configs = validate(specs)
    root = prepare_folder(suite, suite_file)
    return run_specs(suite, suite_file, root, specs, configs, report)


def prepare_folder(suite: SuiteConfig, suite_file: Path) -> Path:
    """The suite folder, created, with the resolved suite file in it; a folder that is not a
    suite's is refused."""
    root = check_output_folder(suite_dir(suite, suite_file), SUITE_FILE, "suite",
                               option="suite folder (output_dir/name)")
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / SUITE_FILE, yaml.safe_dump(to_container(suite), sort_keys=False))
    return root


def run_specs(suite: SuiteConfig, suite_file: Path, root: Path, specs: list[RunSpec],
              configs: dict[str, ExperimentConfig], report: bool) -> SuiteResult:
    """Run the validated runs `specs` in the suite folder `root` (complete ones skipped),
    then the memory table, the analyses and the report."""
    if suite.executor == "local":  # runs side by side here share its CPUs
        configs = {name: share_cpus(config, suite.parallel) for name, config in configs.items()}
    states = initial_states(specs, configs, root)
    write_configs(states.values())
    skipped = [name for name, state in states.items() if state.status == "complete"]
    log.info("suite %s: %d runs, %d already complete%s", suite.name, len(states), len(skipped),
             f" ({', '.join(skipped)})" if skipped else "")
    run_states(suite, suite_file, root, states)
    run_memory_step(suite, states)
    memory_step(suite, root)
    analysis_step(suite, root, states)
    evaluation_step(suite, root, states)
    paths = None
    if report:
        from ftlab.report import build_report

        paths = build_report(root)
        log.info("report: %s and %s", *paths)
    return SuiteResult(root, states, paths)


def run_states(suite: SuiteConfig, suite_file: Path, root: Path, states: dict[str, RunState]
               ) -> None:
    """Run every pending run with the configured executor, keeping the index current."""
    def index() -> None:
        write_index(root, suite, suite_file, states.values())

    index()
    if suite.executor == "submitit":
        from ftlab.suite.submitit_executor import SubmititExecutor

        SubmititExecutor(suite, states, index, root).run()
    else:
        LocalExecutor(suite, states, index).run()
    index()


def run_memory_step(suite: SuiteConfig, states: dict[str, RunState]) -> None:
    """Each complete run's training-step memory at its own settings (train_memory.csv),
    measured once per distinct setting, for the results table and the Pareto figures."""
    from ftlab.memory import measure_runs

    measured = measure_runs(state.run_dir for state in states.values()
                            if state.status == "complete")
    if measured:
        log.info("suite %s: measured the training memory of %d run setting(s)", suite.name,
                 measured)


def memory_step(suite: SuiteConfig, root: Path) -> None:
    """The suite's `ftlab memory` table, once (kept while its settings are unchanged)."""
    step = suite.memory
    if not step.strategies:
        return
    from ftlab.memory.report import memory_table, memory_title, save

    folder = root / SUITE_MEMORY
    stamp = folder / STEP_SETTINGS
    settings = yaml.safe_dump(to_container(suite)["memory"], sort_keys=True)
    if (folder / MEMORY_CSV).is_file() and stamp.is_file() and stamp.read_text() == settings:
        return
    log.info("suite %s: measuring training memory of %s", suite.name, ", ".join(step.strategies))
    save(memory_table(step), folder, memory_title(step))
    atomic_write_text(stamp, settings)


def analysis_step(suite: SuiteConfig, root: Path, states: dict[str, RunState]) -> None:
    """Each `analysis` entry's `ftlab diff`, redone only when a compared run changed."""
    for entry in suite.analysis:
        given = {key: getattr(entry, key) for key in ("a", "b", "ref", "probe")
                 if getattr(entry, key)}
        sides = {key: _resolve(spec, states) for key, spec in given.items()}
        if None in sides.values():
            log.warning("suite %s: analysis %s skipped: a run it compares is not complete",
                        suite.name, entry.name)
            continue
        out = root / "analysis" / entry.name
        if _up_to_date(out, [side for side in sides.values() if side]):
            continue
        from ftlab.analysis import diff

        log.info("suite %s: analysis %s", suite.name, entry.name)
        diff(replace(entry, **sides), out)


def evaluation_step(suite: SuiteConfig, root: Path, states: dict[str, RunState]) -> None:
    """Each `evaluations` entry's `ftlab eval`, redone when its settings changed or the run
    it evaluates trained further."""
    for entry in suite.evaluations:
        target = _resolve(entry.target, states)
        if target is None:
            log.warning("suite %s: evaluation %s skipped: run %s is not complete", suite.name,
                        entry.name, entry.target)
            continue
        out = root / SUITE_EVALUATIONS / entry.name
        settings = yaml.safe_dump({**asdict(entry), "target": target}, sort_keys=True)
        stamp = out / STEP_SETTINGS
        if _up_to_date(out, [target] if Path(target).is_dir() else [], EVAL_JSON) \
                and stamp.is_file() and stamp.read_text() == settings:
            continue
        from ftlab.inference import evaluate

        log.info("suite %s: evaluation %s", suite.name, entry.name)
        evaluate(target, overrides=entry.overrides, split=entry.split, bins=entry.bins,
                 output_dir=out, overwrite=True)
        atomic_write_text(stamp, settings)


def _resolve(spec: str, states: dict[str, RunState]) -> str | None:
    """A run of the suite as its folder, None while it is incomplete; anything else (a
    folder, a checkpoint, pretrained:<weights>) as given."""
    state = states.get(spec)
    if state is None:
        return spec
    return str(state.run_dir) if state.status == "complete" else None


def _up_to_date(out: Path, sides: list[str], marker: str = DIFF_JSON) -> bool:
    result = out / marker
    if not result.is_file():
        return False
    newest = max((Path(s) / BEST).stat().st_mtime for s in sides
                 if (Path(s) / BEST).is_file()) if sides else 0.0
    return result.stat().st_mtime >= newest


__all__ = ["RunSpec", "SuiteConfig", "SuiteResult", "prepare_folder", "run_specs", "run_suite"]
