"""From a suite file to the list of runs it means, every one validated before any starts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ftlab.config import ExperimentConfig, load_config
from ftlab.config.loading import load_structured
from ftlab.errors import ConfigError, FtlabError
from ftlab.fileio import user_path
from ftlab.runfiles import SUITE_RUNS
from ftlab.suite.schema import SuiteConfig
from ftlab.training import check_config


@dataclass(frozen=True)
class RunSpec:
    """One run of a suite: how to configure it and where it belongs in the report."""

    name: str
    base: str | None
    overrides: tuple[str, ...]
    """Everything after the base file, output folder and run name included."""
    dataset: str | None = None
    strategy: str | None = None
    variant: str | None = None
    seed: int | None = None
    continue_from: str | None = None

    def labels(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "strategy": self.strategy, "variant": self.variant,
                "seed": self.seed}


def load_suite(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SuiteConfig:
    """Read a suite file; `${oc.env:VAR,default}` interpolations are resolved."""
    path = Path(path)
    try:
        return load_structured(SuiteConfig, path, overrides)
    except ConfigError as err:
        raise ConfigError(f"suite {path}: {err}") from None


def expand(suite: SuiteConfig, suite_file: Path) -> list[RunSpec]:
    """Grid runs first (datasets x strategies x variants x seeds), then the listed runs."""
    base = str((suite_file.parent / suite.base).resolve()) if suite.base else None
    folder = suite_dir(suite, suite_file) / SUITE_RUNS
    specs = [_grid_run(suite, base, folder, combo) for combo in _combinations(suite)]
    for entry in suite.runs:
        source = next((s for s in specs if s.name == entry.continue_from), None)
        labels = {} if source is None else {"dataset": source.dataset,
                                            "strategy": source.strategy, "seed": source.seed,
                                            "variant": entry.name}
        specs.append(RunSpec(entry.name, base, _overrides(suite, folder, entry.name,
                                                          entry.overrides),
                             continue_from=entry.continue_from, **labels))
    _check_names(specs)
    return specs


def suite_dir(suite: SuiteConfig, suite_file: Path) -> Path:
    """output_dir/name; a relative output_dir is relative to the working directory."""
    return user_path(suite.output_dir, "output_dir") / suite.name


def validate(specs: list[RunSpec]) -> dict[str, ExperimentConfig]:
    """Resolve and check every run's config; the first bad one names its run."""
    configs = {}
    for spec in specs:
        try:
            config = load_config(spec.base, list(spec.overrides))
            check_config(config)
        except FtlabError as err:
            raise ConfigError(f"run {spec.name}: {err}") from None
        configs[spec.name] = config
    return configs


def _combinations(suite: SuiteConfig) -> list[dict[str, Any]]:
    grid = suite.grid
    if not grid.strategies:
        return []
    axes = {"dataset": list(grid.datasets) or [None], "strategy": list(grid.strategies),
            "variant": list(grid.variants) or [None], "seed": list(grid.seeds) or [None]}
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def _grid_run(suite: SuiteConfig, base: str | None, folder: Path, combo: dict[str, Any]
              ) -> RunSpec:
    grid = suite.grid
    extra: list[str] = []
    if combo["dataset"] is not None:
        extra += grid.datasets[combo["dataset"]]
    strategy_overrides = grid.strategies[combo["strategy"]]
    if not any(o.startswith("strategy.name=") for o in strategy_overrides):
        extra.append(f"strategy.name={combo['strategy']}")
    extra += strategy_overrides
    if combo["variant"] is not None:
        extra += grid.variants[combo["variant"]]
    if combo["seed"] is not None:
        extra.append(f"train.seed={combo['seed']}")
    parts = [combo["dataset"], combo["strategy"], combo["variant"]]
    name = "-".join(p for p in parts if p) + ("" if combo["seed"] is None
                                              else f"-s{combo['seed']}")
    return RunSpec(name, base, _overrides(suite, folder, name, extra), **combo)


def _overrides(suite: SuiteConfig, folder: Path, name: str, extra: list[str]
               ) -> tuple[str, ...]:
    return (*suite.overrides, *extra, f"train.output_dir={folder}", f"train.run_name={name}")


def _check_names(specs: list[RunSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(f"two runs of the suite are named {spec.name!r}; run names must "
                              "be unique")
        seen.add(spec.name)
    _check_continuations({spec.name: spec.continue_from for spec in specs})


def _check_continuations(sources: dict[str, str | None]) -> None:
    """Every `continue_from` names a run of the suite, and following them never comes back:
    a run in a cycle would wait for itself, and the suite would end with nothing run."""
    for name, source in sources.items():
        if source is not None and source not in sources:
            raise ConfigError(f"run {name}: continue_from={source!r} is not a run of this "
                              f"suite; name one of: {', '.join(sorted(sources))}")
    for name in sources:
        chain = [name]
        while (source := sources[chain[-1]]) is not None:
            if source in chain:
                cycle = chain[chain.index(source):] + [source]
                raise ConfigError("continue_from forms a cycle (" + " -> ".join(cycle) +
                                  "): each of these runs would wait for the next to finish; "
                                  "make one of them start from the base config")
            chain.append(source)


def to_container(suite: SuiteConfig) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(suite))  # type: ignore[return-value]
