"""The `ftlab` command. Parses arguments, calls the library, turns user errors into one line.

Nothing below this module sees argparse: each command calls a library function with plain
values. An `FtlabError` prints `ftlab: error: <message>` and exits with its code (2 for bad
input); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ftlab.cli_args import Parser, check_yaml_first, int_in
from ftlab.cli_args import add_command as _add
from ftlab.cli_inference import add_commands as add_inference_commands
from ftlab.cli_memory import add_commands as add_memory_commands
from ftlab.version import __version__
from ftlab.errors import FtlabError, RunDirError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = _parse(parser, argv)
    try:
        return args.handler(args)
    except FtlabError as err:
        print(f"ftlab: {err.label}: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("ftlab: interrupted; resume with ftlab train --resume RUN_DIR", file=sys.stderr)
        return 130


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """`parse_args`, but `key=value` overrides may also follow options (`ftlab diff A B --ref C
    k=4`): argparse fills a positional list from the first run of positionals only."""
    args, extra = parser.parse_known_args(argv)
    if extra and isinstance(getattr(args, "overrides", None), list) \
            and all("=" in item and not item.startswith("-") for item in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _train(args: argparse.Namespace) -> int:
    config, overrides = _split_config_and_overrides(args.items)
    from ftlab.runfiles import CONFIG

    check_yaml_first({"config file": config, "run config":
                       args.resume and str(Path(args.resume) / CONFIG)}, overrides)
    from ftlab.training import train

    train(config, overrides=overrides, resume=args.resume, overwrite=args.overwrite)
    return 0


def _split_config_and_overrides(items: list[str]) -> tuple[str | None, list[str]]:
    """`CONFIG.yaml key=value ...`: the first item is the config unless it is an override."""
    if items and "=" not in items[0]:
        return items[0], items[1:]
    return None, items


def _strategies(args: argparse.Namespace) -> int:
    from ftlab.cli_tables import strategies_table, strategy_options_table

    if args.name is not None:
        print(strategy_options_table(args.name))
    else:
        print(strategies_table(args.model, args.num_classes))
    return 0


def _optimizers(args: argparse.Namespace) -> int:
    from ftlab.cli_tables import choices_table

    print(choices_table("optim"))
    return 0


def _schedules(args: argparse.Namespace) -> int:
    from ftlab.cli_tables import choices_table

    print(choices_table("schedule"))
    return 0


def _models(args: argparse.Namespace) -> int:
    from ftlab.cli_tables import models_table

    print(models_table())
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from ftlab.cli_tables import datasets_table

    print(datasets_table(args.root))
    return 0


def _suite(args: argparse.Namespace) -> int:
    check_yaml_first({"suite file": args.suite}, args.overrides)
    from ftlab.suite import run_suite

    return _suite_outcome(run_suite(args.suite, args.overrides, report=not args.no_report),
                          "run(s)")


def _suite_outcome(result, runs: str) -> int:
    """The report's path, and exit 1 naming the failed runs (of a suite or a tune)."""
    if result.report:
        print(f"report: {result.report[1]}")
    if result.failed:
        print(f"ftlab: {len(result.failed)} {runs} failed: {', '.join(result.failed)} "
              f"(errors in {result.root / 'suite.csv'})", file=sys.stderr)
        return 1
    return 0


def _tune(args: argparse.Namespace) -> int:
    check_yaml_first({"suite file": args.suite}, args.overrides)
    from ftlab.tune import run_tune, run_worker

    if args.worker is not None:
        run_worker(args.suite, args.overrides, args.worker, args.threads)
        return 0
    return _suite_outcome(run_tune(args.suite, args.overrides, report=not args.no_report),
                          "final run(s)")


