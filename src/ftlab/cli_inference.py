"""`ftlab arch`, `ftlab eval`, `ftlab predict` and `ftlab export`: looking at and using a
network, from argparse's values to the library's functions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftlab.cli_args import add_command as _add
from ftlab.cli_args import check_yaml_first, int_in, is_override
from ftlab.errors import DataError, RunDirError


def add_commands(sub: argparse._SubParsersAction) -> None:
    add_arch(sub)
    add_inference(sub)


def _arch(args: argparse.Namespace) -> int:
    from ftlab.config import load_config
    from ftlab.runfiles import CONFIG

    if args.run is not None and is_override(args.run):  # no RUN: the first override
        args.overrides, args.run = [args.run, *args.overrides], None
    run = Path(args.run) if args.run else None
    if run is not None and not (run / CONFIG).is_file():
        raise RunDirError(f"{run} is not an ftlab run folder (no {CONFIG}); pass a run folder, "
                          "or --model and --strategy")
    flags = [f"model.arch={args.model}"] * bool(args.model) + \
        [f"strategy.name={args.strategy}"] * bool(args.strategy)
    check_yaml_first({}, [*flags, *args.overrides])
    config = load_config(run / CONFIG if run else None, [*flags, *args.overrides])
    from ftlab.assembly import check_config
    from ftlab.fileio import check_output_folder
    from ftlab.memory.blocks import config_architecture
    from ftlab.report.architecture import architecture_table, save_architecture
    from ftlab.runfiles import ARCHITECTURE, RunFolder

    check_config(config)
    default = Path("arch") / f"{config.model.arch}-{config.strategy.name}"
    folder = check_output_folder(default if args.output_dir is None else args.output_dir,
                                 ARCHITECTURE, "arch")
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

    overrides = [item for item in args.inputs if is_override(item)]
    inputs = [item for item in args.inputs if not is_override(item)]
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


def _export(args: argparse.Namespace) -> int:
    from ftlab.inference.export import export

    result = export(args.target, args.format, args.output, overrides=args.overrides,
                    overwrite=args.overwrite, check_images=args.check_images or ())
    check = result.check
    print(f"wrote {result.path} and {result.sidecar}\nchecked with {check['runtime']} on "
          f"{check['inputs']}: max logit difference {check['max_abs_logit_difference']:.2g} "
          f"(tolerance {check['tolerance']:g}), same top-1 on every image"
          + (f" but {check['near_ties']} near-ties (top two logits within twice that)"
             if check.get("near_ties") else ""))
    return 0


def add_arch(sub: argparse._SubParsersAction) -> None:
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
    arch.add_argument("--num-classes", type=int_in(1, MAX_CLASSES), default=10,
                      help="classes of the head when not from a run (default 10)")
    arch.add_argument("--output-dir", help="where the files go (default arch/<model>-<strategy>)")


def add_inference(sub: argparse._SubParsersAction) -> None:
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
    evaluate.add_argument("--bins", type=int_in(2, 1000), default=15,
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
    predict.add_argument("--top-k", type=int_in(1, None), default=5)
    predict.add_argument("--format", default="table", choices=("table", "jsonl", "csv"))
    predict.add_argument("--batch-size", type=int_in(1, None),
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
