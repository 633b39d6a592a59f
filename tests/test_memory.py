"""Memory-efficient execution (gradients equal stock, memory actually saved) and the
measured / analytic memory accounting behind `ftlab memory`."""

from __future__ import annotations

import csv

import pytest
import torch
import torchvision
from torch import nn

import ftlab
from ftlab.cli import main
from ftlab.config import StrategyConfig
from ftlab.efficient import apply_memory_plan, planned_modules, remove_memory_plan
from ftlab.efficient.functions import MaskedClampFunction, SharedClampFunction
from ftlab.efficient.wiring import WIRING
from ftlab.memory import analytic_memory, saved_activation_bytes
from ftlab.memory.report import measure_row
from ftlab.models import build_model
from ftlab.strategies import get_strategy, strategy_names
from extras import LIKE_FULL, VIT, needs_extra, walk


def _prepared(name: str, arch: str, dtype: torch.dtype, size: int = 64):
    needs_extra(name, arch)
    built = build_model(arch, None, 5, pretrained=False, seed=0)
    strategy = get_strategy(StrategyConfig(name=name))
    torch.manual_seed(1)
    strategy.prepare(built.model, built.adapter, input_size=size)
    model = built.model.to(dtype)
    with torch.no_grad():  # non-trivial statistics, so folding them is really tested
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    strategy.set_train_mode(model)
    return model, strategy


def _gradients(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict, int]:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(2)
    out, saved = saved_activation_bytes(lambda: model(x), model)
    (out * torch.linspace(-1, 1, out.shape[1], dtype=out.dtype)).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.detach(), grads, saved


TIMM_FAMILIES = ["timm:efficientnet_b0", "timm:convnext_atto", "timm:resnet18d",
                 "timm:regnety_002", "timm:mobilenetv3_small_050"]
"""One small model of each timm family ftlab adapts (random weights)."""


@pytest.mark.parametrize("name, arch", walk(strategy_names(), [
    "mobilenet_v2", "resnet18", "mobilenet_v3_small", *TIMM_FAMILIES, VIT]))
