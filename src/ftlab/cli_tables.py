"""The listings printed by `ftlab strategies`, `ftlab optimizers`, `ftlab schedules`,
`ftlab models` and `ftlab datasets`."""

from __future__ import annotations

import os

from ftlab.fileio import user_path
from ftlab.tables import markdown_table


def strategies_table(model: str | None, num_classes: int) -> str:
    from ftlab.config import StrategyConfig
    from ftlab.strategies import strategy_class, strategy_names

    if model is None:
        return markdown_table(["strategy", "what trains"],
                              [[n, strategy_class(n).summary] for n in strategy_names()])
    from ftlab.errors import ConfigError

    rows = []
    for name in strategy_names():
        try:
            trainable, total = _count_for_strategy(model, num_classes,
                                                   StrategyConfig(name=name))
        except ConfigError as err:  # made for another family (VPT on a CNN), or its extra
            rows.append([name, "-", "-", "-", f"does not apply: {err}"])  # is missing
            continue
        rows.append([name, f"{trainable:,}", f"{total:,}", f"{100 * trainable / total:.2f}%",
                     strategy_class(name).summary])
    table = markdown_table(["strategy", "trainable", "total", "share", "what trains"], rows)
    return f"{table}\n\n{blocks_table(model, num_classes)}"


def strategy_options_table(name: str) -> str:
    """One strategy: what it does, and each of its settings with type, default and meaning."""
    import inspect

    from ftlab.strategies import option_values, strategy_class

    cls = strategy_class(name)
    rows = [[f"strategy.{key}", kind, name if key == "name" else _yaml_value(default), doc]
            for key, kind, default, doc in _settings(cls)]
    defaults = option_values(cls.Options())
    example = " ".join([f"strategy.name={name}"] + [
        f"strategy.{key}={_yaml_value(value)}" for key, value in defaults.items()])
    searched = "; ".join(f"{key} {spec.describe()}" for key, spec in cls.search_space.items())
    return (f"{name}: {cls.summary}\n\n{inspect.getdoc(cls) or ''}\n\n"
            + markdown_table(["key", "type", "default", "meaning"], rows)
            + f"\n\nevery option at its default: {example}"
            + f"\ndefault learning rate (optim.lr when unset): {cls.default_lr:g}"
            + f"\nsearch space (hyperparameter tuning): {searched}")


def choices_table(section: str) -> str:
    """`ftlab optimizers` (section optim) or `ftlab schedules` (schedule): the section's own
    keys, then each registered entry (plugins included) with its options' type, default and
    meaning."""
    import inspect

    from ftlab.config import OptimConfig, ScheduleConfig
    from ftlab.config.docs import field_defaults, field_docs, field_types
    from ftlab.optimization import OPTIMIZERS, SCHEDULES

    registry, common = {"optim": (OPTIMIZERS, OptimConfig),
                        "schedule": (SCHEDULES, ScheduleConfig)}[section]
    rows = []
    for owner, schema in [("every", common)] + [(n, registry.get(n).options) for n in registry]:
        docs, kinds, defaults = field_docs(schema), field_types(schema), field_defaults(schema)
        keys = [k for k in kinds if k != "options"]
        for key in keys:
            rows.append([owner, f"{section}.{key}", kinds[key], _yaml_value(defaults[key]),
                         docs.get(key, "")])
        if not keys:
            rows.append([owner, "–", "", "", (inspect.getdoc(schema) or "").splitlines()[0]])
    return markdown_table([f"{section}.name", "key", "type", "default", "meaning"], rows)


def _settings(cls: type) -> list[tuple[str, str, object, str]]:
    """(key, type, default, doc) of the shared keys name and norm_stats, then the options."""
    from ftlab.config import StrategyConfig
    from ftlab.config.docs import field_defaults, field_docs, field_types

    rows = []
    options: type = cls.Options  # type: ignore[attr-defined]
    for schema, keys in ((StrategyConfig, ("name", "norm_stats")), (options, None)):
        docs, kinds, defaults = field_docs(schema), field_types(schema), field_defaults(schema)
        for key in keys or kinds:
            rows.append((key, kinds[key], defaults[key], docs.get(key, "")))
    return rows


def _yaml_value(value: object) -> str:
    """A value as it is written in an override (strings bare, lists and null as YAML)."""
    import json

    from ftlab.strategies import plain

    return value if isinstance(value, str) else json.dumps(plain(value))


