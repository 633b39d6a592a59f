"""Every command's arguments, and suite files, from hypothesis: exit 0, or exit 2 with one
line on stderr; never a traceback, another exit code, or a hang.

Arguments mix each command's real options with values that are right, wrong in type or
range, hostile (NaN, huge, unicode, control characters, option-like strings) or paths of the
wrong kind (a dataset folder, a run folder, a file, nothing). Valid combinations are kept
small (one strategy, tiny images) so that an example that is accepted finishes in seconds.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import made_read_only

from ftlab.cli import main

TRICKY = ["nan", "inf", "-1", "0", "1e309", "2**64", "99999999999999999999", "", " ", "é",
          "名前", "💥", "\x00", "\n", "../..", "/", "a,b", ",", "--", "-x", "=", "null",
          "${oc.env:HOME}", "all", "none", "true"]
INTS = st.one_of(st.integers(-3, 6), st.sampled_from([10**6, 10**12, 2**63])).map(str)
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1, 2)).map(repr)
ANY = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12), INTS, FLOATS)
def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def places(tmp_path_factory, clean) -> dict[str, str]:
    """Paths of every kind, in a folder of this module's own (commands may write here):
    right ones, wrong kinds, a FIFO named like an image (never to be opened: it blocks), a
    folder that cannot be written (where the machine allows one)."""
    root = tmp_path_factory.mktemp("fuzz")
    with made_read_only(root / "read-only") as read_only:
        yield _places(root, clean, read_only)


def _places(root: Path, clean: Path, read_only: Path | None) -> dict[str, str]:
    runs = root / "runs"
    shutil.copytree(clean, runs / "clean", ignore=shutil.ignore_patterns("previous.pt"))
    dataset = root / "dataset" / "train" / "cat"
    dataset.mkdir(parents=True)
    (dataset / "0.jpg").write_bytes(b"not a jpeg")
    (root / "file.txt").write_text("text", encoding="utf-8")
    image = root / "image.png"
    Image.new("RGB", (20, 16), (200, 30, 30)).save(image)
    os.mkfifo(root / "pipe.jpg")
    unwritable = read_only or root / "absent"
    return {"run": str(runs / "clean"), "image": str(image), "runs": str(runs),
            "dataset": str(root / "dataset"), "file": str(root / "file.txt"),
            "absent": str(root / "absent"), "checkpoint": str(runs / "clean" / "best.pt"),
            "out": str(root / "out"), "root": str(root), "fifo": str(root / "pipe.jpg"),
            "read-only": str(unwritable / "out"), "run-file": str(runs / "clean" / "last.pt")}


def paths(places: dict[str, str], *kinds: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from([places[k] for k in kinds]), ANY)


def outputs(places: dict[str, str], *kinds: str) -> st.SearchStrategy[str]:
    """Output locations: places of every kind (always also a FIFO, a folder that cannot be
    written and a file of a run), or generated names inside the scratch folder (never an
    absolute path elsewhere, so no example writes outside this test's folder)."""
    kinds = (*kinds, "fifo", "read-only", "run-file")
    return st.one_of(st.sampled_from([places[k] for k in kinds]),
                     ANY.map(lambda name: places["out"] + "/" + name))


def options(table: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[list[str]]:
    """Some of the options, in any order, each with a generated value."""
    pairs = st.lists(st.sampled_from(sorted(table)), max_size=len(table), unique=True)
    return pairs.flatmap(lambda names: st.tuples(*[table[n].map(lambda v, n=n: [n, v])
                                                   for n in names]) if names
                         else st.just(())).map(lambda groups: [x for g in groups for x in g])


def run_cli(argv: list[str], cwd: str) -> tuple[int, str]:
    """`main(argv)` in `cwd`: default outputs (curves.png, diff/, runs/memory) land there."""
    err = io.StringIO()
    home = os.getcwd()
    os.chdir(cwd)
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse: usage errors (2) and --help (0)
            code = int(exit.code or 0)
        finally:
            os.chdir(home)
    return code, err.getvalue()


def check(argv: list[str], cwd: str) -> str:
    code, err = run_cli(argv, cwd)
    if code == 1 and argv[0] == "predict":  # some inputs unreadable: said per input, then
        assert err.endswith("inputs could not be read (see their lines)\n"), (argv, err)
        return "exit 1, unreadable inputs named on their own lines"
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        assert err.startswith("ftlab: error: ") and err.count("\n") == 1, (argv, err)
        return "exit 2, one line"
    return "exit 0"


def command_args(places: dict[str, str]) -> dict[str, st.SearchStrategy[list[str]]]:
    names = st.one_of(st.sampled_from(["mobilenet_v2", "resnet18", "resnet9000", "MobileNet"]),
                      ANY)
    return {
        "strategies": options({"--model": names, "--num-classes": INTS}),
        "datasets": options({"--root": paths(places, "dataset", "runs", "file", "absent")}),
        "report": st.tuples(paths(places, "runs", "run", "dataset", "file", "absent"),
                            options({"--title": ANY})).map(lambda t: [t[0], *t[1]]),
        "plot": st.tuples(st.lists(paths(places, "run", "dataset", "file", "absent"),
                                   min_size=1, max_size=2),
                          options({"--metrics": st.sampled_from(
                              ["val_top1", "train_loss,val_top5", "nope", "epoch", ""]) | ANY,
                              "--labels": ANY, "--smooth": FLOATS, "--title": ANY,
                              "--output": outputs(places, "out", "dataset", "run")})
                          ).map(lambda t: [*t[0], *t[1]]),
        "diff": st.tuples(paths(places, "run", "checkpoint", "dataset", "file", "absent"),
                          paths(places, "run", "checkpoint", "dataset", "absent"),
                          options({"--ref": paths(places, "run", "absent") | st.just(
                              "pretrained:IMAGENET1K_V1"), "--probe": paths(places, "run",
                                                                             "dataset"),
                                   "--probe-size": INTS, "--k": INTS,
                                   "--output-dir": outputs(places, "out", "dataset", "run")})
                          ).map(lambda t: [t[0], t[1], *t[2]]),
        "memory": options({"--model": names, "--strategies": st.sampled_from(
            ["linear_probe", "bias,linear_probe", "nope", "tinytl"]) | ANY,
            "--batch-sizes": st.sampled_from(["1", "2", "1,2", "0", "-1", "1,,2"]) | INTS,
            "--resolution": st.sampled_from(["32", "64", "7", "5000"]) | INTS,
            "--frozen-bits": INTS, "--num-classes": INTS,
            "--execution": st.sampled_from(["both", "stock", "efficient"]) | ANY,
            "--device": st.sampled_from(["cpu", "cuda", "auto"]) | ANY,
            "--output-dir": outputs(places, "out", "dataset", "run", "file")}),
        **inference_args(places),
    }


def inference_args(places: dict[str, str]) -> dict[str, st.SearchStrategy[list[str]]]:
    """eval, predict and export: targets of every kind (a run, its checkpoint, pretrained
    weights, a dataset, a file, nothing), overrides, images and outputs."""
    targets = paths(places, "run", "checkpoint", "dataset", "file", "absent", "fifo") | \
        st.sampled_from(["pretrained:IMAGENET1K_V1", f"pretrained:{places['checkpoint']}",
                         "pretrained:"])
    overrides = st.lists(st.sampled_from(
        ["model.head=keep", "model.head=new", "model.head=maybe", "data.resolution=16",
         "model.arch=resnet18", "train.device=cpu", "data.name=nope", "strategy.name=bias"])
        | ANY, max_size=2)
    images = st.lists(paths(places, "dataset", "file", "absent", "run", "image", "fifo"),
                      min_size=1, max_size=3)
    return {
        "eval": st.tuples(targets, overrides, options({
            "--split": st.sampled_from(["test", "val", "train"]) | ANY, "--bins": INTS,
            "--output-dir": outputs(places, "out", "dataset", "run", "file")})
        ).map(lambda t: [t[0], *t[1], *t[2], "--overwrite"]),
        "predict": st.tuples(targets, images, options({
            "--top-k": INTS, "--format": st.sampled_from(["table", "jsonl", "csv"]) | ANY,
            "--batch-size": INTS})).map(lambda t: [t[0], *t[1], *t[2]]),
        "export": st.tuples(targets, overrides, options({
            "--format": st.sampled_from(["torchscript", "safetensors", "onnx"]) | ANY,
            "--output": outputs(places, "out", "dataset", "run", "file"),
            "--check-images": paths(places, "image", "file", "absent")})
        ).map(lambda t: [t[0], *t[1], *t[2], "--overwrite"]),
    }


# Accepted memory examples measure for real; these keep each one small.
SMALL_MEMORY = ["--strategies", "linear_probe", "--batch-sizes", "1", "--resolution", "32"]


@pytest.mark.parametrize("command, examples", [
    ("strategies", 40), ("datasets", 30), ("report", 30), ("plot", 40), ("diff", 30),
    ("memory", 40), ("eval", 25), ("predict", 25), ("export", 15)])
def test_command_arguments_exit_0_or_2_with_one_line(places, reliability, command, examples):
    outcomes: dict[str, int] = {}

    @fuzz_settings(examples)
    @given(args=command_args(places)[command])
    def fuzz(args: list[str]) -> None:
        prefix = SMALL_MEMORY if command == "memory" else []
        outcome = check([command, *prefix, *args], places["root"])
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    fuzz()
    for outcome, count in outcomes.items():
        reliability.inputs(f"`ftlab {command}` arguments from hypothesis (options, types, "
                           "ranges, unicode, wrong kinds of paths: FIFOs, unwritable folders, run "
                           "files)", outcome, count)


SUITE_KEYS = ["name", "base", "overrides", "grid", "runs", "output_dir", "parallel",
              "executor", "memory", "analysis", "report", "nonsense"]
YAML_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(),
              st.sampled_from(TRICKY), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(
                                ["name", "overrides", "continue_from", "datasets",
                                 "strategies", "seeds", "a", "b", "full", "x"]) | st.text(
                                max_size=6), inner, max_size=3)),
    max_leaves=8)


