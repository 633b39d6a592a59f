"""`ftlab memory` and `ftlab plan`: measuring what training steps hold, from argparse's values
to the library's functions (`ftlab.memory`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ftlab.cli_args import add_command as _add
from ftlab.cli_args import int_list


def add_commands(sub: argparse._SubParsersAction) -> None:
    _add_memory(sub)
    _add_plan(sub)
    _add_sparse_scheme(sub)


def _memory(args: argparse.Namespace) -> int:
    from ftlab.config import MemoryConfig
    from ftlab.config.loading import load_structured  # bounds override values itself

    flags = {"arch": args.model, "batch_sizes": args.batch_sizes, "resolution": args.resolution,
             "frozen_bits": args.frozen_bits, "frozen_weights": args.frozen_weights,
             "num_classes": args.num_classes, "execution": args.execution,
             "device": args.device,
             "strategies": args.strategies.split(",") if args.strategies else None}
    config = load_structured(MemoryConfig, None, args.overrides,
                             base={k: v for k, v in flags.items() if v is not None})
    from ftlab import runfiles  # torch from here on, once the settings are valid
    from ftlab.fileio import check_output_folder
    from ftlab.memory.report import memory_table, memory_title, save, strategies_of, to_markdown

    strategies_of(config)  # names checked before the output folder, both before measuring
    check_output_folder(args.output_dir, runfiles.MEMORY_CSV, "memory")
    rows = memory_table(config)
    markdown, table = save(rows, Path(args.output_dir), memory_title(config))
    print(to_markdown(rows))
    print(f"\nsaved {markdown} and {table}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from ftlab.config import PlanConfig
    from ftlab.config.loading import load_structured

    flags = {"memory_budget": args.memory_budget, "arch": args.model,
             "resolution": args.resolution, "batch_size": args.batch_size,
             "num_classes": args.num_classes, "execution": args.execution,
             "device": args.device, "optim": args.optim,
             "frozen_weights": args.frozen_weights,
             "strategies": args.strategies.split(",") if args.strategies else None}
    config = load_structured(PlanConfig, None, args.overrides,
                             base={k: v for k, v in flags.items() if v is not None})
    from ftlab.fileio import check_output_folder
    from ftlab.memory.budget import plan_table
    from ftlab.memory.plan_report import plan_title, save_plan, to_markdown
    from ftlab.runfiles import PLAN_CSV
    from ftlab.runtime import ensure_console_log, resolve_device

    check_output_folder(args.output_dir, PLAN_CSV, "plan")
    ensure_console_log()
    rows = plan_table(config)  # refuses a budget nothing fits before writing anything
    title = plan_title(config, str(resolve_device(config.device)))
    paths = save_plan(rows, config, Path(args.output_dir), title)
    print(f"{title}\n\n{to_markdown(rows, config)}")
    print(f"\nsaved {', '.join(str(p) for p in paths)}")
    return 0


def _add_memory(sub: argparse._SubParsersAction) -> None:
    """memory: flags and overrides both fill ftlab.config.MemoryConfig."""
    memory = _add(sub, "memory", _memory, "training memory per strategy: measured (stock and "
                  "memory-efficient) and analytic, as Markdown and CSV")
    memory.add_argument("overrides", nargs="*", metavar="key=value",
                        help="settings of ftlab.config.MemoryConfig, e.g. resolution=160 "
                        "strategies=[full,bias]; the flags below set the same fields")
    memory.add_argument("--model", help="architecture (default mobilenet_v2)")
    memory.add_argument("--strategies", help="comma-separated names, or all (default)")
    memory.add_argument("--batch-sizes", type=int_list, help="comma-separated (default 1,64)")
    memory.add_argument("--resolution", type=int, help="input side in px (default 224)")
    memory.add_argument("--frozen-bits", type=int, choices=(8, 16, 32),
                        help="bits per frozen weight in the analytic count (TinyTL: 8; "
                        "default 32)")
    memory.add_argument("--frozen-weights", choices=("fp32", "int8"),
                        help="how the efficient rows store frozen weights (measured; "
                        "default fp32)")
    memory.add_argument("--num-classes", type=int, help="classes of the head (default 10)")
    memory.add_argument("--execution", choices=("both", "stock", "efficient"))
    memory.add_argument("--device", choices=("cpu", "cuda", "auto"), help="default cpu")
    memory.add_argument("--output-dir", default="runs/memory",
                        help="where memory.md and memory.csv go")


def _add_plan(sub: argparse._SubParsersAction) -> None:
    """plan: flags and overrides both fill ftlab.config.PlanConfig."""
    plan = _add(sub, "plan", _plan, "what fits a memory budget: the largest batch (and "
                "resolution) per strategy, each a measured training step")
    plan.add_argument("overrides", nargs="*", metavar="key=value",
                      help="settings of ftlab.config.PlanConfig, e.g. max_batch_size=128 "
                      "strategy_options.last_k.k=2; the flags below set the same fields")
    plan.add_argument("--memory-budget", metavar="SIZE",
                      help="the most one training step may hold: 512MiB, 2GiB, ...")
    plan.add_argument("--model", help="architecture (default mobilenet_v2)")
    plan.add_argument("--strategies", help="comma-separated names, or all (default: every "
                      "strategy that applies to the model)")
    plan.add_argument("--resolution", type=int, help="input side in px for the batch "
                      "search (default 224)")
    plan.add_argument("--batch-size", type=int, help="also find the largest resolution at "
                      "this batch")
    plan.add_argument("--num-classes", type=int, help="classes of the head (default 10)")
    plan.add_argument("--optim", help="optimizer whose state counts (default adam)")
    plan.add_argument("--frozen-weights", choices=("fp32", "int8"),
                      help="store frozen weights in int8 (train.frozen_weights; default fp32)")
    plan.add_argument("--execution", choices=("efficient", "stock", "both"),
                      help="efficient (how ftlab trains; default), stock, or both")
    plan.add_argument("--device", choices=("cpu", "cuda", "auto"), help="default cpu")
    plan.add_argument("--output-dir", default="runs/plan",
                      help="where plan.md, plan.csv, plan_points.csv and plan.png go")


def _sparse_scheme(args: argparse.Namespace) -> int:
    from ftlab.cli_args import check_yaml_first

    config_file = args.items[0] if args.items and "=" not in args.items[0] else None
    overrides = args.items[1:] if config_file else args.items
    check_yaml_first({"config file": config_file}, overrides)
    if not args.memory_budget:
        from ftlab.errors import ConfigError

        raise ConfigError("--memory-budget is required: the most memory one training step "
                          "may hold, e.g. 64MiB")
    from ftlab.assembly import resolve_config
    from ftlab.config import load_config
    from ftlab.config.sizes import parse_size

    budget = parse_size(args.memory_budget, "--memory-budget")
    config = resolve_config(load_config(config_file, overrides))
    from ftlab.fileio import check_output_folder
    from ftlab.memory.scheme import choose_scheme, save_scheme, scheme_markdown
    from ftlab.runfiles import SCHEME_JSON
    from ftlab.runtime import ensure_console_log

    folder = check_output_folder(args.output_dir, SCHEME_JSON, "sparse-scheme")
    ensure_console_log()
    scheme = choose_scheme(config, budget, folder / "candidates", bias_blocks=args.bias_blocks,
                           search_blocks=args.search_blocks, epochs=args.epochs)
    paths = save_scheme(scheme, config, folder)
    print(scheme_markdown(scheme).split("\n\n", 3)[2])
    print(f"\nsaved {', '.join(str(p) for p in paths)}; train it with: ftlab train {paths[2]}")
    return 0


def _add_sparse_scheme(sub: argparse._SubParsersAction) -> None:
    scheme = _add(sub, "sparse-scheme", _sparse_scheme, "choose a sparse_update scheme under "
                  "a memory budget: each candidate layer's measured gain and step memory, then "
                  "a knapsack (tiny-training's contribution analysis)")
    scheme.add_argument("items", nargs="*", metavar="[CONFIG] key=value",
                        help="the experiment (a config file and/or overrides), as ftlab train")
    scheme.add_argument("--memory-budget", metavar="SIZE",
                        help="the most one training step may hold: 64MiB, 1GiB, ...")
    scheme.add_argument("--bias-blocks", type=int, default=6,
                        help="biases of the last N blocks train in every scheme (default 6)")
    scheme.add_argument("--search-blocks", type=int, default=3,
                        help="candidate layers: those of the last N blocks (default 3)")
    scheme.add_argument("--epochs", type=int, default=1,
                        help="epochs of each candidate's short run (default 1)")
    scheme.add_argument("--output-dir", default="runs/sparse-scheme",
                        help="where scheme.md, scheme.json, config.yaml and the candidates' "
                        "runs go")
