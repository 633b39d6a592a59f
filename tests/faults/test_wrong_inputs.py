"""Inputs that once hung or passed silently: YAML alias bombs, suites whose runs continue
from each other in a cycle, and commands pointed at the wrong kind of folder. Each must end
in one line and exit 2, quickly, leaving every folder as it was."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ftlab
from ftlab.cli import main
from ftlab.config import load_config
from ftlab.errors import ConfigError
from ftlab.suite.expand import expand, load_suite


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """`levels` anchors, each a list of `width` aliases to the one before: a few hundred
    bytes that expand to width**levels values (9**9 = 387 million)."""
    lines = ["a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]"
              for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(folder.rglob("*"))}


def one_line_exit_2(args: list[str], capsys) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("ftlab: error: ") and err.count("\n") == 1, err
    return err


# --- YAML alias bombs ----------------------------------------------------------------------
# The peak resident memory of this process image (VmHWM, KiB): getrusage's ru_maxrss would
# also count the parent's pages that the fork before exec shared.
PEAK_SCRIPT = textwrap.dedent("""
    import re, sys
    from pathlib import Path
    from ftlab.cli import main
    code = main(sys.argv[1:])
    status = Path("/proc/self/status").read_text()
    print(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
    sys.exit(code)
""")


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads Linux's /proc")
@pytest.mark.parametrize("command", ["train", "suite"])
def test_alias_bomb_file_is_refused_fast_and_small(tmp_path, reliability, command):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(), encoding="utf-8")
    before = snapshot(tmp_path)
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, command, str(bomb)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "expands to more than 20,000 values" in done.stderr
    assert str(bomb) in done.stderr
    peak_kib = int(done.stdout.split()[-1])
    assert peak_kib < 100 * 1024, f"peak {peak_kib} KiB"  # measured: about 16 MiB
    assert snapshot(tmp_path) == before
    reliability.inputs("YAML alias bomb (9 levels x 9 aliases) as a config or suite file",
                       "refused: exit 2, one line naming the file, < 100 MiB, nothing written")


def test_alias_bombs_are_refused_wherever_yaml_is_read(tmp_path, tiny, capsys, reliability):
    bomb = alias_bomb()
    with pytest.raises(ConfigError, match="expands to more than"):
        load_config(None, [f"optim.lr={{{bomb.replace(chr(10), ', ')}}}"])
    run_dir = Path(ftlab.train(None, overrides=tiny(**{"train.epochs": 1}))["run_dir"])
    config = run_dir / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8") + bomb, encoding="utf-8")
    before = snapshot(run_dir)
    err = one_line_exit_2(["train", "--resume", str(run_dir), "train.epochs=2"], capsys)
    assert "run config" in err and "expands to more than" in err
    assert snapshot(run_dir) == before
    with pytest.raises(ConfigError, match="expands to more than"):
        load_config(config)
    reliability.inputs("YAML alias bomb in an override value or a run's config.yaml",
                       "refused: one line, run folder unchanged", 2)


@pytest.mark.parametrize("text, words", [
    ("a: &a [*a]\n", "recursive structure"),
    ("a: " + "[" * 100 + "]" * 100 + "\n", "nests more than 64 levels"),
])
def test_recursive_and_deep_yaml_is_refused(tmp_path, capsys, text, words, reliability):
    path = tmp_path / "odd.yaml"
    path.write_text(text, encoding="utf-8")
    assert words in one_line_exit_2(["train", str(path)], capsys)
    assert words in one_line_exit_2(["suite", str(path)], capsys)
    reliability.inputs("YAML that is recursive (an alias inside its anchor) or 100 levels deep",
                       "refused: exit 2, one line", 2)


def test_huge_yaml_file_is_refused_unread(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    path.write_text("data:\n  name: synthetic\n" + "# padding\n" * 120_000, encoding="utf-8")
    assert "ftlab reads YAML files of at most 1,048,576 bytes" in one_line_exit_2(
        ["train", str(path)], capsys)


# --- suites whose runs continue from each other ---------------------------------------------
def _suite(tmp_path: Path, runs: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(f"name: cyc\noutput_dir: {tmp_path / 'out'}\nruns:\n{runs}",
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("runs, words", [
    ("  - {name: x, continue_from: y}\n  - {name: y, continue_from: x}\n",
     "continue_from forms a cycle (x -> y -> x)"),
    ("  - {name: x, continue_from: x}\n", "continue_from forms a cycle (x -> x)"),
    ("  - {name: a}\n  - {name: x, continue_from: y}\n  - {name: y, continue_from: z}\n"
     "  - {name: z, continue_from: x}\n", "continue_from forms a cycle (x -> y -> z -> x)"),
    ("  - {name: x, continue_from: nobody}\n", "continue_from='nobody' is not a run"),
])
def test_suite_continue_from_cycles_and_strangers_exit_2(tmp_path, capsys, runs, words,
                                                         reliability):
    path = _suite(tmp_path, runs)
    before = snapshot(tmp_path)
    assert words in one_line_exit_2(["suite", str(path)], capsys)
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()
    reliability.inputs("suite whose continue_from form a cycle or name no run",
                       "refused before any run: exit 2, one line naming the cycle")


def test_suite_continuation_chain_is_accepted(tmp_path):
    path = _suite(tmp_path, "  - {name: x}\n  - {name: y, continue_from: x}\n"
                            "  - {name: z, continue_from: y}\n")
    specs = expand(load_suite(path), path)
    assert [(s.name, s.continue_from) for s in specs] == [("x", None), ("y", "x"), ("z", "y")]


# --- commands pointed at the wrong kind of folder --------------------------------------------
@pytest.fixture
def dataset_folder(tmp_path: Path) -> Path:
    """A folder that is not ftlab's: an ImageFolder-like dataset with a YAML file in it."""
    root = tmp_path / "dataset"
    for name in ("cat", "dog"):
        (root / "train" / name).mkdir(parents=True)
        (root / "train" / name / "0.jpg").write_bytes(b"not really a jpeg")
    (root / "notes.yaml").write_text("source: somewhere\n", encoding="utf-8")
    return root


def test_report_refuses_a_folder_that_is_not_a_suite(dataset_folder, capsys, reliability):
    before = snapshot(dataset_folder)
    err = one_line_exit_2(["report", str(dataset_folder)], capsys)
    assert "is not an ftlab suite folder" in err
    assert snapshot(dataset_folder) == before
    assert "is not a folder" in one_line_exit_2(
        ["report", str(dataset_folder / "absent")], capsys)
    reliability.inputs("`ftlab report` on a dataset folder or a missing one",
                       "refused: exit 2, one line, nothing written")


def test_report_accepts_a_folder_of_runs(tmp_path, tiny, capsys):
    ftlab.train(None, overrides=tiny(**{"train.epochs": 1}))
    assert main(["report", str(tmp_path / "runs")]) == 0
    assert (tmp_path / "runs" / "report" / "report.md").is_file()


def test_plot_diff_and_memory_refuse_wrong_folders(tmp_path, dataset_folder, tiny, capsys,
                                                   reliability):
    run = ftlab.train(None, overrides=tiny(**{"train.epochs": 1}))["run_dir"]
    before, run_before = snapshot(dataset_folder), snapshot(Path(run))
    assert "is not an ftlab run folder" in one_line_exit_2(
        ["plot", run, str(dataset_folder), "--output", str(tmp_path / "curves")], capsys)
    assert not list(tmp_path.glob("curves*"))
    for output in (dataset_folder, Path(run)):
        err = one_line_exit_2(["diff", run, run, "--output-dir", str(output)], capsys)
        assert "already holds other files (no diff.json" in err
        err = one_line_exit_2(["memory", "--strategies", "linear_probe", "--batch-sizes", "1",
                               "--resolution", "64", "--output-dir", str(output)], capsys)
        assert "already holds other files (no memory.csv" in err
    (tmp_path / "a_file").write_text("x", encoding="utf-8")
    assert "is a file" in one_line_exit_2(
        ["memory", "--output-dir", str(tmp_path / "a_file")], capsys)
    assert snapshot(dataset_folder) == before and snapshot(Path(run)) == run_before
    reliability.inputs("`ftlab plot/diff/memory` given a dataset or run folder as input or "
                       "output", "refused: exit 2, one line, nothing written", 5)


def test_suite_refuses_an_occupied_folder_that_is_not_its_own(tmp_path, capsys):
    (tmp_path / "out" / "cyc").mkdir(parents=True)
    (tmp_path / "out" / "cyc" / "precious.txt").write_text("keep", encoding="utf-8")
    path = _suite(tmp_path, "  - {name: x}\n")
    before = snapshot(tmp_path)
    assert "already holds other files (no suite.yaml" in one_line_exit_2(
        ["suite", str(path)], capsys)
    assert snapshot(tmp_path) == before



def test_suite_overrides_that_are_not_strings_exit_2(tmp_path, capsys, reliability):
    """Found by the suite-file fuzzing (seed 3561511440): a list where an override belongs."""
    path = tmp_path / "suite.yaml"
    path.write_text(f"output_dir: {tmp_path / 'out'}\noverrides: [[]]\nruns: [{{name: r}}]\n",
                    encoding="utf-8")
    assert "is not a string of the form section.key=value" in one_line_exit_2(
        ["suite", str(path)], capsys)
    assert not (tmp_path / "out").exists()
    reliability.inputs("suite file whose overrides hold lists", "refused: exit 2, one line")


@pytest.mark.parametrize("args", [
    ["datasets", "--root", "~nosuchuser/data"],
    ["train", "train.output_dir=~nosuchuser", "model.weights=none", "data.name=synthetic"],
    ["train", "data.name=imagefolder", "data.root=~nosuchuser"],
    ["train", "model.weights=~nosuchuser/weights.pth"],
])
def test_a_home_folder_of_an_unknown_user_exits_2(args, capsys, reliability):
    """Found by the argument fuzzing: pathlib raises RuntimeError for ~user of no user."""
    assert "starts with ~ but names no user" in one_line_exit_2(args, capsys)
    reliability.inputs("paths starting with ~ of a user that does not exist",
                       "refused: exit 2, one line naming the setting")