@pytest.mark.parametrize("as_text", [False, True])
def test_suite_files_exit_0_or_2_with_one_line(places, reliability, monkeypatch, as_text):
    """Generated suite files, validated by `ftlab suite`: a valid suite with random keys
    replaced, or raw text. Runs, memory and analysis steps are replaced by no-ops, so an
    accepted file costs nothing but its validation and index."""
    import ftlab.suite as suite_module

    monkeypatch.setattr(suite_module, "run_states", lambda *args: None)
    monkeypatch.setattr(suite_module, "memory_step", lambda *args: None)
    monkeypatch.setattr(suite_module, "analysis_step", lambda *args: None)
    folder = Path(places["root"]) / f"suites-{as_text}"
    folder.mkdir(exist_ok=True)
    outcomes: dict[str, int] = {}
    valid = {"name": "s", "overrides": ["data.name=synthetic", "model.weights=none"],
             "runs": [{"name": "r"}], "output_dir": str(folder / "out")}
    documents = (st.text(max_size=200) if as_text else
                 st.dictionaries(st.sampled_from(SUITE_KEYS), YAML_VALUES, max_size=3).map(
                     lambda changes: {**valid, **changes}))
    @fuzz_settings(150)
    @given(document=documents, overrides=st.lists(st.sampled_from(
        ["parallel=2", "parallel=0", "name=x/y", "executor=nope", "grid.seeds=[1]", "=", "a"])
        | ANY, max_size=2))
    def fuzz(document, overrides: list[str]) -> None:
        path = folder / "suite.yaml"
        text = document if as_text else yaml.safe_dump(document, allow_unicode=True)
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        outcome = check(["suite", str(path), *overrides, "--no-report"], str(folder))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    fuzz()
    kind = "raw text" if as_text else "YAML mappings of suite keys with random values"
    for outcome, count in outcomes.items():
        reliability.inputs(f"suite files from hypothesis ({kind}) with overrides", outcome,
                           count)
