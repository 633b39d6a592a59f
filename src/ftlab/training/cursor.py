"""Where a run is inside an epoch: the one record a mid-epoch stop saves and a resume reads.

The runner owns it. A run stopped mid-epoch (SIGTERM, SIGINT) writes the cursor into its
checkpoint; on resume the runner hands `batches_done` to the batch source's `set_position`
(which skips those batches), the tally to the loop (which continues the epoch's sums), and
restores the random state, so the resumed epoch is the uninterrupted one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ftlab.training.loop import EpochTally


@dataclass(frozen=True)
class EpochCursor:
    """The state of an epoch stopped after some of its steps."""

    epoch: int
    """The epoch in progress (1-based)."""
    tally: EpochTally
    """Batches consumed, steps taken and the running sums, over all processes."""
    rng: dict[str, Any]
    """The random state at the stop (captured before anything else could draw)."""
    lrs: dict[str, float]
    """Each param group's learning rate when the epoch began (its metrics.csv columns)."""

    @property
    def batches_done(self) -> int:
        return self.tally.batches

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's `partial` entry (the layout of ftlab 0.1, so both read alike)."""
        return {"epoch": self.epoch, "tally": asdict(self.tally), "rng": self.rng,
                "lrs": dict(self.lrs)}

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> EpochCursor | None:
        if not values:
            return None
        return cls(epoch=int(values["epoch"]), tally=EpochTally(**values["tally"]),
                   rng=values["rng"], lrs=dict(values["lrs"]))
