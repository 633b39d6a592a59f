"""The experiment configuration: frozen dataclasses that YAML files and overrides mirror.

Each section checks its own values in `__post_init__`, so an impossible setting fails when
the config is built, before any run folder, download or model exists. Names that live in
registries (architectures, datasets, strategies, optimizers, schedules) are checked against
those registries by `ftlab.assembly.check_config`, which can see them; this module cannot, by
design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from ftlab.errors import ConfigError


def fail(key: str, value: object, allowed: str) -> None:
    raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def check_number(key: str, value: float, *, low: float, high: float = math.inf,
                  low_open: bool = False, high_open: bool = False) -> None:
    """Reject NaN, infinities and values outside [low, high] (bounds open where asked)."""
    ok = math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low)
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        kind = "an integer" if isinstance(value, int) else "a finite number"
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        fail(key, value, f"{kind} in {lo}{_show(low)}, {_show(high)}{hi}")


def _show(bound: float) -> str:
    if math.isinf(bound):
        return "inf"
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def check_length(key: str, values: tuple[float, ...], length: int) -> None:
    if len(values) != length:
        fail(key, list(values), f"a list of {length} numbers")


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        fail(key, value, "one of " + ", ".join(choices))


@dataclass(frozen=True)
class SyntheticConfig:
    """Shape of the generated dataset used by tests and smoke runs (`data.name=synthetic`)."""

    num_classes: int = 4
    """Number of classes; each has its own colour and stripe pattern, so it is learnable."""
    train_per_class: int = 32
    """Training images per class (the val split is carved from these)."""
    test_per_class: int = 8
    """Test images per class."""
    image_size: int = 32
    """Side of the generated square images, in pixels."""

    def __post_init__(self) -> None:
        check_number("data.synthetic.num_classes", self.num_classes, low=2, high=1000)
        check_number("data.synthetic.train_per_class", self.train_per_class, low=1, high=100_000)
        check_number("data.synthetic.test_per_class", self.test_per_class, low=1, high=100_000)
        check_number("data.synthetic.image_size", self.image_size, low=8, high=1024)


BAD_IMAGE_POLICIES = ("skip", "error")
PIPELINES = ("auto", "workers", "device")


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, how it is split, and how images are prepared."""

    name: str = "cifar10"
    """Dataset name from `ftlab datasets` (cifar10, cifar100, imagefolder, synthetic)."""
    root: Optional[str] = None
    """Where the dataset lives. None: $FTLAB_DATA, else ./data (named datasets only)."""
    download: bool = False
    """Download a named dataset into `root` when it is missing."""
    val_fraction: float = 0.1
    """Share of the training set held out for validation, per class; 0 disables validation."""
    test_fraction: float = 0.2
    """Share held out as the test set when an ImageFolder root has no test/ or val/ folder."""
    split_seed: int = 0
    """Seed of the train/val (and single-folder train/test) split; independent of train.seed."""
    label_fraction: float = 1.0
    """Share of the remaining training images kept per class (label-efficiency studies)."""
    resolution: Optional[int] = None
    """Side of the square network input. None: the crop size of the weights (224)."""
    eval_crop_fraction: Optional[float] = None
    """Centre-crop fraction at evaluation (resize to resolution / fraction, then crop); the
    none/flip/crop augmentations train on this view too. None: that of the weights (0.875
    for 224/256), except that a training run chooses it with data.augment: 1.0 (the whole
    image) for none, flip and crop, which train on whole images; the weights' for rrc and
    the policies, whose zoom it offsets. The run's config.yaml records the choice."""
    augment: str = "auto"
    """Training augmentation: none, flip, crop (pad and shift), rrc (RandomResizedCrop with
    train_crop_scale), randaugment, trivialaugment (rrc then torchvision's policy), or auto:
    chosen from train.epochs by the measured rule in docs/strategies.md (flip for short
    budgets); the run's config.yaml records the choice."""
    train_crop_scale: tuple[float, ...] = (0.35, 1.0)
    """Area range of RandomResizedCrop (augment rrc, randaugment, trivialaugment; a value
    other than this default makes auto choose rrc), as fractions of the image. ImageNet training's (0.08, 1) crops too hard for fine-tuning at
    short budgets (measured in docs/strategies.md); write [0.08, 1.0] for it."""
    hflip: bool = True
    """Random horizontal flips in every augmentation that flips (all but none)."""
    mean: Optional[tuple[float, ...]] = None
    """Normalisation mean. None: that of the weights (ImageNet's)."""
    std: Optional[tuple[float, ...]] = None
    """Normalisation std. None: that of the weights (ImageNet's)."""
    pipeline: str = "auto"
    """workers (decode and augment in DataLoader workers), device (keep the split as uint8 on
    the training device and augment there; for datasets of equal-size images that fit), or
    auto (device for CIFAR on CUDA, else workers)."""
    bad_images: str = "skip"
    """An image that cannot be decoded: skip (dropped with a warning, counted in the
    summary) or error (stop, naming the file)."""
    num_workers: Optional[int] = None
    """DataLoader worker processes. None: one less than the CPU count, at most 8."""
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    """Used only when name is `synthetic`."""

    def __post_init__(self) -> None:
        check_number("data.val_fraction", self.val_fraction, low=0.0, high=1.0, high_open=True)
        check_number("data.test_fraction", self.test_fraction, low=0.0, high=1.0,
                      low_open=True, high_open=True)
        check_number("data.label_fraction", self.label_fraction, low=0.0, high=1.0,
                      low_open=True)
        if self.resolution is not None:
            check_number("data.resolution", self.resolution, low=8, high=4096)
        if self.eval_crop_fraction is not None:
            check_number("data.eval_crop_fraction", self.eval_crop_fraction, low=0.0,
                          high=1.0, low_open=True)
        check_length("data.train_crop_scale", self.train_crop_scale, 2)
        low, high = self.train_crop_scale
        if not (0 < low <= high <= 1):
            fail("data.train_crop_scale", list(self.train_crop_scale),
                  "two numbers [low, high] with 0 < low <= high <= 1")
        for key, values in (("data.mean", self.mean), ("data.std", self.std)):
            if values is not None:
                check_length(key, values, 3)
                for v in values:
                    check_number(key, v, low=0.0, high=1.0, low_open=(key == "data.std"))
        check_choice("data.bad_images", self.bad_images, BAD_IMAGE_POLICIES)
        check_choice("data.pipeline", self.pipeline, PIPELINES)
        if self.num_workers is not None:
            check_number("data.num_workers", self.num_workers, low=0, high=256)


