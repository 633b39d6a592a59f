"""The `ftlab` command. Parses arguments, calls the library, turns user errors into one line.

Nothing below this module sees argparse: each command calls a library function with plain
values. An `FtlabError` prints `ftlab: error: <message>` and exits with its code (2 for bad
input); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ftlab import __version__
from ftlab.errors import FtlabError

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except FtlabError as err:
        print(f"ftlab: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("ftlab: interrupted; resume with ftlab train --resume RUN_DIR", file=sys.stderr)
        return 130


def _train(args: argparse.Namespace) -> int:
    from ftlab.training import train

    config, overrides = _split_config_and_overrides(args.items)
    train(config, overrides=overrides, resume=args.resume, overwrite=args.overwrite)
    return 0


def _split_config_and_overrides(items: list[str]) -> tuple[str | None, list[str]]:
    """`CONFIG.yaml key=value ...`: the first item is the config unless it is an override."""
    if items and "=" not in items[0]:
        return items[0], items[1:]
    return None, items


def _strategies(args: argparse.Namespace) -> int:
    from ftlab.cli_tables import strategies_table

    print(strategies_table(args.model, args.num_classes))
    return 0


def _models(args: argparse.Namespace) -> int:
    from ftlab.cli_tables import models_table

    print(models_table())
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from ftlab.cli_tables import datasets_table

    print(datasets_table(args.root))
    return 0


def _memory(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ftlab.memory.report import EXECUTIONS, check_strategies, memory_table, save, to_markdown
    from ftlab.strategies import strategy_names
    from ftlab.training.experiment import resolve_device

    names = strategy_names() if args.strategies == "all" else args.strategies.split(",")
    check_strategies(args.model, names, args.n_groups)
    device = str(resolve_device(args.device))
    executions = EXECUTIONS if args.execution == "both" else (args.execution,)
    rows = memory_table(args.model, names, args.batch_sizes, args.resolution, executions,
                        n_groups=args.n_groups, frozen_bits=args.frozen_bits,
                        num_classes=args.num_classes, device=device)
    title = (f"Training memory: {args.model}, {args.resolution} px, {args.num_classes} "
             f"classes, TinyTL n_groups={args.n_groups}, frozen weights at {args.frozen_bits} bit "
             f"(analytic), device {device}")
    markdown, table = save(rows, Path(args.output_dir), title)
    print(to_markdown(rows))
    print(f"\nsaved {markdown} and {table}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ftlab.demo import run_demo
    from ftlab.strategies import strategy_names

    names = strategy_names() if args.strategies == "all" else args.strategies.split(",")
    run_demo(mirror=args.mirror, output_dir=args.output_dir, epochs=args.epochs,
             resolution=args.resolution, strategies=names)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftlab", description="Fine-tune ImageNet-pretrained classifiers and compare "
        "strategies by accuracy and memory.")
    parser.add_argument("--version", action="version", version=f"ftlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = _add(sub, "train", _train, "fine-tune one model (a run folder with curves, "
                 "checkpoints and a summary)")
    train.add_argument("items", nargs="*", metavar="[CONFIG.yaml] [key=value ...]",
                       help="a YAML config, then dotted overrides such as optim.lr=1e-3")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue a run from its last checkpoint (train.epochs=N extends it)")
    train.add_argument("--overwrite", action="store_true",
                       help="start again in an existing run folder, deleting its contents")

    strategies = _add(sub, "strategies", _strategies, "list fine-tuning strategies")
    strategies.add_argument("--model", help="also count trainable parameters on this "
                            "architecture (e.g. mobilenet_v2)")
    strategies.add_argument("--num-classes", type=_positive_int, default=10,
                            help="classes of the new head when counting (default 10)")

    _add(sub, "models", _models, "list supported architectures and their torchvision weights")

    datasets = _add(sub, "datasets", _datasets, "list datasets, their layout, and what is present")
    datasets.add_argument("--root", help="data root to look in (default: $FTLAB_DATA or ./data)")

    memory = _add(sub, "memory", _memory, "training memory per strategy: measured (stock and "
                  "memory-efficient) and analytic, as Markdown and CSV")
    memory.add_argument("--model", default="mobilenet_v2")
    memory.add_argument("--strategies", default="all", help="comma-separated names, or all")
    memory.add_argument("--batch-sizes", type=_int_list, default=[1, 64],
                        help="comma-separated (default 1,64)")
    memory.add_argument("--resolution", type=_positive_int, default=224)
    memory.add_argument("--n-groups", type=_positive_int, default=2,
                        help="TinyTL side-branch groups (default 2)")
    memory.add_argument("--frozen-bits", type=int, choices=(8, 16, 32), default=32,
                        help="bits per frozen weight in the analytic count (TinyTL: 8)")
    memory.add_argument("--num-classes", type=_positive_int, default=10)
    memory.add_argument("--execution", choices=("both", "stock", "efficient"), default="both")
    memory.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    memory.add_argument("--output-dir", default="runs/memory",
                        help="where memory.md and memory.csv go")

    demo = _add(sub, "demo", _demo, "compare strategies (default: fine-tune vs train from "
                "scratch) on the offline mirror (cifar10-mini) and print the results table")
    demo.add_argument("--mirror", help="mirror folder (default: $FTLAB_MIRROR, else "
                      "../shared/mirror)")
    demo.add_argument("--output-dir", default="runs/demo", help="where the runs go")
    demo.add_argument("--epochs", type=_positive_int, default=3)
    demo.add_argument("--resolution", type=_positive_int, default=64)
    demo.add_argument("--strategies", default="full,scratch",
                      help="comma-separated strategy names, or all (default: full,scratch)")
    return parser


def _add(sub: argparse._SubParsersAction, name: str, handler: Command, help_text: str
         ) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def _int_list(text: str) -> list[int]:
    return [_positive_int(part) for part in text.split(",")]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


if __name__ == "__main__":
    sys.exit(main())
