"""Settings of the commands around training, as frozen dataclasses like the experiment's.

One `MemoryConfig` serves `ftlab memory` (flags and dotted overrides), a suite file's
`memory:` section and the Python API (`ftlab.memory.memory_table`); one `DiffConfig` serves
`ftlab diff`, a suite file's `analysis:` entries and `ftlab.analysis.diff`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from ftlab.config.schema import check_choice, check_number, fail
from ftlab.config.sizes import parse_size

EXECUTIONS = ("both", "stock", "efficient")
FROZEN_WEIGHTS = ("fp32", "int8")
DEVICES = ("cpu", "cuda", "auto")
MAX_CLASSES = 100_000
"""More classes than any dataset ftlab reads (ImageNet-21k has 21,841); a larger head of
MobileNetV2 alone would be over 500 MB."""


@dataclass(frozen=True)
class MemoryConfig:
    """What `ftlab memory` measures: one row per strategy x batch size x execution."""

    strategies: list[str] = field(default_factory=lambda: ["all"])
    """Strategy names, or ["all"]. A suite's default is [] (no memory table)."""
    arch: str = "mobilenet_v2"
    """Architecture (`--model` on the command line)."""
    batch_sizes: list[int] = field(default_factory=lambda: [1, 64])
    resolution: int = 224
    """Input side in pixels."""
    num_classes: int = 10
    """Classes of the new head."""
    strategy_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Options of measured strategies by name, as `ftlab train`'s strategy.* keys, e.g.
    {tinytl: {n_groups: 4}} (`strategy_options.tinytl.n_groups=4`); the rest keep their
    defaults (`ftlab strategies NAME` lists them)."""
    frozen_bits: int = 32
    """Bits per frozen weight in the analytic count (TinyTL stores them in 8)."""
    frozen_weights: str = "fp32"
    """How the efficient rows store frozen conv / linear weights: fp32 or int8
    (`train.frozen_weights`); stock rows are PyTorch as it is."""
    execution: str = "both"
    """stock (plain autograd), efficient (ftlab's memory-efficient execution) or both."""
    device: str = "cpu"
    """cpu, cuda or auto."""

    def __post_init__(self) -> None:
        for batch in self.batch_sizes:
            check_number("memory.batch_sizes", batch, low=1, high=1_000_000)
        check_number("memory.resolution", self.resolution, low=8, high=4096)
        check_number("memory.num_classes", self.num_classes, low=1, high=MAX_CLASSES)
        if self.frozen_bits not in (8, 16, 32):
            fail("memory.frozen_bits", self.frozen_bits, "one of 8, 16, 32")
        check_choice("memory.execution", self.execution, EXECUTIONS)
        check_choice("memory.frozen_weights", self.frozen_weights, FROZEN_WEIGHTS)
        check_choice("memory.device", self.device, DEVICES)

    @property
    def executions(self) -> tuple[str, ...]:
        return ("stock", "efficient") if self.execution == "both" else (self.execution,)


PLAN_EXECUTIONS = ("efficient", "stock", "both")


@dataclass(frozen=True)
class PlanConfig:
    """What `ftlab plan` answers: for each strategy, the largest batch (and, given a batch,
    the largest resolution) whose training step fits `memory_budget`, each answer measured."""

    memory_budget: str = ""
    """The most memory one training step may hold, e.g. 512MiB or 2GiB (whole binary units:
    `ftlab.config.sizes`). Counted as `ftlab memory` counts a step's peak: parameters,
    gradients, optimizer state, the batch and what forward and backward hold, not the
    process's own code or a CUDA context."""
    strategies: list[str] = field(default_factory=lambda: ["all"])
    """Strategy names, or ["all"] (every registered strategy that applies to `arch`)."""
    arch: str = "mobilenet_v2"
    """Architecture (`--model` on the command line)."""
    resolution: int = 224
    """Input side in pixels at which the largest batch is searched."""
    batch_size: Optional[int] = None
    """If set, also the largest resolution (a multiple of `resolution_step`) at this batch."""
    resolution_step: int = 32
    """Resolutions searched are multiples of this (32: every stride of a CNN divides it)."""
    max_batch_size: int = 256
    """Largest batch searched; a strategy that fits it is reported as fitting it (">= 256")
    rather than measured at thousands of images."""
    max_resolution: int = 1024
    """Largest resolution searched."""
    num_classes: int = 10
    """Classes of the new head."""
    strategy_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Options of planned strategies by name, as in `ftlab memory`
    (`strategy_options.last_k.k=2`)."""
    optim: str = "adam"
    """Optimizer whose state counts (adam: two tensors per trained parameter, sgd: one)."""
    epochs: Optional[int] = None
    """The run's length: a strategy that unfreezes over epochs (gradual_unfreeze) is planned
    at the stage of its last epoch. None: at its widest stage."""
    execution: str = "efficient"
    """efficient (how `ftlab train` runs, train.memory_efficient=true), stock (plain
    autograd) or both."""
    frozen_weights: str = "fp32"
    """fp32 or int8 (`train.frozen_weights`, efficient execution only); with int8, a
    strategy that trains every weight is planned with fp32 weights."""
    device: str = "cpu"
    """cpu, cuda or auto."""

    def __post_init__(self) -> None:
        if not str(self.memory_budget).strip():
            fail("plan.memory_budget", self.memory_budget, "a memory size such as 512MiB "
                 "(--memory-budget)")
        parse_size(self.memory_budget, "plan.memory_budget")
        check_number("plan.resolution", self.resolution, low=8, high=4096)
        if self.batch_size is not None:
            check_number("plan.batch_size", self.batch_size, low=1, high=1_000_000)
        check_number("plan.resolution_step", self.resolution_step, low=1, high=1024)
        check_number("plan.max_batch_size", self.max_batch_size, low=2, high=1_000_000)
        check_number("plan.max_resolution", self.max_resolution, low=self.resolution_step,
                     high=8192)
        check_number("plan.num_classes", self.num_classes, low=1, high=MAX_CLASSES)
        if self.epochs is not None:
            check_number("plan.epochs", self.epochs, low=1, high=1_000_000)
        check_choice("plan.execution", self.execution, PLAN_EXECUTIONS)
        check_choice("plan.frozen_weights", self.frozen_weights, FROZEN_WEIGHTS)
        check_choice("plan.device", self.device, DEVICES)

    @property
    def budget_bytes(self) -> int:
        return parse_size(self.memory_budget, "plan.memory_budget")

    @property
    def executions(self) -> tuple[str, ...]:
        return ("efficient", "stock") if self.execution == "both" else (self.execution,)


EVAL_SPLITS = ("test", "val", "train")


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """What `ftlab eval` evaluates: a suite file's `evaluations:` entries are these (the
    command and `ftlab.evaluate` take the same settings as arguments)."""

    target: str
    """A run folder (in a suite: or a run's name), an ftlab checkpoint, or
    pretrained:<weights> with model.head=keep among the overrides."""
    overrides: list[str] = field(default_factory=list)
    """Experiment settings as `key=value`: data.* (the data to evaluate on), model.arch and
    model.head=keep (pretrained weights), train.device, train.eval_batch_size."""
    split: str = "test"
    """test, val or train (without augmentation)."""
    bins: int = 15
    """Equal-width confidence bins of the calibration error."""

    def __post_init__(self) -> None:
        if not str(self.target).strip():
            fail("evaluations.target", self.target, "a run, a checkpoint file or "
                 "pretrained:<weights>")
        check_choice("evaluations.split", self.split, EVAL_SPLITS)
        check_number("evaluations.bins", self.bins, low=2, high=1000)


@dataclass(frozen=True)
class DiffConfig:
    """What `ftlab diff` compares, and how finely. Where its files go is the caller's choice
    (`--output-dir`, a suite's analysis folder), as for `ftlab memory`."""

    a: str
    """First network: a run folder, a checkpoint or state_dict file, or pretrained:<weights>
    (a torchvision weights name or file, for the other side's architecture)."""
    b: str
    """Second network, in the same forms as `a`."""
    ref: Optional[str] = None
    """Reference network (e.g. pretrained:IMAGENET1K_V1): how far A and B each moved from it.
    None: no reference columns."""
    probe: Optional[str] = None
    """Run folder whose data settings give the probe batch for the representation comparison.
    None: A's or B's own (no comparison when neither is an ftlab run)."""
    probe_size: int = 64
    """Images in the probe batch (from the validation split, else test)."""
    k: int = 8
    """Singular vectors per layer for the filter-subspace similarity."""

    section: ClassVar[str] = "diff"
    """Prefix of the keys named in errors (a suite's entries are `analysis`)."""

    def __post_init__(self) -> None:
        for key in ("a", "b", "ref", "probe"):
            value = getattr(self, key)
            if value is not None and not str(value).strip():
                fail(f"{self.section}.{key}", value, "a run folder, a checkpoint file or "
                     "pretrained:<weights>")
        check_number(f"{self.section}.probe_size", self.probe_size, low=1, high=100_000)
        check_number(f"{self.section}.k", self.k, low=1, high=4096)