HEADS = ("new", "keep")


@dataclass(frozen=True)
class ModelConfig:
    """The backbone and where its starting weights come from."""

    arch: str = "mobilenet_v2"
    """Architecture name from `ftlab models`."""
    weights: Optional[str] = "IMAGENET1K_V1"
    """A torchvision weights name (IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT), a path to a
    state_dict or ftlab checkpoint, or null/none to start from random initialisation."""
    head: str = "new"
    """new: a freshly initialised head for the dataset's classes (what training uses); keep:
    the weights' own head (ImageNet's 1000 classes), to evaluate or predict with the
    pretrained network itself (`ftlab eval pretrained:IMAGENET1K_V1 model.head=keep`)."""

    def __post_init__(self) -> None:
        check_choice("model.head", self.head, HEADS)


NORM_STATS = ("auto", "update", "freeze")


@dataclass(frozen=True)
class StrategyConfig:
    """Which parameters train and at which learning rate (see `ftlab strategies`).

    `name` and `norm_stats` apply to every strategy. Everything else belongs to the chosen
    strategy, which declares it in its own options dataclass (`ftlab strategies NAME` lists
    them): in YAML and overrides those options sit beside `name` (`strategy.k=5`), and here
    they are kept as given until the strategy parses them into its `Options` dataclass
    (`ftlab.strategies.options.parse_options`, called when `get_strategy` builds it), since
    this layer cannot know the strategies (plugins included).
    """

    name: str = "full"
    """Strategy name from `ftlab strategies`."""
    norm_stats: str = "auto"
    """BatchNorm running statistics in training: update, freeze (eval mode), or auto (the
    strategy's documented default)."""
    options: dict[str, Any] = field(default_factory=dict)
    """The chosen strategy's own options, as written beside `name` (strategy.k=5)."""

    def __post_init__(self) -> None:
        check_choice("strategy.norm_stats", self.norm_stats, NORM_STATS)


