"""`ftlab demo`: fine-tuning strategies against training from scratch on the offline mirror.

Runs MobileNetV2 on cifar10-mini (5,000 real CIFAR-10 training images) once per strategy
(default: `full` from the mirror's ImageNet weights and `scratch` from random
initialisation; `--strategies all` runs every registered one), at low resolution so it
finishes in minutes on a laptop CPU, then prints the results table. Re-running reuses
finished runs whose settings are unchanged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftlab.cli_tables import markdown_table
from ftlab.config import ExperimentConfig, config_to_dict, load_config
from ftlab.errors import ConfigError, DataError
from ftlab.training import rundir, train
from ftlab.training.experiment import check_config

log = logging.getLogger("ftlab")

WEIGHTS_FILE = Path("weights") / "mobilenet_v2_imagenet.pth"
DEFAULT_STRATEGIES = ("full", "scratch")
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


def demo_configs(mirror: Path, output_dir: str, epochs: int, resolution: int,
                 strategies: Sequence[str] = DEFAULT_STRATEGIES) -> list[ExperimentConfig]:
    """One run per strategy, identical but for the strategy (`scratch`: where weights start)."""
    common = [
        "data.name=imagefolder", f"data.root={mirror / DATASET_DIR}",
        f"data.resolution={resolution}", "data.eval_crop_fraction=1.0",
        "data.train_crop_scale=[0.35,1.0]", f"model.weights={mirror / WEIGHTS_FILE}",
        "optim.name=adam", "optim.lr=1e-3", "schedule.name=exponential", "schedule.gamma=0.7",
        f"train.epochs={epochs}", "train.batch_size=64", f"train.output_dir={output_dir}",
    ]
    return [load_config(None, common + [f"strategy.name={name}",
                                        f"train.run_name=cifar10mini-{name}"])
            for name in strategies]


def run_demo(mirror: str | None = None, output_dir: str = "runs/demo", epochs: int = 3,
             resolution: int = 64, strategies: Sequence[str] = DEFAULT_STRATEGIES
             ) -> list[dict[str, Any]]:
    """Train (or reuse) one run per strategy and print the results table."""
    root = find_mirror(mirror)
    configs = demo_configs(root, output_dir, epochs, resolution, strategies)
    for config in configs:  # an unknown strategy fails now, not after an hour of others
        check_config(config)
    summaries = [_train_or_reuse(config) for config in configs]
    print()
    print(results_table(summaries))
    return summaries


def _train_or_reuse(config: ExperimentConfig) -> dict[str, Any]:
    path = rundir.run_dir_path(config.train.output_dir, config.run_name)
    saved = path / rundir.CONFIG
    if saved.is_file() and _same_config(saved, config):
        return train(resume=path)
    return train(config, overwrite=True)


def _same_config(saved: Path, config: ExperimentConfig) -> bool:
    try:
        return config_to_dict(load_config(saved)) == config_to_dict(config)
    except ConfigError:  # an older or damaged demo run: start it again
        return False


def results_table(summaries: list[dict[str, Any]]) -> str:
    header = ["strategy", "weights", "epochs", "best val top1", "test top1", "test top5",
              "trainable params", "train img/s", "s/epoch"]
    rows = [[s["strategy"], s["weights"].split("/")[-1], str(s["epochs"]),
             _percent(s["best_val_top1"]), _percent(s["test_top1"]), _percent(s["test_top5"]),
             f"{s['trainable_params']:,}", f"{s['images_per_s']:.0f}",
             f"{s['epoch_time_s']:.1f}"] for s in summaries]
    return markdown_table(header, rows)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"
