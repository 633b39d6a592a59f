"""From a suite file to the list of runs it means, every one validated before any starts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf

from ftlab.assembly import resolve_config
from ftlab.config import ExperimentConfig, load_config, replace_sections
from ftlab.config.loading import load_structured
from ftlab.errors import ConfigError, FtlabError
from ftlab.fileio import user_path
from ftlab.runfiles import SUITE_RUNS
from ftlab.suite.schema import SuiteConfig
from ftlab.yamlfile import read_yaml

OWN_SETTINGS = ("train.epochs", "train.run_name", "train.output_dir", "train.num_threads",
                "data.num_workers")
"""What a run of the suite always takes from its own entry: how long it trains, its folder,
and its CPU threads. A `continue_from` run takes everything else from its source, and a
resumed run is given these again (all may change on --resume)."""


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


def load_suite(path: str | Path, overrides: list[str] | tuple[str, ...] = (),
               schema: type[SuiteConfig] = SuiteConfig) -> SuiteConfig:
    """Read a suite file as `schema` (SuiteConfig or a subclass with more sections, such as
    `ftlab tune`'s); `${oc.env:VAR,default}` interpolations are resolved."""
    path = Path(path)
    try:
        return load_structured(schema, path, overrides)
    except ConfigError as err:
        raise ConfigError(f"suite {path}: {err}") from None


def has_section(path: str | Path, section: str) -> bool:
    """Whether the suite file's top level has `section` (before any checking: `ftlab suite`
    asks this of `tune:` to point at `ftlab tune` instead of calling the key unknown)."""
    values = read_yaml(Path(path), "suite file")
    return isinstance(values, Mapping) and section in values


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
    """Resolve and check every run's config; the first bad one names its run.

    A `continue_from` run trains its source on, so its config is its source's with its own
    `OWN_SETTINGS` (its entry is checked all the same).
    """
    configs = {}
    for spec in specs:
        try:
            config = resolve_config(load_config(spec.base, list(spec.overrides)))
        except FtlabError as err:
            raise ConfigError(f"run {spec.name}: {err}") from None
        configs[spec.name] = config
    sources = {spec.name: spec.continue_from for spec in specs}
    return {name: _continued(name, sources, configs) for name in configs}


def own_settings(config: ExperimentConfig) -> dict[str, Any]:
    """`OWN_SETTINGS` of a config: dotted key -> value (None where unset)."""
    values = {}
    for key in OWN_SETTINGS:
        section, name = key.split(".")
        values[key] = getattr(getattr(config, section), name)
    return values


def _continued(name: str, sources: dict[str, str | None], configs: dict[str, ExperimentConfig]
               ) -> ExperimentConfig:
    """A run's config: its own, or (continue_from) its source's, followed to the first run of
    the chain (`expand` has refused cycles), with this run's own settings."""
    source = sources[name]
    if source is None:
        return configs[name]
    sections: dict[str, dict[str, Any]] = {}
    for key, value in own_settings(configs[name]).items():
        section, field = key.split(".")
        sections.setdefault(section, {})[field] = value
    return replace_sections(_continued(source, sources, configs), **sections)


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
