"""Build an `ExperimentConfig` from YAML files and dotted overrides, through OmegaConf.

OmegaConf merges the layers (defaults <- file <- overrides) against the dataclass schema, so
unknown keys and wrong types are caught by the library; this module only turns its errors
into one line that names the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from ftlab.config.schema import ExperimentConfig
from ftlab.errors import ConfigError
from ftlab.yamlfile import check_yaml, read_yaml


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (),
                base: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """Merge defaults, an optional YAML file, an optional mapping, and `key=value` overrides.

    Args:
        path: YAML file mirroring `ExperimentConfig`; None uses the defaults only.
        overrides: Dotted assignments such as `optim.lr=1e-3`, applied last.
        base: A mapping applied after the file and before the overrides (the Python API).

    Raises:
        ConfigError: naming the first bad key and what it accepts.
    """
    config = load_structured(ExperimentConfig, path, overrides, base)
    assert isinstance(config, ExperimentConfig)
    return config


RUN_FOLDER_DEFAULTS: dict[str, str] = {"data.augment": "rrc"}
"""Keys added after run folders were first written, with the value that reproduces what a
run written before the key existed did (its default then), not today's default."""


def load_run_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """A run folder's config.yaml (`load_config`), keys it predates set as it trained."""
    written = OmegaConf.to_container(_read_yaml(Path(path)))
    assert isinstance(written, dict)
    older = [f"{key}={value}" for key, value in RUN_FOLDER_DEFAULTS.items()
             if not _holds(written, key.split("."))]
    return load_config(path, [*older, *overrides])


def _holds(values: Any, keys: list[str]) -> bool:
    for key in keys:
        if not isinstance(values, dict) or key not in values:
            return False
        values = values[key]
    return True


def load_structured(schema: type, path: str | Path | None = None, overrides: Sequence[str] = (),
                    base: Mapping[str, Any] | None = None) -> Any:
    """`load_config` for any dataclass schema (experiment configs, suite files)."""
    layers: list[DictConfig] = []
    if path is not None:
        layers.append(_read_yaml(Path(path)))
    if base is not None:
        layers.append(_from_mapping(base))
    if overrides:
        layers.append(_parse_overrides(overrides))
    if schema is not ExperimentConfig:
        return _to_object(schema, [OmegaConf.structured(schema), *layers])
    config = _to_object(schema, [OmegaConf.structured(schema), *[_nest_options(layer)
                                                                 for layer in layers]])
    for section, check in OPTION_CHECKS.items():
        check(getattr(config, section))
    return config


def load_section(schema: type, values: Mapping[str, Any], prefix: str) -> Any:
    """Check a mapping against a dataclass, naming keys as `prefix + key` in errors
    (strategies check their options with it: `load_section(Options, {...}, "strategy.")`)."""
    layers = [OmegaConf.structured(schema), _from_mapping(values, origin=prefix.rstrip("."))]
    return _to_object(schema, layers, prefix)


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """Plain nested dict (tuples as lists), suitable for YAML, JSON and checkpoints.

    The options of the strategy, optimizer and schedule sit beside their names, as they are
    written in YAML files."""
    values = OmegaConf.to_container(OmegaConf.structured(config), resolve=True)
    assert isinstance(values, dict)
    for section in OPTION_SECTIONS:
        own = values[section]
        options = own.pop("options")
        values[section] = {**own, **options}
    return values


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict as dotted keys (`{"optim": {"lr": 1}}` -> `{"optim.lr": 1}`): how a
    config is compared key by key, and how its keys are named in messages."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_to_yaml(config: ExperimentConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.create(config_to_dict(config)))


OPTION_SECTIONS = ("strategy", "optim", "schedule")
"""Sections whose chosen entry (a strategy, an optimizer, a schedule) has its own options."""

OPTION_CHECKS: dict[str, Callable[[Any], Any]] = {}
"""section -> the check of its chosen entry's options that `load_config` runs, registered
by the layer that owns the entries (`ftlab.optimization` for optim and schedule), which
this layer cannot import. Strategies check theirs in `assembly.check_config`."""