def _plot(args: argparse.Namespace) -> int:
    from ftlab.report import plot_runs
    from ftlab.runfiles import is_run_folder

    strangers = [d for d in args.runs if not is_run_folder(Path(d))]
    if strangers:
        raise RunDirError(f"{strangers[0]} is not an ftlab run folder (no config.yaml with "
                          "metrics.csv); pass folders that ftlab train made")
    from ftlab.fileio import check_output_files

    stem = Path(args.output)
    if not args.output.strip() or not stem.name:
        raise RunDirError(f"--output {args.output!r} names no file; give a file stem such as "
                          "curves (writes curves.png, .svg and .json)")
    check_output_files([stem.with_suffix(s) for s in (".png", ".svg", ".json")], "--output")
    _, paths = plot_runs([Path(d) for d in args.runs], args.metrics.split(","),
                         Path(args.output), args.labels.split(",") if args.labels else None,
                         args.smooth, args.title)
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def _report(args: argparse.Namespace) -> int:
    from ftlab.report import build_report

    markdown, html = build_report(Path(args.suite_dir), args.title)
    print(f"report: {html}\nmarkdown: {markdown}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from ftlab.config import DiffConfig
    from ftlab.config.loading import load_structured  # bounds override values itself

    flags = {"a": args.a, "b": args.b, "ref": args.ref, "probe": args.probe,
             "probe_size": args.probe_size, "k": args.k}
    config = load_structured(DiffConfig, None, args.overrides,
                             base={k: v for k, v in flags.items() if v is not None})
    from ftlab.analysis import diff  # torch from here on, once the settings are valid
    from ftlab.runfiles import DIFF_SUMMARY

    result = diff(config, Path(args.output_dir))
    print((Path(args.output_dir) / DIFF_SUMMARY).read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(p) for p in result.files))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ftlab.demo import run_demo

    result = run_demo(mirror=args.mirror, output_dir=args.output_dir)
    return 1 if result.failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ftlab", description="Fine-tune ImageNet-pretrained classifiers and compare "
        "strategies by accuracy and memory.")
    parser.add_argument("--version", action="version", version=f"ftlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=Parser)
    _add_training(sub)
    _add_listings(sub)
    _add_analyses(sub)
    return parser


def _add_training(sub: argparse._SubParsersAction) -> None:
    """train, suite and demo: the commands that train."""
    train = _add(sub, "train", _train, "fine-tune one model (a run folder with curves, "
                 "checkpoints and a summary)")
    train.add_argument("items", nargs="*", metavar="[CONFIG.yaml] [key=value ...]",
                       help="a YAML config, then dotted overrides such as optim.lr=1e-3")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue a run from its last checkpoint (train.epochs=N extends it)")
    train.add_argument("--overwrite", action="store_true",
                       help="start again in an existing run folder, deleting its contents")

    suite = _add(sub, "suite", _suite, "run a suite of experiments (a grid or a list), then "
                 "write its index and report")
    suite.add_argument("suite", metavar="SUITE.yaml")
    suite.add_argument("overrides", nargs="*", metavar="key=value",
                       help="overrides of the suite file (e.g. parallel=2)")
    suite.add_argument("--no-report", action="store_true", help="skip writing the report")

    tune = _add(sub, "tune", _tune, "tune each strategy of a suite's grid on validation data "
                "(Optuna, with pruning), retrain each best setting with several seeds, and "
                "report test accuracy with intervals")
    tune.add_argument("suite", metavar="SUITE.yaml")
    tune.add_argument("overrides", nargs="*", metavar="key=value",
                      help="overrides of the suite file (e.g. tune.trials=20 parallel=2)")
    tune.add_argument("--no-report", action="store_true", help="skip writing the report")
    tune.add_argument("--worker", type=int_in(0, None), metavar="N",
                      help="only run trials, as worker N, joining the search of an ftlab tune "
                           "on this suite (give each worker its own N)")
    tune.add_argument("--threads", type=int_in(1, None), help=argparse.SUPPRESS)

    demo = _add(sub, "demo", _demo, "the reference report at CPU scale on the offline mirror "
                "(cifar10-mini): main strategies, scratch, memory table, report")
    demo.add_argument("--mirror", help="mirror folder (default: $FTLAB_MIRROR, else "
                      "../shared/mirror)")
    demo.add_argument("--output-dir", help="where the suite folder goes (default: runs)")


def _add_listings(sub: argparse._SubParsersAction) -> None:
    """strategies, models and datasets: what ftlab offers and what is present."""
    from ftlab.config.commands import MAX_CLASSES

    strategies = _add(sub, "strategies", _strategies, "list fine-tuning strategies, or one "
                      "strategy's options with their defaults and meaning")
    strategies.add_argument("name", nargs="?", metavar="NAME",
                            help="show this strategy's options (strategy.* keys)")
    strategies.add_argument("--model", help="also count trainable parameters on this "
                            "architecture (e.g. mobilenet_v2)")
    strategies.add_argument("--num-classes", type=int_in(1, MAX_CLASSES), default=10,
                            help="classes of the new head when counting (default 10)")

    _add(sub, "optimizers", _optimizers, "list optimizers (optim.name) and their options")
    _add(sub, "schedules", _schedules, "list learning-rate schedules (schedule.name) and their "
         "options")
    _add(sub, "models", _models, "list supported architectures and their torchvision weights")

    datasets = _add(sub, "datasets", _datasets, "list datasets, their layout, and what is present")
    datasets.add_argument("--root", help="data root to look in (default: $FTLAB_DATA or ./data)")



def _add_analyses(sub: argparse._SubParsersAction) -> None:
    """plot, report, diff, memory and plan: reading and measuring runs."""
    plot = _add(sub, "plot", _plot, "learning curves of runs on shared axes (PNG, SVG, JSON)")
    plot.add_argument("runs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("--metrics", default="val_top1,train_loss",
                      help="metrics.csv columns, comma-separated (default val_top1,train_loss)")
    plot.add_argument("--labels", help="legend names, comma-separated (default: folder names)")
    plot.add_argument("--smooth", type=float, default=0.0,
                      help="exponential smoothing weight in [0, 1) (TensorBoard's)")
    plot.add_argument("--title")
    plot.add_argument("--output", default="curves", help="file stem: writes .png, .svg, .json")

    report = _add(sub, "report", _report, "write the report (Markdown + self-contained HTML) "
                  "of a suite folder")
    report.add_argument("suite_dir", metavar="SUITE_DIR")
    report.add_argument("--title")

    _add_diff(sub)
    add_memory_commands(sub)
    add_inference_commands(sub)


def _add_diff(sub: argparse._SubParsersAction) -> None:
    """diff: flags and overrides both fill ftlab.config.DiffConfig."""
    diff = _add(sub, "diff", _diff, "how two networks differ per layer (cosine, change, "
                "filter subspaces) and per block (linear CKA)")
    diff.add_argument("a", metavar="A", help="run folder, checkpoint, or pretrained:<weights>")
    diff.add_argument("b", metavar="B", help="run folder, checkpoint, or pretrained:<weights>")
    diff.add_argument("overrides", nargs="*", metavar="key=value",
                      help="settings of ftlab.config.DiffConfig, e.g. probe_size=32 k=4; the "
                      "flags set the same fields")
    diff.add_argument("--ref", help="reference (e.g. pretrained:IMAGENET1K_V1): how far A and "
                      "B each moved from it")
    diff.add_argument("--probe", help="run folder whose data gives the probe batch (default: "
                      "A's or B's)")
    diff.add_argument("--probe-size", type=int, help="images in the probe batch (default 64)")
    diff.add_argument("--k", type=int,
                      help="singular vectors per layer for the subspace similarity (default 8)")
    diff.add_argument("--output-dir", default="diff", help="where the files go (default diff)")


if __name__ == "__main__":
    sys.exit(main())