def test_gradients_equal_stock_autograd_float64(name, arch):
    if arch.startswith("timm:"):
        pytest.importorskip("timm", reason="timm is not installed (pip install 'ftlab[timm]')")
    model, _ = _prepared(name, arch, torch.float64)
    with torch.no_grad():  # a zero-initialised factor (LoRA's B) would zero the other's gradient
        generator = torch.Generator().manual_seed(3)
        for parameter in model.parameters():
            if parameter.requires_grad and not parameter.any():
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    x = torch.randn(3, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    stock_out, stock_grads, stock_saved = _gradients(model, x)
    apply_memory_plan(model)
    out, grads, saved = _gradients(model, x)
    assert torch.allclose(out, stock_out)
    assert grads.keys() == stock_grads.keys()
    for key in grads:
        assert torch.allclose(grads[key], stock_grads[key]), key
    assert saved <= stock_saved * 1.01


@pytest.mark.parametrize("arch", ["mobilenet_v3_small", "timm:regnety_002"])
def test_strategies_like_full_train_what_full_trains_in_the_same_modes(arch):
    """What lets the walk above check `LIKE_FULL` on fewer models: a memory plan reads only
    which parameters train and which modules run in training mode."""
    if arch.startswith("timm:"):
        pytest.importorskip("timm", reason="timm is not installed (pip install 'ftlab[timm]')")

    def signature(name: str) -> tuple:
        model, _ = _prepared(name, arch, torch.float32)
        return ([(n, p.requires_grad) for n, p in model.named_parameters()],
                [(n, m.training) for n, m in model.named_modules()])

    full = signature("full")
    for name in LIKE_FULL:
        assert signature(name) == full, name


def _float32_noise(model: nn.Module, x: torch.Tensor, truth: dict) -> dict[str, float]:
    """How far stock float32 itself lands from the float64 truth, per gradient: the largest
    error of three computations that round differently (default kernels, channels-last,
    reference convolutions without oneDNN). A draw where one of them is lucky cannot make
    this small, because the other two are not."""
    runs = [_gradients(model, x)[1]]
    model.to(memory_format=torch.channels_last)
    runs.append(_gradients(model, x.contiguous(memory_format=torch.channels_last))[1])
    model.to(memory_format=torch.contiguous_format)
    with torch.backends.mkldnn.flags(enabled=False):
        runs.append(_gradients(model, x)[1])
    return {key: max((run[key] - truth[key].float()).norm().item() for run in runs)
            for key in runs[0]}


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")
@pytest.mark.parametrize("name", ["full", "bias", "tinytl", "norm_last", "last_k"])
def test_gradients_within_1e4_relative_in_float32(name):
    """Within 1e-4 of stock float32, relative; where a gradient is so small that float32
    itself cannot resolve it to that (sums that cancel, e.g. a zero-initialised γ), the
    efficient gradient must be as close to the float64 truth as float32 gets: within twice
    float32's own error there (the efficient path recomputes and folds, so it rounds a few
    more times; measured worst ratio over 8 inputs: 1.09)."""
    model, _ = _prepared(name, "mobilenet_v2", torch.float32)
    exact, _ = _prepared(name, "mobilenet_v2", torch.float64)
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    _, stock, _ = _gradients(model, x)
    _, truth, _ = _gradients(exact, x.double())
    noise = _float32_noise(model, x, truth)
    apply_memory_plan(model)
    _, ours, _ = _gradients(model, x)
    for key, reference in stock.items():
        error = (ours[key] - reference).norm().item()
        if error <= 1e-4 * reference.norm().item():
            continue
        true = truth[key].float()
        assert (ours[key] - true).norm() <= 2 * noise[key] + 1e-4 * true.norm(), key


def test_frozen_backbones_keep_almost_nothing():
    savings = {}
    for name in ("bias", "tinytl", "full"):
        model, _ = _prepared(name, "mobilenet_v2", torch.float32, size=96)
        x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
        _, _, stock = _gradients(model, x)
        plan = apply_memory_plan(model)
        _, _, efficient = _gradients(model, x)
        savings[name] = efficient / stock
        if name == "bias":
            assert plan.frozen_convs == plan.folded_norms == 52
    assert savings["bias"] < 0.02      # measured 1 %: only 1-bit masks remain
    assert savings["tinytl"] < 0.10    # the side branches' own activations
    assert savings["full"] < 0.75      # no copies behind in-place ReLU6


def test_plan_keeps_state_dict_and_is_removable():
    model, _ = _prepared("bias", "mobilenet_v2", torch.float32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    classes = {n: type(m) for n, m in model.named_modules()}
    apply_memory_plan(model)
    assert dict(planned_modules(model))
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in after)
    torchvision.models.mobilenet_v2(num_classes=5).load_state_dict(after)
    remove_memory_plan(model)
    assert {n: type(m) for n, m in model.named_modules()} == classes
    assert not dict(planned_modules(model))


def test_removing_a_plan_removes_its_hooks():
    """The training BatchNorms feeding rebuilt ReLUs tag their outputs by forward hooks;
    the plan's removal takes the hooks and every reference it left away."""
    model, _ = _prepared("full", "mobilenet_v2", torch.float32)
    plan = apply_memory_plan(model)
    assert plan.rebuilt_activations == 35
    assert sum(len(m._forward_hooks) for m in model.modules()) == 35
    remove_memory_plan(model)
    assert all(not m._forward_hooks for m in model.modules())
    left = {k for m in model.modules() for k in m.__dict__ if k.startswith("_ftlab")}
    assert left <= {WIRING}  # the wiring observed stays cached with the model


def test_a_rebuilt_relu_takes_only_an_unchanged_norm_output():
    """A user's forward hook shifts the BatchNorm's output in place: rebuilding the ReLU's
    input from the norm's input would drop the shift (and move the ReLU's mask), so the ReLU
    keeps a mask instead and the gradients stay stock's."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                          nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).double()
    model[1].register_forward_hook(lambda module, args, y: y.sub_(0.5))
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    _, stock, _ = _gradients(model, x)
    plan = apply_memory_plan(model, probe_size=8)
    assert plan.rebuilt_activations == 1  # planned: the wiring shows bn -> relu
    _, ours, _ = _gradients(model, x)
    assert all(torch.allclose(ours[k], g, rtol=0, atol=1e-12) for k, g in stock.items())


def test_replanning_follows_the_trainable_set():
    model, strategy = _prepared("gradual_unfreeze", "mobilenet_v2", torch.float32)
    built = build_model("mobilenet_v2", None, 5, pretrained=False)
    first = apply_memory_plan(model)
    strategy.begin_epoch(5, model, built.adapter)
    strategy.set_train_mode(model)
    later = apply_memory_plan(model)
    assert later.frozen_convs < first.frozen_convs


@pytest.mark.parametrize("function, low, high", [(MaskedClampFunction, 0.0, 6.0),
                                                 (MaskedClampFunction, 0.0, None),
                                                 (SharedClampFunction, 0.0, 6.0)])
def test_activation_functions_pass_gradcheck(function, low, high):
    x = (torch.randn(2, 3, 5, 7, dtype=torch.float64,
                     generator=torch.Generator().manual_seed(0)) * 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: function.apply(t.clone(), low, high), (x,))


def test_saved_bytes_count_each_storage_once():
    generator = torch.Generator().manual_seed(0)
    weight = nn.Parameter(torch.randn(16, 16, generator=generator))
    x = torch.randn(64, 16, generator=generator, requires_grad=True)

    def forward():
        y = x @ weight          # saves x (and the weight, a parameter: not counted)
        return y * y + y * 2    # y saved twice by the first product: counted once

    holder = nn.Linear(1, 1)
    holder.weight = weight
    _, saved = saved_activation_bytes(forward, holder)
    assert saved == 64 * 16 * 4 * 2  # x and y


def test_analytic_counts_follow_tinytl_rules():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                          nn.ReLU(), nn.Conv2d(8, 4, 1), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 2))
    model.train()
    all_trainable = analytic_memory(model, 16, batch_size=2).activations
    # conv1 input 3x16x16, BN input 8x16x16, ReLU mask 8x16x16/8 bytes, conv2 input 8x16x16,
    # linear input 4 (pool and flatten store nothing), each x 4 bytes, x 2 images
    expected = 2 * (4 * (3 * 256 + 8 * 256 + 8 * 256 + 4) + 8 * 256 / 8)
    assert all_trainable == expected
    for p in model[:2].parameters():
        p.requires_grad_(False)
    model[1].eval()
    # conv1 frozen and first: nothing; eval BN with frozen γ: nothing; gradient reaches only
    # from conv2 on, so the ReLU needs no mask
    assert analytic_memory(model, 16, batch_size=2).activations == 2 * 4 * (8 * 256 + 4)
    memory = analytic_memory(model, 16, batch_size=1, frozen_bits=8)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert memory.parameters == 4 * trainable + frozen
    assert memory.gradients == 4 * trainable and memory.optimizer == 8 * trainable


@pytest.mark.parametrize("name", ["full", "bias", "tinytl"])
def test_measured_efficient_activations_match_the_analytic_count(name):
    """Frozen layers' savings are realised: efficient execution keeps what TinyTL's analytic
    count says is needed (bias), or less where a training conv after a ReLU after a
    training BatchNorm rebuilds its input from the norm's instead of keeping it, which the
    count does not model (every layer in full fine-tuning, TinyTL's branches)."""
    row = measure_row("mobilenet_v2", name, 2, 96, "efficient")
    measured, analytic = row.measured.activations, row.analytic.activations
    low, high = {"full": (0.5, 0.6), "bias": (0.95, 1.05), "tinytl": (0.8, 0.9)}[name]
    assert low * analytic - 64 * 1024 <= measured <= high * analytic + 64 * 1024
    stock = measure_row("mobilenet_v2", name, 2, 96, "stock")
    assert stock.measured.peak > row.measured.peak > row.measured.parameters


def test_cpu_peak_counts_the_tensors_alive_before_the_step_once():
    """A step whose memory is known: one 4 MiB trained weight, plain SGD (no state). Alive
    before: the weight; the step adds its 4 MiB gradient and the update's temporaries are
    small. Counting the weight twice (the profiler's timeline already holds it as
    pre-existing) would give at least 12 MiB."""
    from ftlab.memory import measure_step

    model = nn.Linear(1024, 1024, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    images, labels = torch.randn(2, 1024), torch.randint(0, 1024, (2,))
    memory = measure_step(model, optimizer, images, labels)
    if memory.peak is None:
        pytest.skip("this torch's profiler gives no memory timeline")
    weight = 4 * 1024 * 1024
    assert 2 * weight <= memory.peak < 2.5 * weight


def test_memory_command_writes_markdown_and_csv(tmp_path, capsys):
    code = main(["memory", "--strategies", "full,linear_probe", "--batch-sizes", "1,2",
                 "--resolution", "64", "--output-dir", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "| strategy " in out and "| linear_probe | 2     | efficient |" in out
    rows = list(csv.DictReader(open(tmp_path / "memory.csv")))
    assert len(rows) == 2 * 2 * 2
    full_stock = next(r for r in rows if r["strategy"] == "full" and r["batch_size"] == "2"
                      and r["execution"] == "stock")
    assert int(full_stock["activations_bytes"]) > 0 and int(full_stock["peak_bytes"]) > 0
    probe = next(r for r in rows if r["strategy"] == "linear_probe" and r["batch_size"] == "2"
                 and r["execution"] == "efficient")
    # only the head trains: its input, 1280 floats per image, is all backward keeps
    measured, analytic = int(probe["activations_bytes"]), int(probe["analytic_activations_bytes"])
    assert measured == analytic == 2 * 1280 * 4
    assert "Analytic: TinyTL" in (tmp_path / "memory.md").read_text()
    assert main(["memory", "--strategies", "full,nope", "--output-dir", str(tmp_path)]) == 2
    assert "strategy.name='nope' is unknown" in capsys.readouterr().err
    assert main(["memory", "--strategies", "full", "--batch-sizes", "1", "--resolution", "32",
                 "--output-dir", str(tmp_path)]) == 2
    assert "one value per channel; use a larger --resolution" in capsys.readouterr().err


def test_training_with_and_without_memory_efficiency_agree(tiny):
    """A run trains to stock's weights up to round-off. With SGD, whose step is linear in the
    gradient (Adam turns last-bit differences of near-zero gradients into steps of up to
    lr), that is measured against how far the epoch moves the weights: a fold or recompute
    that lost a term would move them by a share of that, not by a millionth (measured here:
    1e-7 of it)."""
    common = {"strategy.name": "bias", "train.epochs": 1, "optim.name": "sgd",
              "optim.lr": 0.01}
    stock = ftlab.train(None, overrides=tiny(**common, **{"train.memory_efficient": False,
                                                          "train.run_name": "stock"}))
    efficient = ftlab.train(None, overrides=tiny(**common, **{"train.run_name": "efficient"}))
    still = ftlab.train(None, overrides=tiny(**{**common, "optim.lr": 1e-9,
                                                "train.run_name": "still"}))
    assert efficient["memory_efficient"] and not stock["memory_efficient"]
    a, b, start = (torch.load(f"{run['run_dir']}/last.pt", weights_only=True)["model"]
                   for run in (stock, efficient, still))
    assert a.keys() == b.keys()
    moved = _distance(a, start)
    assert moved > 1e-3 and _distance(a, b) <= 1e-5 * moved, (_distance(a, b), moved)
    torchvision.models.mobilenet_v2(num_classes=4).load_state_dict(b)


def _distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The norm of the difference of all floating-point tensors, in float64."""
    return sum((a[k].double() - b[k].double()).square().sum().item()
               for k in a if a[k].is_floating_point()) ** 0.5


@pytest.mark.parametrize("arch", ["mobilenet_v2", "timm:convnext_atto", "timm:efficientnet_b0"])
def test_memory_efficient_steps_under_bf16_autocast_match_stock(arch):
    """Mixed precision, as train.amp=bf16 runs it on a GPU: every planned function takes the
    dtypes autocast gave its inputs in forward (a frozen layer's weight is cast as autocast
    cast it), so backward runs and lands where stock autocast lands."""
    if arch.startswith("timm:"):
        pytest.importorskip("timm", reason="timm is not installed (pip install 'ftlab[timm]')")
    for name in ("full", "bias", "tinytl", "norm_last"):
        model, _ = _prepared(name, arch, torch.float32, size=32)
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, stock, _ = _gradients(model, x)
            apply_memory_plan(model)
            _, ours, _ = _gradients(model, x)
        assert ours.keys() == stock.keys(), name
        assert all(g.dtype == ours[k].dtype == torch.float32 for k, g in stock.items())
        flat_stock, flat_ours = (torch.cat([g[k].flatten() for k in sorted(g)])
                                 for g in (stock, ours))
        error = (flat_ours - flat_stock).norm() / flat_stock.norm()
        assert error < 0.05, (name, error.item())  # bfloat16 rounding: measured <= 0.008


@pytest.mark.parametrize("name", ["full", "norm_last"])
def test_relus_after_training_batchnorms_rebuild_exactly_in_float32(name):
    """With every BatchNorm training, nothing is folded: the ReLUs and the training convs
    after them rebuild their inputs with the norm's own kernel, so gradients are stock's bit
    for bit, in float32 too (at 32 px, where the kernel's arithmetic differs from x * a + b)."""
    model, _ = _prepared(name, "mobilenet_v2", torch.float32, size=32)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    _, stock, stock_saved = _gradients(model, x)
    plan = apply_memory_plan(model)
    _, ours, saved = _gradients(model, x)
    assert plan.rebuilt_activations == 35 and plan.masked_activations == 0
    assert all(torch.equal(ours[k], g) for k, g in stock.items())
    assert saved < 0.75 * stock_saved


def test_max_pool_keeps_one_byte_per_output_and_stock_gradients():
    """ResNet's stem pool (3x3, stride 2, padding 1) keeps where each window's maximum was,
    one byte per output, instead of its input and int64 indices; the gradient it scatters
    is stock's, bit for bit in float32 (the other rules on in both, folded norms round
    differently from stock)."""
    from ftlab.efficient.rules import RULES

    model, _ = _prepared("bias", "resnet18", torch.float32)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    apply_memory_plan(model, rules=set(RULES) - {"max_pool"})
    _, stock, saved_without = _gradients(model, x)
    apply_memory_plan(model, rules=set(RULES))
    _, grads, saved = _gradients(model, x)
    assert type(model.maxpool).__name__ == "WindowMaxPool2d"
    pooled = 2 * 64 * 16 * 16  # outputs of the pool: batch x channels x 16 x 16
    assert saved_without - saved == 4 * pooled * 4 + 8 * pooled - pooled  # input, indices
    assert grads.keys() == stock.keys()
    for key in stock:
        assert torch.equal(grads[key], stock[key]), key


def test_lora_on_a_resnet_rebuilds_block_outputs_from_block_inputs():
    """LoRA on every conv of a ResNet: the adapters of the next block would keep a block's
    output; within the recompute budget they keep the block's input instead (kept anyway
    by its own adapters) and run the block again in backward. Every other block of a
    stage at most; gradients stock's (float64); what is kept drops by the rebuilt outputs
    (less the 1-bit masks their ReLUs keep instead of sharing them)."""
    from ftlab.efficient.rules import RULES

    needs_extra("lora", "resnet18")
    model, _ = _prepared("lora", "resnet18", torch.float64)
    with torch.no_grad():  # B = 0 would zero A's gradient
        for key, parameter in model.named_parameters():
            if "lora_B" in key:
                parameter.normal_(0, 0.1, generator=torch.Generator().manual_seed(3))
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    _, stock, _ = _gradients(model, x)
    apply_memory_plan(model, rules=set(RULES) - {"block_rebuild"})
    _, _, saved_without = _gradients(model, x)
    plan = apply_memory_plan(model, rules=set(RULES))
    _, grads, saved = _gradients(model, x)
    readers = {n: m.__dict__["_ftlab_rebuild_from"][0] for n, m in model.named_modules()
               if "_ftlab_rebuild_from" in m.__dict__}
    blocks = {id(b): b for b in readers.values()}
    assert plan.rebuilt_blocks == len(readers) >= 1
    assert all(n.endswith("conv1.lora_A.default") or "downsample" in n for n in readers)
    names = {id(m): n for n, m in model.named_modules()}
    rebuilt = sorted(names[i] for i in blocks)
    assert all(a.split(".")[0] != b.split(".")[0] or int(b.split(".")[1]) - int(a.split(".")[1])
               > 1 for a, b in zip(rebuilt, rebuilt[1:]))  # never two neighbours
    outputs = {}
    hooks = [b.register_forward_hook(lambda m, a, out: outputs.__setitem__(id(m), out.numel()))
             for b in blocks.values()]
    model(x)
    for hook in hooks:
        hook.remove()
    freed = 8 * sum(outputs.values())
    assert 0.9 * freed <= saved_without - saved <= freed
    for key in stock:
        assert torch.allclose(grads[key], stock[key]), key