def register_option_check(section: str, check: Callable[[Any], Any]) -> None:
    OPTION_CHECKS[section] = check


def _own_keys(section: str) -> set[str]:
    schema = next(f for f in dataclasses.fields(ExperimentConfig) if f.name == section)
    return {f.name for f in dataclasses.fields(schema.default_factory())}


def _nest_options(layer: DictConfig) -> DictConfig:
    """Move the chosen entry's own options (every key of the strategy, optim or schedule
    section that is not the section's own) under `options`, where the schema keeps them
    until the entry checks them (`strategy.k=5`, `optim.momentum=0.8`)."""
    if not isinstance(layer, DictConfig):
        return layer
    moves = {}
    for section in OPTION_SECTIONS:
        values = layer.get(section)
        if isinstance(values, DictConfig):
            moved = [key for key in values.keys() if key not in _own_keys(section)]
            if moved:
                moves[section] = moved
    if not moves:
        return layer
    values = OmegaConf.to_container(layer)
    assert isinstance(values, dict)
    for section, moved in moves.items():
        options = values[section].setdefault("options", {})
        if not isinstance(options, dict):
            continue  # strategy.options=5: the schema's own type check names it
        for key in moved:
            options[key] = values[section].pop(key)
    return OmegaConf.create(values)


def config_from_dict(values: Mapping[str, Any], overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Rebuild a config saved by `config_to_dict` (a run folder or checkpoint), plus overrides."""
    return load_config(None, overrides, base=values)


def replace_sections(config: ExperimentConfig, **sections: Mapping[str, Any]) -> ExperimentConfig:
    """A copy with some fields of some sections changed, validated again."""
    values = config_to_dict(config)
    for section, changes in sections.items():
        values[section].update(changes)
    return config_from_dict(values)


def _read_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass the path of a YAML file "
                          "such as configs/cifar10_mobilenet_v2.yaml")
    values = read_yaml(path, "config file")
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections "
                          f"(data, model, strategy, optim, schedule, train), not "
                          f"{type(values).__name__}")
    return _from_mapping(values, origin=str(path))


def _from_mapping(values: Mapping[str, Any], origin: str = "config") -> DictConfig:
    try:
        return OmegaConf.create(dict(values))
    except OmegaConfBaseException as err:
        raise ConfigError(f"{origin}: {_first_line(err)}") from None


KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
"""A dotted config key; anything else (brackets, spaces, '..') is refused before OmegaConf."""


def _parse_overrides(overrides: Sequence[str]) -> DictConfig:
    for item in overrides:
        if not isinstance(item, str):  # e.g. a suite file's `overrides: [[a, b]]`
            raise ConfigError(f"override {item!r} is not a string of the form "
                              "section.key=value (for example optim.lr=1e-3)")
        key, sep, _ = item.partition("=")
        if not sep or not KEY.fullmatch(key):
            raise ConfigError(f"override {item!r} is not of the form section.key=value "
                              "(for example optim.lr=1e-3)")
        check_yaml(item.partition("=")[2], f"override {key}")
    parsed = []
    for item in overrides:
        try:
            parsed.append(OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as err:
            raise ConfigError(f"override {item!r}: {_first_line(err)}") from None
        except yaml.YAMLError as err:  # OmegaConf parses each value as YAML
            raise ConfigError(f"override {item!r}: the value is not valid YAML "
                              f"({_first_line(err)}); quote it or remove control "
                              "characters") from None
    try:
        return OmegaConf.merge(*parsed) if parsed else OmegaConf.create()
    except OmegaConfBaseException as err:
        raise ConfigError(f"overrides: {_first_line(err)}") from None
    except (TypeError, ValueError) as err:  # e.g. a.b=[1, 2] and a.b.c=3: list vs. mapping
        raise ConfigError(f"overrides give one key two shapes (a value or list in one, a "
                          f"section in another): {_first_line(err)}") from None


def _to_object(schema: type, layers: list[DictConfig], prefix: str = "") -> Any:
    try:
        merged = OmegaConf.merge(*layers)
        return OmegaConf.to_object(merged)
    except ConfigKeyError as err:
        raise ConfigError(_unknown_key_message(err, schema, prefix)) from None
    except ValidationError as err:
        raise ConfigError(_type_message(err, schema, prefix)) from None
    except OmegaConfBaseException as err:
        key = _key_of(err, prefix)
        where = f"config key '{key}'" if key else "config"
        raise ConfigError(f"{where}: {_first_line(err)}") from None
    except TypeError as err:  # a mapping given where a plain value belongs, or vice versa
        raise ConfigError(f"config has a value of the wrong shape: {err}") from None


def _key_of(err: OmegaConfBaseException, prefix: str = "") -> str | None:
    key = getattr(err, "full_key", None)
    return f"{prefix}{key}" if key else None


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "msg", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _unknown_key_message(err: ConfigKeyError, schema: type, prefix: str = "") -> str:
    key = _key_of(err, prefix) or "?"
    section, _, _ = key.rpartition(".")
    owner = getattr(err, "object_type", None)
    valid = ([f.name for f in dataclasses.fields(owner)] if dataclasses.is_dataclass(owner)
             else _valid_keys(schema, section[len(prefix):]))
    hint = _first_line(err)
    suggestion = ""
    guesses = re.search(r"Did you mean(?: one of)?:(.*)", hint)  # one guess, or a list of them
    if guesses:
        names = [g.strip().strip("'") for g in guesses.group(1).strip().rstrip("?").split(",")]
        dotted = f"{section}." if section else ""
        suggestion = " (did you mean " + " or ".join(f"'{dotted}{n}'" for n in names) + "?)"
    entry = _LIST_ENTRIES.get(getattr(owner, "__name__", ""))
    where = entry or (f"'{section}'" if section else "the top level")
    return (f"unknown config key '{key}'{suggestion}; valid keys in {where}: "
            + ", ".join(valid))


# Keys inside list entries come back from OmegaConf without their path.
_LIST_ENTRIES = {"LrRule": "a strategy.lr_rules entry"}
"""Dataclass name -> how to name one of its entries in a list (separate_lr's rules)."""


def _type_message(err: ValidationError, schema: type, prefix: str = "") -> str:
    key = _key_of(err, prefix) or "a list element"
    text = _first_line(err)
    if "is not a subclass of" in text:  # a plain value where a section belongs
        section = _section_named(schema,
                                 text.split("is not a subclass of")[-1].split(".")[0].strip())
        return f"config section '{section}' must be a mapping of keys, not a single value"
    # OmegaConf says "Value 'abc' of type 'str' could not be converted to Float".
    if "could not be converted to" in text:
        wanted = text.split("could not be converted to")[-1].strip().lower()
        value = text.split("'")[1] if text.count("'") >= 2 else "?"
        got = "" if "$VALUE" in value else f", got {value!r}"
        return f"config key '{key}' must be {_article(wanted)} {wanted}{got}"
    return f"config key '{key}': {text}"


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _valid_keys(schema: type, section: str) -> list[str]:
    node: Any = schema
    for part in [p for p in section.split(".") if p]:
        fields = {f.name: f for f in dataclasses.fields(node)}
        child = _section_default(fields[part]) if part in fields else None
        if not dataclasses.is_dataclass(child):
            return []
        node = child
    return [f.name for f in dataclasses.fields(node)]


def _section_named(schema: type, class_name: str) -> str:
    for f in dataclasses.fields(schema):
        if type(_section_default(f)).__name__ == class_name:
            return f.name
    return class_name


def _section_default(f: dataclasses.Field) -> Any:
    """The default of a nested-section field (None for plain fields)."""
    factory = f.default_factory
    return factory() if callable(factory) else None
