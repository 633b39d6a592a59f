"""`ftlab plan`: memory sizes, the search, and answers that measured steps confirm."""

from __future__ import annotations

import csv

import pytest
import torch

from ftlab.cli import main
from ftlab.config import PlanConfig
from ftlab.config.sizes import format_size, parse_size
from ftlab.errors import ConfigError
from ftlab.memory.budget import largest_fitting, plan_table
from ftlab.memory.probe import StepProbe, plan_spec
from ftlab.memory.measure import measure_step

MIB = 2**20


@pytest.mark.parametrize("text, size", [("512MiB", 512 * MIB), ("2GiB", 2 * 2**30),
                                        ("1536 kib", 1536 * 1024), ("1048576", MIB),
                                        ("7B", 7), (" 3TiB ", 3 * 2**40)])
def test_sizes_parse_whole_binary_units(text, size):
    assert parse_size(text, "k") == size


@pytest.mark.parametrize("text", ["512MB", "0.5GiB", "-1", "0", "", "MiB", "12 apples",
                                  "1e9", "2048TiB", True])
def test_sizes_refuse_what_is_ambiguous_or_impossible(text):
    with pytest.raises(ConfigError, match="k="):
        parse_size(text, "k")


def test_sizes_format_in_the_largest_whole_unit():
    assert format_size(512 * MIB) == "512 MiB"
    assert format_size(1.5 * 2**30) == "1.5 GiB"
    assert format_size(100) == "100 B"


def affine(fixed: int, per: int, calls: list[int]):
    def measure(x: int) -> int:
        calls.append(x)
        return fixed + per * x + (x * x if x > 40 else 0)  # bends upwards past 40
    return measure


@pytest.mark.parametrize("budget", [11, 100, 409, 410, 999, 2340, 2341, 5000])
def test_the_search_finds_the_largest_fitting_value_measuring_few(budget):
    calls: list[int] = []
    measure = affine(10, 10, calls)
    answer, known = largest_fitting(measure, 1, 64, float, budget)
    expected = max((x for x in range(1, 65) if measure(x) <= budget), default=None)
    assert answer.largest == expected
    assert answer.capped == (expected == 64)
    if expected is not None and expected < 64:
        assert known[expected] <= budget < known[expected + 1] and answer.next_measured
    assert len(known) <= 2 + 6 + 2  # the two first, a bisection of 64, and a confirmation


@pytest.mark.parametrize("budget", [57, 409, 2340])
def test_on_an_affine_peak_the_search_measures_four_steps_at_most(budget):
    answer, known = largest_fitting(lambda x: 17 + 13 * x, 1, 256, float, budget)
    assert answer.largest == (budget - 17) // 13 and len(known) <= 4


def test_the_search_says_when_even_the_smallest_value_does_not_fit():
    answer, known = largest_fitting(lambda x: 100 * x, 1, 64, float, 99)
    assert answer.largest is None and list(known) == [1]


def test_without_confirm_the_fitted_line_decides_the_next_value():
    answer, known = largest_fitting(lambda x: 10 * x, 1, 64, float, 305, confirm=False)
    assert answer.largest == 30 and not answer.next_measured and 31 not in known


def small_plan(budget: str, **fields) -> PlanConfig:
    return PlanConfig(memory_budget=budget, **{"resolution": 64, "max_batch_size": 32,
                                               **fields})


def test_every_answer_is_confirmed_by_a_fresh_measured_step():
    """A new model for each strategy, measured at the answer and the batch after it: the
    plan's answers hold for steps it did not take itself."""
    config = small_plan("44MiB", strategies=["full", "bias", "linear_probe"],
                        max_batch_size=64)
    rows = plan_table(config)
    assert {row.strategy for row in rows} == {"full", "bias", "linear_probe"}
    for row in rows:
        probe = StepProbe(plan_spec(config, row.strategy, "efficient", 64),
                          torch.device("cpu"))
        assert row.batch.largest is not None and not row.batch.capped
        assert probe.peak(row.batch.largest) <= config.budget_bytes
        assert probe.peak(row.batch.largest + 1) > config.budget_bytes
    largest = {row.strategy: row.batch.largest for row in rows}
    assert largest["full"] < largest["bias"] <= largest["linear_probe"]


def test_the_quick_peak_equals_the_memory_tables_peak():
    """`step_peak` (allocation events) against `measure_step` (the profiler's timeline, as
    `ftlab memory` measures), on the same model, optimizer and batch."""
    config = small_plan("1GiB")
    for strategy in ("full", "bias"):
        probe = StepProbe(plan_spec(config, strategy, "efficient", 64), torch.device("cpu"))
        images, labels = probe._batch(4)
        slow = measure_step(probe.model, probe.optimizer, images, labels).peak
        if slow is None:
            pytest.skip("this torch's profiler gives no memory timeline")
        assert probe.peak(4) == pytest.approx(slow, rel=0.01)


