"""Where a run is inside an epoch: the one record a mid-epoch stop saves and a resume reads.

The runner owns it. A run stopped mid-epoch (SIGTERM, SIGINT) writes the cursor into its
checkpoint; on resume the runner hands `batches_done` to the batch source's `set_position`
(which skips those batches), the tally to the loop (which continues the epoch's sums), and
restores the random state, so the resumed epoch is the uninterrupted one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ftlab.runfiles import PartialEpoch
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

    def to_partial(self) -> PartialEpoch:
        """The checkpoint's record of it (`runfiles.PartialEpoch`, the on-disk layout)."""
        return PartialEpoch(epoch=self.epoch, tally=asdict(self.tally), rng=self.rng,
                            lrs=dict(self.lrs))

    @classmethod
    def from_partial(cls, partial: PartialEpoch | None) -> EpochCursor | None:
        if partial is None:
            return None
        return cls(epoch=partial.epoch, tally=EpochTally(**partial.tally), rng=partial.rng,
                   lrs=dict(partial.lrs))
