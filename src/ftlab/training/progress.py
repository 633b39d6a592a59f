"""Step progress: a tqdm bar on a terminal, plain periodic lines elsewhere (logs, CI, files)."""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger("ftlab")


class Progress:
    """Reports progress through one epoch. `advance` is called every step and must be cheap;
    `report` is called every `log_every` steps with values already read from the device."""

    def __init__(self, mode: str, total_images: int, description: str) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "plain"
        self.mode = mode
        self.description = description
        self.total_images = total_images
        self.done = 0
        self.start = time.perf_counter()
        self.bar = tqdm(total=total_images, desc=description, unit="img", leave=False,
                        dynamic_ncols=True) if mode == "bar" else None

    def advance(self, images: int) -> None:
        self.done += images
        if self.bar is not None:
            self.bar.update(images)

    def report(self, step: int, mean_loss: float, lr: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", refresh=False)
        elif self.mode == "plain":
            rate = self.done / max(time.perf_counter() - self.start, 1e-9)
            log.info("%s step %d  %d/%d images  loss %.4f  lr %.2e  %.0f img/s",
                     self.description, step, self.done, self.total_images, mean_loss, lr, rate)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
