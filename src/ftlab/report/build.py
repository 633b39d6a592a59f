"""`ftlab report SUITE_DIR`: the reference report, written from the suite's run folders.

Sections: settings; results (val and test top-1 per dataset x strategy, mean ± std over
seeds, trainable parameters, peak memory, time per epoch, images/s); strategy comparison
curves; the memory table; training from scratch against fine-tuning (and training on for
more epochs); parameter analysis; every run. Markdown with PNG/SVG figures beside it, and
one self-contained HTML file with the figures embedded.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path

import markdown

from ftlab.config import OptimConfig
from ftlab.optimization import describe_schedule
from ftlab.fileio import atomic_write_text, check_writable
from ftlab.report.collect import (
    Group,
    RunRecord,
    check_report_source,
    groups,
    load_records,
    mean_std,
)
from ftlab.report.compare import (
    NOT_DISTINGUISHABLE,
    StrategyResult,
    against_best,
    pareto,
    recommendation,
    step_memory_mib,
    strategy_results,
)
from ftlab.report.plots import (
    Curve,
    Panel,
    Point,
    draw,
    draw_tradeoff,
    save,
    save_data,
    smooth,
)
from ftlab.report.architecture import architecture_section
from ftlab.report.tuning import tuning_section
from ftlab.stats import mean_interval
from ftlab.runfiles import (
    DIFF_SUMMARY,
    EVAL_JSON,
    MEMORY_CSV,
    SUITE_EVALUATIONS,
    SUITE_MEMORY,
    ReportSettings,
    read_eval_record,
    read_memory_csv,
    read_report_settings,
)

REPORT = "report"
CURVE_METRICS = ("val_top1", "train_loss")


def build_report(root: Path, title: str | None = None) -> tuple[Path, Path]:
    """Write report/report.md and report/report.html under the suite folder `root` (or a
    folder of run folders); anything else is refused before a file is written."""
    check_report_source(root)
    out = root / REPORT
    check_writable(out, "the report folder")
    settings = read_report_settings(root)
    records = load_records(root)
    figures = out / "figures"
    title = title or settings.title or f"Fine-tuning report: {root.name}"
    sections = [
        f"# {title}\n\n{_overview(root, records)}",
        _settings(records, settings),
        _results(records, root),
        _answer(records, figures, settings.memory_budget),
        tuning_section(root, figures),
        _comparison(records, settings, figures),
        _memory(root),
        architecture_section(records, figures),
        _scratch(records, settings, figures),
        _analysis(root, out),
        _runs(records),
    ]
    text = "\n\n".join(s for s in sections if s) + "\n"
    md_path, html_path = out / "report.md", out / "report.html"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(md_path, text)
    atomic_write_text(html_path, to_html(text, title, out))
    return md_path, html_path


def _overview(root: Path, records: list[RunRecord]) -> str:
    done = sum(r.complete for r in records)
    failed = sum(r.status == "failed" for r in records)
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Suite `{root.name}`: {len(records)} runs, {done} complete, {failed} failed. "
            f"Generated {when} by `ftlab report`; every number below is read from the run "
            "folders (`summary.json`, `metrics.csv`).")


def _settings(records: list[RunRecord], settings: ReportSettings) -> str:
    complete = [r for r in records if r.complete and r.config is not None]
    if not complete:
        return ""
    config, summary = complete[0].config, complete[0].folder.run_summary
    assert config is not None  # for the type checker: filtered above
    rows = [
        ("architecture", f"{summary.arch}, weights {summary.weights}"),
        ("classifier", "re-initialised for the target classes"),
        ("datasets", ", ".join(sorted({r.dataset for r in records}))),
        ("strategies", ", ".join(sorted({r.strategy for r in records}))),
        ("seeds", ", ".join(str(s) for s in sorted({r.seed for r in records
                                                      if r.seed is not None})) or "–"),
        ("optimizer", _optimizer(config.optim, _learning_rates(complete))),
        ("schedule", describe_schedule(config.schedule)),
        ("epochs, batch", f"{config.train.epochs}, {config.train.batch_size}"),
        ("input", f"{summary.resolution} px"),
        ("suite overrides", ", ".join(f"`{o}`" for o in settings.overrides) or "–"),
        ("software", ", ".join(f"{k} {v}" for k, v in summary.versions.items())),
    ]
    return "## Settings\n\n" + _table(["setting", "value"], [list(r) for r in rows])


def _optimizer(optim: OptimConfig, rates: str) -> str:
    lr = f"lr {rates}" if "," not in rates else "lr per strategy (see Results)"
    return f"{optim.name}, {lr}, weight decay {optim.weight_decay:g}"


def _results(records: list[RunRecord], root: Path) -> str:
    header = ["dataset", "strategy", "runs", "lr", "val top-1 %", "test top-1 %",
              "trainable params", "step memory MiB", "stock step MiB", "s/epoch", "train img/s"]
    rows = evaluation_rows(root)
    for group in sorted(groups(records), key=lambda g: (g.dataset, g.label)):
        done = [r for r in group.runs if r.complete]
        params = group.values("trainable_params")
        memory, stock = step_memory_mib(done)
        rows.append([group.dataset, group.label, f"{len(done)}/{len(group.runs)}",
                     _learning_rates(done), _interval(group.values("best_val_top1")),
                     _interval(group.values("test_top1")),
                     f"{int(params[0]):,}" if params else "–",
                     _mib_value(memory), _mib_value(stock),
                     mean_std(group.values("epoch_time_s"), 1),
                     mean_std(group.values("images_per_s"), 0)])
    note = ("Val: best validation top-1 over epochs; test: top-1 of that best-validation "
            "checkpoint; mean ± 95 % confidence interval over seeds (Student's t; a single "
            "seed has none). Step memory: one training step at the run's batch size and "
            "resolution, measured like `ftlab memory` (peak, else parameters + gradients + "
            "optimizer state + saved activations) as the run executed it, and under stock "
            "autograd; from each run's `train_memory.csv`. lr: the base learning rate (tuned, "
            "set, or the strategy's default). Time: mean ± std. Rows marked *evaluated* are "
            "the suite's `evaluations` (`ftlab eval`, e.g. a pretrained network with its own "
            "head); their test column is the split they evaluated.")
    return "## Results\n\n" + _table(header, rows) + "\n\n" + note


def evaluation_rows(root: Path) -> list[list[str]]:
    """The suite's `ftlab eval` results, one row each, in the results table's columns."""
    rows = []
    for path in sorted((root / SUITE_EVALUATIONS).glob(f"*/{EVAL_JSON}")):
        record = read_eval_record(path)
        split = "" if record.split == "test" else f", {record.split} split"
        rows.append([record.dataset, f"{path.parent.name} (evaluated{split})", "eval", "–",
                     "–", f"{record.top1:.2f}", "–", "–", "–", "–", "–"])
    return rows


def _learning_rates(runs: list[RunRecord]) -> str:
    """The base learning rate(s) the runs trained with (tuned or per-strategy defaults)."""
    rates = sorted({r.config.optim.lr for r in runs if r.config is not None} - {None})
    return ", ".join(f"{rate:.2g}" for rate in rates) or "–"


def _interval(values: list[float]) -> str:
    return mean_interval(values).format(2) if values else "–"


def _mib_value(mib: float | None) -> str:
    return "–" if mib is None else f"{mib:,.1f}"


def _answer(records: list[RunRecord], figures: Path, budget: str | None = None) -> str:
    """Per dataset: each strategy against the best (paired over seeds), the accuracy /
    memory and accuracy / time trade-offs with their Pareto fronts, and the recommendation."""
    results = strategy_results(groups(records))
    parts = []
    for dataset in sorted({r.dataset for r in results}):
        chosen = [r for r in results if r.dataset == dataset]
        if len(chosen) < 2:
            continue
        rows = [[v.result.label, v.result.test.format(2), str(v.result.test.n),
                 v.difference.format(2) if v.difference else "–", v.verdict]
                for v in against_best(chosen)]
        lines = recommendation(chosen, budget=budget)
        text = [f"### {dataset}", "", *[f"- {line}" for line in lines], "",
                _table(["strategy", "test top-1 %", "seeds", "paired Δ vs best (points)",
                        "verdict"], rows)]
        for cost, label, slug in (("memory_mib", "training-step memory (MiB, as run)", "memory"),
                                  ("epoch_time_s", "time per epoch (s)", "time")):
            figure = _tradeoff(chosen, cost, label, f"{dataset}: test top-1 vs {slug}",
                               figures / _slug(f"pareto-{slug}-{dataset}"))
            if figure:
                text += ["", figure]
        parts.append("\n".join(text))
    if not parts:
        return ""
    return ("## Which strategy\n\nEach strategy against the most accurate one: the paired "
            "difference of test top-1 over the seeds both ran (mean ± 95 % CI), "
            f"\"{NOT_DISTINGUISHABLE}\" where that interval covers zero. Pareto-optimal "
            "strategies (no other both cheaper and more accurate) are filled and joined.\n\n"
            + "\n\n".join(parts))


def _tradeoff(results: list[StrategyResult], cost: str, label: str, title: str, stem: Path
              ) -> str:
    front = {r.label for r in pareto(results, cost)}
    points = [Point(r.label, getattr(r, cost), r.test.mean, r.test.half_width, r.label in front)
              for r in results if getattr(r, cost) is not None]
    if len(points) < 2:
        return ""
    save_data(draw_tradeoff(points, label, title), {"cost": label, "points": [
        {"label": p.label, "cost": p.cost, "test_top1": p.value, "ci95": p.half_width,
         "pareto": p.optimal} for p in points]}, stem)
    return f"![{title}](figures/{stem.name}.png)"


def _comparison(records: list[RunRecord], settings: ReportSettings, figures: Path) -> str:
    compare, smoothing = settings.compare, settings.smoothing
    parts = []
    for dataset in sorted({r.dataset for r in records}):
        # Continuations (more epochs) belong to the scratch-vs-fine-tune section.
        pool = [g for g in groups(records) if g.dataset == dataset and _has_runs(g)
                and not any(r.continue_from for r in g.runs)]
        for names in compare or [sorted({g.strategy for g in pool})]:
            chosen = [g for g in pool if g.strategy in names]
            if len(chosen) < 2:
                continue
            stem = _slug(f"compare-{dataset}-{'-'.join(names)}")
            title = f"{dataset}: {' vs '.join(g.label for g in chosen)}"
            parts.append(_figure(chosen, title, figures / stem, smoothing))
    return "## Strategy comparison\n\n" + "\n\n".join(parts) if parts else ""


def _scratch(records: list[RunRecord], settings: ReportSettings, figures: Path) -> str:
    pair = settings.scratch_vs_finetune
    parts = []
    for dataset in sorted({r.dataset for r in records}):
        pool = [g for g in groups(records) if g.dataset == dataset and _has_runs(g)]
        chosen = [g for g in pool if g.strategy in pair]
        if {g.strategy for g in chosen} != set(pair):
            continue
        title = f"{dataset}: training from scratch vs fine-tuning"
        parts.append(_figure(chosen, title, figures / _slug(f"scratch-{dataset}"), 0.0))
    if not parts:
        return ""
    return ("## Training from scratch vs fine-tuning\n\nThe same model, data and schedule; "
            "only the starting weights differ. Runs that continue another for more epochs "
            "appear as their own curves.\n\n" + "\n\n".join(parts))


def _figure(chosen: Sequence[Group], title: str, stem: Path, smoothing: float) -> str:
    panels = []
    for metric in CURVE_METRICS:
        curves = []
        for group in chosen:
            epochs, values = group.mean_curve(metric)
            curves.append(Curve(group.label, epochs, smooth(values, smoothing)))
        panels.append(Panel(metric, curves))
    save(draw(panels, title), panels, stem)
    seeds = max(len(g.runs) for g in chosen)
    note = f" (mean over {seeds} seeds)" if seeds > 1 else ""
    return f"### {title}\n\n![{title}](figures/{stem.name}.png){note}"


def _has_runs(group: Group) -> bool:
    return any(r.complete for r in group.runs)


def _memory(root: Path) -> str:
    table = root / SUITE_MEMORY / MEMORY_CSV
    if not table.is_file():
        return ""
    header = ["strategy", "batch", "execution", "activations MiB", "analytic activations MiB",
              "params MiB", "grads MiB", "optimizer MiB", "peak MiB", "analytic total MiB"]
    cells = [[r.strategy, str(r.batch_size), r.execution,
              *(_mib(value) for value in (r.activations_bytes, r.analytic_activations_bytes,
                                          r.parameters_bytes, r.gradients_bytes,
                                          r.optimizer_bytes, r.peak_bytes,
                                          r.analytic_total_bytes))]
             for r in read_memory_csv(table)]
    return ("## Training memory\n\nOne warmed-up training step, measured (stock PyTorch and "
            "ftlab's memory-efficient execution) and analytic (TinyTL's per-layer count); see "
            "docs/memory.md. From `memory/memory.csv`.\n\n" + _table(header, cells))


def _analysis(root: Path, out: Path) -> str:
    folder = root / "analysis"
    if not folder.is_dir():
        return ""
    parts = []
    for summary in sorted(folder.glob(f"*/{DIFF_SUMMARY}")):
        text = summary.read_text(encoding="utf-8")
        relative = Path("..") / summary.parent.relative_to(root)
        parts.append(re.sub(r"\]\((?!http)([^)]+)\)",
                            lambda m, base=relative: f"]({base / m.group(1)})", text))
    return "## Parameter analysis\n\n" + "\n\n".join(parts) if parts else ""


def _runs(records: list[RunRecord]) -> str:
    header = ["run", "status", "dataset", "strategy", "seed", "epochs", "best val top-1 %",
              "test top-1 %", "folder / error"]
    rows = []
    for r in records:
        s = r.folder.run_summary if r.complete else None
        rows.append([r.name, r.status, r.dataset, r.strategy, "–" if r.seed is None else
                     str(r.seed), str(s.epochs) if s else "–",
                     _num(s.best_val_top1 if s else None), _num(s.test_top1 if s else None),
                     f"`{r.folder.path}`" if r.complete else f"{r.error or ''} (log `{r.log}`)"])
    return "## Runs\n\n" + _table(header, rows)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:,.1f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    line = lambda cells: "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:120]


def to_html(text: str, title: str, folder: Path) -> str:
    """One self-contained page: Markdown rendered, every local PNG embedded as a data URI."""
    body = markdown.markdown(text, extensions=["tables"])

    def embed(match: re.Match) -> str:
        path = (folder / match.group(1)).resolve()
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]+\.png)"', embed, body)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
        color: #222; line-height: 1.45; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
code {{ background: #f5f5f5; padding: 0 0.2em; }}
</style></head><body>
{body}
</body></html>
"""
