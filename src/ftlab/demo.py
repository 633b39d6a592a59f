"""`ftlab demo`: the reference report's experiments at CPU scale, on the offline mirror.

Runs the shipped suite `configs/demo.yaml` (MobileNetV2 on cifar10-mini: the main strategies,
training from scratch and training on for more epochs, the memory table), writes the report
and prints its results table and path. Re-running skips what is complete.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from ftlab.errors import DataError
from ftlab.suite import SuiteResult, run_suite

WEIGHTS_FILE = Path("weights") / "mobilenet_v2_imagenet.pth"
DATASET_DIR = Path("cifar10-mini")


def find_mirror(explicit: str | None) -> Path:
    """--mirror, else $FTLAB_MIRROR, else ../shared/mirror from here or from the repository."""
    candidates = [Path(explicit)] if explicit else []
    if not explicit and os.environ.get("FTLAB_MIRROR"):
        candidates.append(Path(os.environ["FTLAB_MIRROR"]))
    if not candidates:
        candidates += [Path("../shared/mirror"),
                       Path(__file__).resolve().parents[3] / ".." / "shared" / "mirror"]
    for path in candidates:
        if (path / WEIGHTS_FILE).is_file() and (path / DATASET_DIR / "train").is_dir():
            return path.resolve()
    raise DataError(f"offline mirror not found (looked in {', '.join(map(str, candidates))}); "
                    f"pass --mirror PATH or set FTLAB_MIRROR to a folder holding "
                    f"{DATASET_DIR}/train, {DATASET_DIR}/test and {WEIGHTS_FILE}")


def demo_suite() -> Path:
    """The shipped demo suite file, wherever ftlab is installed."""
    return Path(str(resources.files("ftlab") / "configs" / "demo.yaml"))


def run_demo(mirror: str | None = None, output_dir: str | None = None) -> SuiteResult:
    """Find the mirror, run the demo suite, and print the results table and report path."""
    os.environ["FTLAB_MIRROR"] = str(find_mirror(mirror))
    overrides = [f"output_dir={output_dir}"] if output_dir else []
    result = run_suite(demo_suite(), overrides)
    if result.report:
        from ftlab.report import recommendations

        text = result.report[0].read_text(encoding="utf-8")
        print("\n" + results_excerpt(text))
        for dataset, lines in recommendations(result.root).items():
            print(f"\nwhich strategy on {dataset} (untuned, one seed; see the report's "
                  "Pareto figures):\n  " + "\n  ".join(lines))
        print(f"\nreport: {result.report[1]}")
    return result


def results_excerpt(report_markdown: str) -> str:
    """The report's results table (its heading to the next section)."""
    start = report_markdown.find("## Results")
    end = report_markdown.find("\n## ", start + 1)
    return report_markdown[start:end if end > 0 else None].strip()