def test_strategies_that_take_the_same_step_share_it_and_l2sp_does_not():
    rows = plan_table(small_plan("48MiB", strategies=["full", "separate_lr", "l2sp"]))
    by_name = {row.strategy: row for row in rows}
    assert by_name["separate_lr"].same_as == "full"
    assert by_name["separate_lr"].batch == by_name["full"].batch
    assert by_name["l2sp"].same_as is None  # its loss holds the starting weights too
    assert by_name["l2sp"].points[0].peak > by_name["full"].points[0].peak


def test_a_resolution_search_at_a_given_batch():
    config = small_plan("64MiB", strategies=["bias"], batch_size=4, max_resolution=256)
    row, = plan_table(config)
    largest = row.resolution.largest
    assert largest is not None and largest % 32 == 0 and 64 <= largest < 256
    assert row.peak_at(4, largest) <= config.budget_bytes < row.peak_at(4, largest + 32)


def test_plan_command_writes_its_files(tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["plan", "--memory-budget", "60MiB", "--strategies", "full,linear_probe",
                 "--resolution", "64", "--output-dir", str(out), "max_batch_size=32"]) == 0
    printed = capsys.readouterr().out
    assert "What fits in 60 MiB" in printed and "| linear_probe | efficient" in printed
    rows = list(csv.DictReader(open(out / "plan.csv")))
    assert [r["strategy"] for r in rows] == ["full", "linear_probe"]
    for row in rows:
        assert int(row["peak_bytes_at_largest_batch"]) <= int(row["budget_bytes"]) == 60 * MIB
    points = list(csv.DictReader(open(out / "plan_points.csv")))
    assert {p["strategy"] for p in points} == {"full", "linear_probe"}
    assert (out / "plan.png").stat().st_size > 0 and "Every answer" in (
        out / "plan.md").read_text()


@pytest.mark.parametrize("budget, message", [
    ("512MB", "plan.memory_budget='512MB' is not a memory size"),
    ("0.5GiB", "fractions are not accepted"),
    ("-1", "is not a memory size"),
    ("2KiB", "nothing fits in 2 KiB: the smallest step is linear_probe (efficient) at batch 1"),
])
def test_bad_budgets_are_one_line_and_write_nothing(tmp_path, capsys, budget, message):
    out = tmp_path / "plan"
    code = main(["plan", "--memory-budget", budget, "--strategies", "linear_probe",
                 "--resolution", "64", "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_plan_refuses_a_missing_budget_an_unknown_strategy_and_a_foreign_folder(tmp_path,
                                                                               capsys):
    assert main(["plan", "--output-dir", str(tmp_path / "a")]) == 2
    assert "a memory size such as 512MiB (--memory-budget)" in capsys.readouterr().err
    assert main(["plan", "--memory-budget", "1GiB", "--strategies", "full,nope",
                 "--output-dir", str(tmp_path / "b")]) == 2
    assert "strategy.name='nope' is unknown" in capsys.readouterr().err
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    assert main(["plan", "--memory-budget", "1GiB", "--output-dir", str(tmp_path / "c")]) == 2
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["notes.txt"]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_budget_over_the_free_memory_is_planned_with_a_warning(caplog):
    from ftlab.memory.budget import free_memory

    free = free_memory(torch.device("cpu"))
    if free is None:
        pytest.skip("this system does not say how much memory is free")
    config = PlanConfig(memory_budget=f"{free // MIB + 1024}MiB", resolution=64,
                        max_batch_size=2, strategies=["linear_probe"])
    row, = plan_table(config)
    assert row.batch.largest == 2 and row.batch.capped
    assert "more than this cpu has free" in caplog.text


def test_int8_frozen_weights_lower_a_planned_step_and_leave_full_as_it_is():
    def peak(strategy: str, storage: str) -> int:
        config = small_plan("1GiB", frozen_weights=storage)
        return StepProbe(plan_spec(config, strategy, "efficient", 64),
                         torch.device("cpu")).peak(2)

    saved = peak("bias", "fp32") - peak("bias", "int8")  # 8.4 -> 2.2 MiB of stored weights,
    assert 3 * MIB < saved < 6.3 * MIB  # less the one layer's weight dequantised at the peak
    assert peak("full", "int8") == pytest.approx(peak("full", "fp32"), rel=0.005)  # no error


def test_a_strategy_whose_batch_1_cannot_train_is_searched_from_batch_2():
    """TinyTL's branch norms see a 1x1 map at 64 px: batch 1 cannot train, batch 2 can."""
    row, = plan_table(small_plan("1GiB", strategies=["tinytl"], max_batch_size=3))
    assert row.points[0].batch_size == 2 and row.batch.largest == 3 and row.batch.capped