def blocks_table(arch: str, num_classes: int) -> str:
    """How the adapter numbers the blocks (strategy.k, lr_rules blocks, layer_decay)."""
    from ftlab.models import block_names, get_adapter, head_name, skeleton

    model = skeleton(arch, num_classes)  # the structure and shapes; no weights are made
    index = get_adapter(arch).block_indexer(model)
    counts: dict[int, int] = {}
    for name, param in model.named_parameters():
        counts[index(name)] = counts.get(index(name), 0) + param.numel()
    blocks = block_names(arch)
    rows = [[str(i), ", ".join(prefixes), f"{counts.get(i, 0):,}"]
            for i, prefixes in enumerate(blocks)]
    rows.append([str(len(blocks)), head_name(arch) + " (head)",
                 f"{counts.get(len(blocks), 0):,}"])
    return (f"blocks of {arch} (strategy.k counts them from the top; lr_rules blocks index them)"
            "\n" + markdown_table(["block", "modules", "parameters"], rows))


def _count_for_strategy(arch: str, num_classes: int, config) -> tuple[int, int]:
    """(parameters the optimizer would update, all parameters incl. inserted modules)."""
    from ftlab.config import ModelConfig, OptimConfig
    from ftlab.models import count_parameters, input_size
    from ftlab.strategies import prepare_model

    # The input size a run of `arch` with the default weights trains at: TinyTL sizes its
    # side branches' kernels to the feature maps, so its count depends on it.
    size = input_size(arch, ModelConfig().weights)
    prepared = prepare_model(arch, None, config, num_classes, size, load_weights=False)
    groups = prepared.strategy.param_groups(prepared.model, prepared.adapter, OptimConfig())
    optimized = {id(p): p.numel() for g in groups for p in g["params"]}
    return sum(optimized.values()), count_parameters(prepared.model)[1]


def models_table() -> str:
    from torchvision.models import get_model_weights

    from ftlab.models import architectures, get_adapter

    rows = []
    for arch in architectures():
        names = [m.name for m in get_model_weights(arch)]
        rows.append([arch, get_adapter(arch).family, ", ".join(names) + ", DEFAULT"])
    table = markdown_table(["arch", "adapter", "model.weights (or a file, or none)"], rows)
    return table + "\n\n" + timm_table()


EXAMPLES = {
    "convnext": ["convnext_atto", "convnext_tiny", "convnext_small", "convnextv2_tiny"],
    "efficientnet": ["efficientnet_b0", "efficientnet_b3", "tf_efficientnetv2_s",
                     "mixnet_m"],
    "mobilenetv3": ["mobilenetv3_large_100", "mobilenetv3_small_100",
                    "mobilenetv4_conv_small", "mobilenetv4_conv_medium"],
    "regnet": ["regnetx_016", "regnety_016", "regnety_032"],
    "resnet": ["resnet50", "resnet50d", "resnetrs50", "seresnext50_32x4d"],
    "vision_transformer": ["vit_tiny_patch16_224", "vit_small_patch16_224",
                           "vit_base_patch16_224", "vit_small_patch14_dinov2"],
    "deit": ["deit_tiny_patch16_224", "deit_small_patch16_224", "deit3_small_patch16_224"],
    "eva": ["eva02_tiny_patch14_224", "eva02_small_patch14_224"],
    "swin_transformer": ["swin_tiny_patch4_window7_224", "swin_small_patch4_window7_224",
                         "swin_base_patch4_window7_224"],
}


def timm_table() -> str:
    """The timm families ftlab adapts, with a few of their models, or how to get timm."""
    from ftlab.errors import ConfigError
    from ftlab.models.timm_models import FAMILIES, supported_names

    try:
        names = supported_names()
    except ConfigError as err:
        return f"timm backbones (model.arch=timm:<name>): {err}"
    rows = []
    for family, about in FAMILIES.items():
        members = [n for n, f in names.items() if f == family]
        known = [n for n in EXAMPLES[family] if n in names]
        shown = ", ".join(known) + f", ... ({len(members)} models)"
        rows.append([family, about, shown])
    return ("timm backbones: model.arch=timm:<name>; model.weights = a pretrained tag "
            "(DEFAULT or IMAGENET1K_V1: the model's default tag), a file, or none\n"
            + markdown_table(["timm family", "blocks", "models"], rows))


def datasets_table(root: str | None) -> str:
    from ftlab.data import get_source, source_names

    base = user_path(root or os.environ.get("FTLAB_DATA") or "data", "data root")
    rows = []
    for name in source_names():
        source = get_source(name)
        present = source.present(base)
        state = "-" if present is None else ("yes" if present else "no")
        rows.append([name, state, source.layout, source.summary])
    return (f"data root: {base}\n"
            + markdown_table(["name", "present", "layout (ROOT = data.root)", "about"], rows))