@dataclass(frozen=True)
class OptimConfig:
    """The optimizer; learning rates in param groups are absolute.

    `name`, `lr`, `weight_decay` and `exclude_norm_bias_from_decay` apply to every
    optimizer. Everything else belongs to the chosen optimizer's options dataclass (`ftlab
    optimizers` lists them; adam/adamw: betas, eps; sgd: momentum, nesterov): in YAML and
    overrides they sit beside `name` (`optim.momentum=0.8`) and are kept here as given until
    `ftlab.optimization.optimizer_options` checks them, since this layer cannot know the
    optimizers (plugins included).
    """

    name: str = "adam"
    """Optimizer name from `ftlab optimizers` (adam, adamw, sgd, and plugins')."""
    lr: Optional[float] = None
    """Base learning rate; strategies may scale it per parameter group. None: the
    strategy's default (`ftlab strategies NAME`), written into the run's config.yaml."""
    weight_decay: float = 0.0
    """L2 penalty (adam, sgd) or decoupled decay (adamw)."""
    exclude_norm_bias_from_decay: bool = True
    """Apply no weight decay to biases and normalisation parameters."""
    options: dict[str, Any] = field(default_factory=dict)
    """The chosen optimizer's own options, as written beside `name` (optim.momentum=0.8)."""

    def __post_init__(self) -> None:
        if self.lr is not None:
            check_number("optim.lr", self.lr, low=0.0, high=10.0, low_open=True)
        check_number("optim.weight_decay", self.weight_decay, low=0.0, high=1.0)


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule, applied as a factor on every group's own learning rate.

    Warmup applies to every schedule; everything else belongs to the chosen schedule's
    options dataclass (`ftlab schedules` lists them; exponential: gamma; step: step_size,
    step_gamma; cosine: min_lr_factor), written beside `name` (`schedule.gamma=0.9`) and
    checked by `ftlab.optimization.schedule_options`.
    """

    name: str = "exponential"
    """Schedule name from `ftlab schedules` (exponential, cosine, step, constant, and
    plugins')."""
    warmup_epochs: float = 0.0
    """Linear warmup length in epochs (fractions allowed; counted in steps)."""
    warmup_start_factor: float = 0.01
    """Learning-rate factor at the first warmup step."""
    options: dict[str, Any] = field(default_factory=dict)
    """The chosen schedule's own options, as written beside `name` (schedule.gamma=0.9)."""

    def __post_init__(self) -> None:
        check_number("schedule.warmup_epochs", self.warmup_epochs, low=0.0, high=10_000)
        check_number("schedule.warmup_start_factor", self.warmup_start_factor, low=0.0,
                      high=1.0)


AMP_MODES = ("auto", "none", "bf16", "fp16")
FROZEN_WEIGHTS = ("fp32", "int8")
DEVICES = ("auto", "cpu", "cuda")
PROGRESS_MODES = ("auto", "bar", "plain", "none")
NONFINITE_MODES = ("stop", "skip")


@dataclass(frozen=True)
class TrainConfig:
    """The training loop, its outputs, and the run folder."""

    epochs: int = 10
    """Total epochs; raising it on a finished run and resuming trains the extra epochs."""
    batch_size: int = 64
    """Training batch size."""
    eval_batch_size: Optional[int] = None
    """Evaluation batch size. None: twice batch_size."""
    seed: int = 0
    """Seeds head initialisation, shuffling, augmentation and dropout."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy loss."""
    grad_clip_norm: Optional[float] = None
    """Clip the global gradient norm to this value. None: no clipping."""
    amp: str = "auto"
    """Mixed precision: auto (bf16 on a CUDA GPU that supports it, else none), none, bf16 or
    fp16 (CUDA only; uses a gradient scaler)."""
    channels_last: bool = True
    """Use the channels-last memory format on CUDA (faster convolutions on tensor cores)."""
    device: str = "auto"
    """auto (CUDA when available), cpu or cuda."""
    num_threads: Optional[int] = None
    """CPU threads for PyTorch ops. None: PyTorch's default."""
    output_dir: str = "runs"
    """Folder that holds run folders."""
    run_name: Optional[str] = None
    """Run folder name. None: <dataset>-<arch>-<strategy>-s<seed>."""
    progress: str = "auto"
    """auto (a bar on a terminal, plain lines otherwise), bar, plain or none."""
    log_every: int = 50
    """Steps between plain progress lines and non-finite-loss checks."""
    tensorboard: bool = True
    """Write TensorBoard event files into <run>/tensorboard."""
    sync_batchnorm: bool = False
    """Data-parallel runs: BatchNorm statistics over the global batch (SyncBatchNorm, CUDA)."""
    compile: bool = False
    """torch.compile the model for training (CUDA; the first steps are slower)."""
    nonfinite: str = "stop"
    """A NaN/inf loss or gradient: stop (the run ends, keeping the last good checkpoint) or
    skip (that step's update is dropped and counted; costs a host sync per step)."""
    evaluate_test: bool = True
    """Evaluate the best checkpoint on the test split at the end. false: the run never
    passes a test image through the model and its summary has no test numbers (tuning
    trials, whose choice must be made on validation data alone)."""
    deterministic: bool = False
    """Deterministic kernels (torch.use_deterministic_algorithms, warning where an op has
    none; cuBLAS workspace pinned; cuDNN autotuning off), so that on a GPU a run and its
    resume repeat bit for bit. CPU runs are deterministic anyway. Costs some GPU speed."""
    memory_efficient: bool = True
    """Keep for backward only what backward needs: frozen convs/linears keep no input,
    frozen eval-mode BatchNorms fold into the conv before them, ReLUs keep 1-bit masks.
    Gradients are unchanged; false runs stock PyTorch modules."""
    frozen_weights: str = "fp32"
    """How frozen conv and linear weights are stored: fp32, or int8 (per-output-channel,
    dequantised on the fly in forward and backward, as TinyTL assumes; needs
    memory_efficient and a strategy that freezes weights). Checkpoints hold the dequantised
    fp32 values, so eval, diff and export read an int8 run like any."""

    def __post_init__(self) -> None:
        check_number("train.epochs", self.epochs, low=1, high=100_000)
        check_number("train.batch_size", self.batch_size, low=1, high=1_000_000)
        if self.eval_batch_size is not None:
            check_number("train.eval_batch_size", self.eval_batch_size, low=1, high=1_000_000)
        check_number("train.seed", self.seed, low=0, high=2**31 - 1)
        check_number("train.label_smoothing", self.label_smoothing, low=0.0, high=1.0,
                      high_open=True)
        if self.grad_clip_norm is not None:
            check_number("train.grad_clip_norm", self.grad_clip_norm, low=0.0, low_open=True)
        check_choice("train.amp", self.amp, AMP_MODES)
        check_choice("train.device", self.device, DEVICES)
        check_choice("train.progress", self.progress, PROGRESS_MODES)
        check_choice("train.nonfinite", self.nonfinite, NONFINITE_MODES)
        check_choice("train.frozen_weights", self.frozen_weights, FROZEN_WEIGHTS)
        if self.frozen_weights == "int8" and not self.memory_efficient:
            fail("train.frozen_weights", self.frozen_weights, "fp32 with "
                 "train.memory_efficient=false (int8 weights are dequantised inside ftlab's "
                 "memory-efficient frozen layers; set train.memory_efficient=true)")
        if self.num_threads is not None:
            check_number("train.num_threads", self.num_threads, low=1, high=1024)
        check_number("train.log_every", self.log_every, low=1, high=1_000_000)
        if not self.output_dir.strip():
            fail("train.output_dir", self.output_dir, "a folder path")
        if self.run_name is not None:
            check_run_name(self.run_name)


def check_run_name(name: str, key: str = "train.run_name") -> None:
    """A run name is one folder name: no separators, no '..', nothing hidden or odd."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+=@")
    if not name or name in (".", "..") or name.startswith(".") or not set(name) <= allowed \
            or len(name) > 200:
        fail(key, name,
              "a single folder name of letters, digits and . _ - + = @ (not starting with '.')")


@dataclass(frozen=True)
class ExperimentConfig:
    """One training run: what to train, on what, how, and where the results go."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def run_name(self) -> str:
        """The run folder name: the configured one, or one derived from the settings."""
        if self.train.run_name:
            return self.train.run_name
        return f"{self.data.name}-{self.model.arch}-{self.strategy.name}-s{self.train.seed}"
