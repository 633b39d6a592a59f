"""Where commands read and write, made hostile: FIFOs and folders where files belong,
folders that cannot be written, empty paths, outputs that would replace ftlab's own files,
images past the decompression-bomb limit, and steps that cannot fit in memory. Each is one
line and exit 2 (or, for an unreadable image among others, its own line), found before the
work, nothing written; never a traceback or a hang."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import tiny_overrides
from PIL import Image
from torchvision import datasets

from faults.runs import RUN
from ftlab.cli import main
from ftlab.data import load_rgb
from ftlab.data.unreadable import read_sample


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ftlab: error: "), err
    return err[0]


@pytest.fixture
def run(tmp_path, clean) -> Path:
    """A copy of the clean run, which commands here may try to damage."""
    copy = tmp_path / "run"
    shutil.copytree(clean, copy, ignore=shutil.ignore_patterns("previous.pt", ".lock"))
    return copy


def test_predict_opens_only_regular_files(run, tmp_path, reliability):
    """A FIFO named like an image would block the reader forever (no writer ever comes)."""
    image = tmp_path / "image.png"
    Image.new("RGB", (24, 24), (20, 200, 30)).save(image)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    result = subprocess.run([sys.executable, "-m", "ftlab", "predict", str(run), str(fifo),
                             str(image)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"{fifo}  error: not a regular file but a FIFO" in result.stdout
    assert f"{image}  class_" in result.stdout and "Traceback" not in result.stderr
    reliability.inputs("`ftlab predict` on a FIFO named pipe.jpg", "its own line "
                       "'not a regular file', the other images predicted, no hang")


def test_images_past_the_decompression_bomb_limit_are_skipped_silently(run, tmp_path,
                                                                      monkeypatch,
                                                                      reliability):
    """PIL warns between MAX_IMAGE_PIXELS and twice that, and decodes anyway; every reader
    of ftlab turns that into a skipped image and prints no Python warning. (The limit is
    lowered so a 40 x 40 image stands in for a 100 M pixel one.)"""
    from ftlab.inference.predict import predict

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    folder = tmp_path / "data" / "cat"
    folder.mkdir(parents=True)
    Image.new("RGB", (40, 40), (200, 30, 30)).save(folder / "big.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = list(predict(str(run), [folder / "big.png"], workers=0))
        skipped = read_sample(datasets.ImageFolder(str(tmp_path / "data"), loader=load_rgb),
                              0, "skip")
    assert len(got) == 1 and "decompression bomb" in got[0].error and not got[0].top
    assert skipped is None
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    reliability.inputs("an image past PIL's decompression-bomb limit (predict, train, eval)",
                       "skipped and counted or named; no Python warning printed")


def test_outputs_that_cannot_be_written_are_refused_before_the_work(run, read_only_folder,
                                                                    capsys, reliability):
    target = read_only_folder / "inside"
    commands = {
        "eval": ["eval", str(run), "--output-dir", str(target)],
        "export": ["export", str(run), "--format", "safetensors", "--output",
                   str(read_only_folder / "model.safetensors")],
        "plot": ["plot", str(run), "--output", str(target / "curves")],
        "arch": ["arch", str(run), "--output-dir", str(target)],
        "diff": ["diff", str(run), str(run), "--output-dir", str(target)],
    }
    for name, argv in commands.items():
        assert main(argv) == 2, name
        line = _one_line(capsys)
        assert "cannot be written" in line and str(read_only_folder) in line, (name, line)
    assert not list(read_only_folder.iterdir())
    reliability.inputs("output folders that cannot be written (eval, export, plot, arch, "
                       "diff)", "refused before the work: exit 2, one line naming the path",
                       len(commands))


def test_empty_output_paths_are_refused(run, tmp_path, capsys, monkeypatch, reliability):
    monkeypatch.chdir(tmp_path)  # where the defaults would land
    commands = [["eval", str(run), "--output-dir", ""],
                ["export", str(run), "--format", "safetensors", "--output", ""],
                ["arch", str(run), "--output-dir", ""], ["plot", str(run), "--output", ""],
                ["plot", str(run), "--output", "/"]]
    for argv in commands:
        assert main(argv) == 2, argv
        line = _one_line(capsys)
        assert "empty" in line or "names no file" in line, (argv, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "no default output written"
    reliability.inputs("empty output paths (eval, export, arch, plot)", "refused: exit 2, one "
                       "line; the default location not written", len(commands))


def test_export_overwrite_never_replaces_a_file_ftlab_reads_back(run, tmp_path, capsys,
                                                                 reliability):
    pytest.importorskip("safetensors", reason="export needs the export extra")
    kept = {name: (run / name).read_bytes() for name in ("best.pt", "last.pt", "config.yaml")}
    for name in kept:
        assert main(["export", str(run), "--format", "safetensors", "--output",
                     str(run / name), "--overwrite"]) == 2
        assert f"is a file ftlab reads back ({name})" in _one_line(capsys)
    checkpoint = tmp_path / "model.pt"
    shutil.copy(run / "best.pt", checkpoint)
    assert main(["export", str(checkpoint), "--format", "safetensors", "--output",
                 str(checkpoint), "--overwrite"]) == 2
    assert "is the checkpoint being exported" in _one_line(capsys)
    assert all((run / name).read_bytes() == data for name, data in kept.items())
    assert main(["train", "--resume", str(run), f"train.epochs={RUN['train.epochs'] + 1}"]) \
        == 0, "the run still resumes"
    output = tmp_path / "export.safetensors"
    for _ in range(2):  # an earlier export is what --overwrite replaces
        assert main(["export", str(checkpoint), "--format", "safetensors", "--output",
                     str(output), "--overwrite"]) == 0
    reliability.inputs("`ftlab export --overwrite` onto a run's checkpoint or config, or onto "
                       "the exported checkpoint", "refused: exit 2, one line; the run "
                       "resumes", len(kept) + 1)


@pytest.mark.parametrize("argv", [
    ["arch", "train.batch_size=100000", "data.resolution=4096"],
    ["arch", "--strategy", "tinytl", "train.batch_size=4096", "data.resolution=1024"],
    ["train", "train.batch_size=100000", "data.resolution=4096"],
], ids=["arch", "arch-tinytl", "train"])
def test_a_step_that_cannot_fit_is_refused_before_it_is_allocated(tmp_path, capsys, argv,
                                                                  monkeypatch, reliability):
    monkeypatch.chdir(tmp_path)
    extra = tiny_overrides(tmp_path / "runs") if argv[0] == "train" else []
    assert main([*argv[:1], *extra, *argv[1:]]) == 2
    assert "under stock autograd, more than" in _one_line(capsys)
    assert not list(tmp_path.iterdir()), "nothing written"
    reliability.inputs("a training step far past the free memory (arch, train, tune trials)",
                       "refused before allocating: exit 2, one line")
