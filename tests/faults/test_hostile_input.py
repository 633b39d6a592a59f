"""Hostile configs, run names and image files: a valid run, or one clear line and exit 2.

Config values and overrides come from hypothesis: known keys and invented ones, with
integers far out of range, NaN and infinities, unicode, YAML and OmegaConf syntax
(interpolations, lists, mappings), control characters and path tricks. Every example must
end as a valid `ExperimentConfig` (which then survives a YAML round trip) or as an
`FtlabError` whose message is one line; through the CLI, as exit code 2 with one line on
stderr. Anything else — a traceback, a hang, another exception — fails the test.
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
from conftest import tiny_overrides
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_data import make_imagefolder

import ftlab
from ftlab.cli import main
from ftlab.config import config_to_dict, config_to_yaml, load_config
from ftlab.errors import FtlabError
from ftlab.suite.expand import load_suite
from ftlab.assembly.experiment import check_config

KEYS = sorted(
    f"{section}.{key}" for section, values in config_to_dict(load_config()).items()
    for key, value in values.items() if not isinstance(value, dict)
) + ["data.synthetic.num_classes", "strategy.k", "strategy.lr_decay"]
TRICKY = ["nan", "-nan", "inf", "-inf", ".inf", "1e309", "-1", "0", "0x10", "1_000", "2**64",
          "null", "~", "", " ", "true", "yes", "[1, 2]", "{a: 1}", "${oc.env:HOME}",
          "${missing.key}", "${train.seed}", "???", "'", '"', "\\", "\x00", "\n", "é", "名前",
          "../../etc", "/abs/path", "a/b", "💥", "--overwrite", "=", "a=b", "%s%s%n"]
VALUES = st.one_of(
    st.sampled_from(TRICKY), st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr), st.booleans().map(str),
    st.text(max_size=30),
)
KEYS_ANY = st.one_of(st.sampled_from(KEYS), st.text(max_size=20),
                     st.sampled_from(KEYS).map(lambda k: k + ".deeper"))
OVERRIDES = st.lists(st.tuples(KEYS_ANY, VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"),
                     min_size=1, max_size=4)
CATEGORY = ("config overrides from hypothesis (types, ranges, unicode, huge numbers, NaN/inf, "
            "YAML/OmegaConf syntax)")


def outcome_of(overrides: list[str]) -> str:
    try:
        config = load_config(None, overrides)
        check_config(config)
    except FtlabError as err:
        assert str(err) and "\n" not in str(err), repr(str(err))
        return "refused: one-line message (exit 2 on the CLI)"
    with tempfile.TemporaryDirectory() as folder:  # load -> dump -> load: the same config
        path = Path(folder) / "config.yaml"
        path.write_text(config_to_yaml(config), encoding="utf-8")
        assert load_config(path) == config
    for value in config_to_dict(config)["optim"].values():
        assert not (isinstance(value, float) and not math.isfinite(value))
    return "valid run config (round-trips through YAML)"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=OVERRIDES)
@example(overrides=["data.bad_images=[1, 2]", "data.bad_images.deeper=nan"])  # found once
def test_overrides_give_a_config_or_one_clear_line(reliability, overrides):
    reliability.inputs(CATEGORY, outcome_of(overrides))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=OVERRIDES)
def test_cli_exits_2_with_one_line(reliability, overrides):
    with tempfile.TemporaryDirectory() as folder:
        forced = [f"data.root={Path(folder) / 'absent'}", "data.name=imagefolder",
                  "model.weights=none", f"train.output_dir={folder}"]
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(["train", *overrides, *forced])
            except SystemExit as exit:  # argparse: an override that looks like an option
                code = exit.code
        text = err.getvalue()
        assert code == 2, text
        assert text.startswith("ftlab: error: ") and text.count("\n") == 1, text
        assert not any(Path(folder).iterdir()), "nothing may be written on bad input"
    reliability.inputs("CLI `ftlab train` with hypothesis overrides and absent data",
                       "exit 2, one line on stderr, nothing written")


TRAVERSALS = ["..", "../escape", "../../etc/passwd", "/tmp/abs", "a/b", "a\\b", ".hidden",
              "~root", "x\x00y", "na\nme", "a b", "名前", "a" * 300, "%2e%2e", "run:1"]


@pytest.mark.parametrize("name", TRAVERSALS)
def test_run_names_cannot_leave_the_output_folder(tmp_path, capsys, reliability, name):
    outcome = main(["train", f"train.run_name={name}", "model.weights=none",
                    f"train.output_dir={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert outcome == 2 and err.count("\n") == 1 and "train.run_name" in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape").exists()
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: ok\nruns:\n  - name: {name!r}\n    overrides: []\n",
                     encoding="utf-8")
    with pytest.raises(FtlabError) as info:
        load_suite(suite)
    assert "\n" not in str(info.value)
    reliability.inputs("path traversal and odd run names (train.run_name, suite run names)",
                       "refused: exit 2, one line, nothing created", 2)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels: a few dozen bytes, gigabytes decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) \
        + chunk(b"IEND", b"")


HOSTILE_FILES = {
    "zero bytes": lambda good: b"",
    "text named .png": lambda good: b"definitely not an image",
    "truncated PNG": lambda good: good[: len(good) // 2],
    "random bytes": lambda good: bytes(range(256)) * 4,
    "decompression bomb, 12000 x 12000 (above PIL's 89 M pixel limit)":
        lambda good: _png_header(12000, 12000),
    "decompression bomb, 60000 x 60000": lambda good: _png_header(60000, 60000),
}


def test_hostile_image_files_are_skipped_and_counted(tmp_path, reliability):
    root = tmp_path / "data"
    make_imagefolder(root / "train", {"a": 10, "b": 10})
    make_imagefolder(root / "test", {"a": 3, "b": 3})
    good = (root / "train" / "a" / "0.png").read_bytes()
    for index, make in enumerate(HOSTILE_FILES.values()):
        (root / "train" / "ab"[index % 2] / f"{index}.png").write_bytes(make(good))
    summary = ftlab.train(None, overrides=tiny_overrides(tmp_path / "runs", **{
        "data.name": "imagefolder", "data.root": root, "data.val_fraction": 0.0,
        "train.batch_size": 4, "train.epochs": 1}))
    assert summary["skipped_images"]["train"] == len(HOSTILE_FILES)
    log = (Path(summary["run_dir"]) / "log.txt").read_text()
    assert log.count("could be decompression bomb") == 2
    for name in HOSTILE_FILES:
        reliability.inputs(f"image file: {name}", "skipped with a warning naming it; counted "
                           "in the summary (data.bad_images=error: exit 2, one line)")


def test_hostile_image_stops_the_run_when_configured(tmp_path, capsys):
    root = tmp_path / "data"
    make_imagefolder(root / "train", {"a": 10, "b": 10})
    make_imagefolder(root / "test", {"a": 3, "b": 3})
    (root / "train" / "a" / "0.png").write_bytes(_png_header(12000, 12000))
    code = main(["train", *tiny_overrides(tmp_path / "runs", **{
        "data.name": "imagefolder", "data.root": root, "data.bad_images": "error",
        "train.batch_size": 4})])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"image {root / 'train' / 'a' / '0.png'} cannot be decoded (Image size " in err
