"""The `ftlab` command. Parses arguments, calls the library, turns user errors into one line.

Nothing below this module sees argparse: each command calls a library function with plain
values. An `FtlabError` prints `ftlab: error: <message>` and exits with its code (2 for bad
input); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from ftlab.version import __version__
from ftlab.errors import DataError, FtlabError, RunDirError

Command = Callable[[argparse.Namespace], int]


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

    _check_yaml_first({"config file": config, "run config":
                       args.resume and str(Path(args.resume) / CONFIG)}, overrides)
    from ftlab.training import train

    train(config, overrides=overrides, resume=args.resume, overwrite=args.overwrite)
    return 0


def _split_config_and_overrides(items: list[str]) -> tuple[str | None, list[str]]:
    """`CONFIG.yaml key=value ...`: the first item is the config unless it is an override."""
    if items and "=" not in items[0]:
        return items[0], items[1:]
    return None, items


def _check_yaml_first(paths: dict[str, str | None], overrides: list[str]) -> None:
    """Bound the YAML inputs before importing torch: a hostile file (an alias bomb) is refused
    in a fraction of a second and a few MiB, not after seconds of start-up. Loading them
    later checks the same bounds again (`ftlab.yamlfile`), so the library is safe alone."""
    from ftlab.yamlfile import check_yaml, read_yaml

    for what, path in paths.items():
        if path and Path(path).is_file():
            read_yaml(path, what)
    for item in overrides:
        key, _, value = item.partition("=")
        check_yaml(value, f"override {key}")


def _strategies(args: argparse.Namespace) -> int:
    from ftlab.cli_tables import strategies_table, strategy_options_table

    if args.name is not None:
        print(strategy_options_table(args.name))
    else:
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
    from ftlab.config import MemoryConfig
    from ftlab.config.loading import load_structured  # bounds override values itself

    flags = {"arch": args.model, "batch_sizes": args.batch_sizes, "resolution": args.resolution,
             "frozen_bits": args.frozen_bits,
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


def _suite(args: argparse.Namespace) -> int:
    _check_yaml_first({"suite file": args.suite}, args.overrides)
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
    _check_yaml_first({"suite file": args.suite}, args.overrides)
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


def _arch(args: argparse.Namespace) -> int:
    from ftlab.config import load_config
    from ftlab.runfiles import CONFIG

    if args.run is not None and _is_override(args.run):  # no RUN: the first override
        args.overrides, args.run = [args.run, *args.overrides], None
    run = Path(args.run) if args.run else None
    if run is not None and not (run / CONFIG).is_file():
        raise RunDirError(f"{run} is not an ftlab run folder (no {CONFIG}); pass a run folder, "
                          "or --model and --strategy")
    flags = [f"model.arch={args.model}"] * bool(args.model) + \
        [f"strategy.name={args.strategy}"] * bool(args.strategy)
    _check_yaml_first({}, [*flags, *args.overrides])
    config = load_config(run / CONFIG if run else None, [*flags, *args.overrides])
    from ftlab.assembly import check_config
    from ftlab.fileio import check_output_folder
    from ftlab.memory.blocks import config_architecture
    from ftlab.report.architecture import architecture_table, save_architecture
    from ftlab.runfiles import ARCHITECTURE, RunFolder

    check_config(config)
    folder = check_output_folder(args.output_dir or Path("arch") / (
        f"{config.model.arch}-{config.strategy.name}"), ARCHITECTURE, "arch")
    num_classes, resolution = args.num_classes, None
    if run is not None and RunFolder(run).complete:
        summary = RunFolder(run).run_summary
        num_classes, resolution = summary.num_classes, summary.resolution
    record = config_architecture(config, num_classes, resolution)
    files = save_architecture(record, folder)
    print(f"{record.title}\n\n{architecture_table(record)}\n")
    print("wrote " + ", ".join(map(str, files)))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ftlab.inference import evaluate
    from ftlab.inference.metrics import eval_lines

    result = evaluate(args.target, overrides=args.overrides, split=args.split, bins=args.bins,
                      output_dir=args.output_dir, overwrite=args.overwrite)
    print("\n".join(eval_lines(result.record)))
    print(f"wrote {result.folder}: " + ", ".join(p.name for p in result.files))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ftlab.inference.predict import predict, prediction_writer

    overrides = [item for item in args.inputs if _is_override(item)]
    inputs = [item for item in args.inputs if not _is_override(item)]
    if not inputs:
        raise DataError("no images given; pass image files or folders after the target")
    write = prediction_writer(args.format, sys.stdout)
    failed = total = 0
    for prediction in predict(args.target, inputs, overrides=overrides, top_k=args.top_k,
                              batch_size=args.batch_size):
        write(prediction)
        total += 1
        failed += prediction.error is not None
    if failed:
        print(f"ftlab: {failed} of {total} inputs could not be read (see their lines)",
              file=sys.stderr)
        return 1
    return 0


def _is_override(item: str) -> bool:
    """`section.key=value` (a dotted key); anything else is an image path."""
    key, equals, _ = item.partition("=")
    return bool(equals) and re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", key) is not None


def _export(args: argparse.Namespace) -> int:
    from ftlab.inference.export import export

    result = export(args.target, args.format, args.output, overrides=args.overrides,
                    overwrite=args.overwrite, check_images=args.check_images or ())
    check = result.check
    print(f"wrote {result.path} and {result.sidecar}\nchecked with {check['runtime']} on "
          f"{check['inputs']}: max logit difference {check['max_abs_logit_difference']:.2g} "
          f"(tolerance {check['tolerance']:g}), same top-1 on every image")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ftlab.demo import run_demo

    result = run_demo(mirror=args.mirror, output_dir=args.output_dir)
    return 1 if result.failed else 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other ftlab error."""

    def error(self, message: str) -> NoReturn:
        print(f"ftlab: error: {message}; see {self.prog} --help", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ftlab", description="Fine-tune ImageNet-pretrained classifiers and compare "
        "strategies by accuracy and memory.")
    parser.add_argument("--version", action="version", version=f"ftlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)
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
    tune.add_argument("--worker", type=_int_in(0, None), metavar="N",
                      help="only run trials, as worker N, joining the search of an ftlab tune "
                           "on this suite (give each worker its own N)")
    tune.add_argument("--threads", type=_int_in(1, None), help=argparse.SUPPRESS)

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
    strategies.add_argument("--num-classes", type=_int_in(1, MAX_CLASSES), default=10,
                            help="classes of the new head when counting (default 10)")

    _add(sub, "models", _models, "list supported architectures and their torchvision weights")

    datasets = _add(sub, "datasets", _datasets, "list datasets, their layout, and what is present")
    datasets.add_argument("--root", help="data root to look in (default: $FTLAB_DATA or ./data)")



def _add_analyses(sub: argparse._SubParsersAction) -> None:
    """plot, report, diff and memory: reading and measuring runs."""
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
    _add_memory(sub)
    _add_arch(sub)
    _add_inference(sub)


def _add_arch(sub: argparse._SubParsersAction) -> None:
    from ftlab.config.commands import MAX_CLASSES

    arch = _add(sub, "arch", _arch, "the network block by block: what trains in each block, "
                "inserted side paths, and the activation memory each keeps (figure + table)")
    arch.add_argument("run", nargs="?", metavar="RUN", help="a run folder (its architecture, "
                      "strategy, batch size and resolution); else --model and --strategy")
    arch.add_argument("overrides", nargs="*", metavar="key=value",
                      help="config settings, e.g. strategy.k=3 train.batch_size=32 "
                      "data.resolution=128")
    arch.add_argument("--model", help="architecture (default mobilenet_v2)")
    arch.add_argument("--strategy", help="strategy name (default full)")
    arch.add_argument("--num-classes", type=_int_in(1, MAX_CLASSES), default=10,
                      help="classes of the head when not from a run (default 10)")
    arch.add_argument("--output-dir", help="where the files go (default arch/<model>-<strategy>)")


def _add_inference(sub: argparse._SubParsersAction) -> None:
    """eval, predict and export: using a trained network."""
    target_help = ("a run folder, an ftlab checkpoint, or pretrained:<weights> (with "
                   "model.head=keep)")
    evaluate = _add(sub, "eval", _eval, "evaluate a run, checkpoint or pretrained network on "
                    "a split: top-1/top-5, loss, per-class accuracy, confusion matrix, "
                    "calibration")
    evaluate.add_argument("target", metavar="TARGET", help=target_help)
    evaluate.add_argument("overrides", nargs="*", metavar="key=value",
                          help="data.* for other data with the same classes, train.device, "
                          "model.head=keep, ...")
    evaluate.add_argument("--split", default="test", choices=("test", "val", "train"))
    evaluate.add_argument("--bins", type=_int_in(2, 1000), default=15,
                          help="confidence bins of the calibration error (default 15)")
    evaluate.add_argument("--output-dir", help="where the files go (default eval/<target>)")
    evaluate.add_argument("--overwrite", action="store_true",
                          help="replace an earlier ftlab eval output there")

    predict = _add(sub, "predict", _predict, "classify image files and folders with a run, "
                   "checkpoint or pretrained network (class names and probabilities)")
    predict.add_argument("target", metavar="TARGET", help=target_help)
    predict.add_argument("inputs", nargs="+", metavar="IMAGES_OR_FOLDERS",
                         help="image files and folders (searched recursively); key=value "
                         "items are overrides, as for ftlab eval")
    predict.add_argument("--top-k", type=_int_in(1, None), default=5)
    predict.add_argument("--format", default="table", choices=("table", "jsonl", "csv"))
    predict.add_argument("--batch-size", type=_int_in(1, None),
                         help="images per forward pass (default: the run's eval batch)")

    export = _add(sub, "export", _export, "export the plain network as ONNX, TorchScript or "
                  "safetensors with a JSON sidecar (classes, preprocessing), checked on real "
                  "images")
    export.add_argument("target", metavar="TARGET", help=target_help)
    export.add_argument("overrides", nargs="*", metavar="key=value",
                        help="model.arch and model.head=keep for pretrained weights")
    export.add_argument("--format", required=True,
                        help="onnx (needs pip install 'ftlab[export]'), torchscript or "
                        "safetensors")
    export.add_argument("--output", help="model file (default <target><suffix>); the sidecar "
                        "is this path + .json")
    export.add_argument("--overwrite", action="store_true",
                        help="replace an existing output and sidecar")
    export.add_argument("--check-images", nargs="+", metavar="PATH",
                        help="images to check the export on (default: the target's test split)")


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


def _add_memory(sub: argparse._SubParsersAction) -> None:
    """memory: flags and overrides both fill ftlab.config.MemoryConfig."""
    memory = _add(sub, "memory", _memory, "training memory per strategy: measured (stock and "
                  "memory-efficient) and analytic, as Markdown and CSV")
    memory.add_argument("overrides", nargs="*", metavar="key=value",
                        help="settings of ftlab.config.MemoryConfig, e.g. resolution=160 "
                        "strategies=[full,bias]; the flags below set the same fields")
    memory.add_argument("--model", help="architecture (default mobilenet_v2)")
    memory.add_argument("--strategies", help="comma-separated names, or all (default)")
    memory.add_argument("--batch-sizes", type=_int_list, help="comma-separated (default 1,64)")
    memory.add_argument("--resolution", type=int, help="input side in px (default 224)")
    memory.add_argument("--frozen-bits", type=int, choices=(8, 16, 32),
                        help="bits per frozen weight in the analytic count (TinyTL: 8; "
                        "default 32)")
    memory.add_argument("--num-classes", type=int, help="classes of the head (default 10)")
    memory.add_argument("--execution", choices=("both", "stock", "efficient"))
    memory.add_argument("--device", choices=("cpu", "cuda", "auto"), help="default cpu")
    memory.add_argument("--output-dir", default="runs/memory",
                        help="where memory.md and memory.csv go")


def _add(sub: argparse._SubParsersAction, name: str, handler: Command, help_text: str
         ) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def _int_list(text: str) -> list[int]:
    return [_int_in(1, None)(part) for part in text.split(",")]


def _int_in(low: int, high: int | None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] (no upper bound when high is None)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} must be at least {low}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{value} must be at most {high:,}")
        return value

    return parse


if __name__ == "__main__":
    sys.exit(main())
