"""timm backbones (`model.arch=timm:<name>`): the adapter read from timm's metadata, every
strategy on each family, weights from timm's cache or a file, preprocessing from the
pretrained_cfg, and the refusals. Random-init models only: nothing is downloaded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import ftlab
from ftlab.cli import main
from ftlab.config import StrategyConfig
from ftlab.errors import ConfigError, WeightsError
from ftlab.models import build_model, get_adapter, resolve_weights, skeleton
from ftlab.strategies import prepare_model, strategy_names
from extras import BY_ROLE, VIT, VIT_STRATEGIES, needs_extra

timm = pytest.importorskip("timm", reason="timm is not installed (pip install 'ftlab[timm]')")

FAMILIES = ["timm:efficientnet_b0", "timm:convnext_atto", "timm:resnet18d",
            "timm:regnety_002", "timm:mobilenetv3_small_050", "timm:mobilenetv4_conv_small"]


def _save_safetensors(state: dict[str, torch.Tensor], path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.mark.parametrize("arch", FAMILIES)
def test_blocks_head_and_branch_points_come_from_timms_metadata(arch):
    model = skeleton(arch, 7)
    adapter = get_adapter(arch)
    blocks = adapter.block_names(model)
    head = adapter.head_name(model)
    assert head == model.pretrained_cfg["classifier"]
    assert adapter.head(model).out_features == 7
    first_conv = model.pretrained_cfg["first_conv"]
    assert any(first_conv == p or first_conv.startswith(p + ".") for p in blocks[0])
    index = adapter.block_indexer(model)
    assert {index(name) for name, _ in model.named_parameters()} == \
        set(range(len(blocks) + 1))  # every block holds parameters
    real = build_model(arch, None, 7, pretrained=False).model.eval()
    order: list[int] = []  # blocks in the order a forward pass first runs them
    for i, prefixes in enumerate(blocks):
        real.get_submodule(prefixes[0]).register_forward_pre_hook(
            lambda m, args, i=i: None if i in order else order.append(i))
    with torch.no_grad():
        real(torch.zeros(1, 3, 64, 64))
    assert order == list(range(len(blocks)))  # input to output
    for name, _ in model.named_parameters():  # each parameter in exactly one block
        hits = [i for i, prefixes in enumerate(blocks)
                if any(name.startswith(p + ".") for p in prefixes)]
        assert len(hits) == (0 if name.startswith(head + ".") else 1), name
    residual = adapter.residual_blocks(model)
    assert len(residual) >= 6
    stem = blocks[0]
    for name in residual:
        module = model.get_submodule(name)
        assert not isinstance(module, nn.Sequential) and name not in stem
        assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in module.modules()) >= 2


@pytest.mark.parametrize("arch, strategy", [
    *[("timm:efficientnet_b0", name) for name in strategy_names()],
    *[("timm:convnext_atto", name) for name in strategy_names() if name not in BY_ROLE],
    *[(VIT, name) for name in VIT_STRATEGIES],
    *[(arch, name) for arch in FAMILIES[2:] for name in ("full", "bias", "tinytl")]])
def test_every_strategy_trains_on_timm_families(tiny, arch, strategy):
    needs_extra(strategy, arch)
    summary = ftlab.train(None, overrides=tiny(**{"model.arch": arch, "strategy.name": strategy,
                                                  "train.epochs": 1}))
    assert summary["arch"] == arch and summary["test_top1"] is not None
    assert 0 < summary["trainable_params"] <= summary["total_params"]
    if strategy == "tinytl":
        prepared = prepare_model(arch, None, StrategyConfig(name="tinytl"), 4, 32,
                                 load_weights=False)
        assert len(prepared.strategy.inserted) == len(
            prepared.adapter.residual_blocks(skeleton(arch, 4)))


def test_weights_from_a_file_and_from_timms_cache_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    source = timm.create_model("efficientnet_b0")
    file = _save_safetensors(source.state_dict(), tmp_path / "b0.safetensors")
    built = build_model("timm:efficientnet_b0", str(file), 10)
    assert torch.equal(built.model.conv_stem.weight, source.conv_stem.weight)
    assert built.model.classifier.out_features == 10
    # A pretrained tag in the Hugging Face cache loads with the hub offline.
    cache = tmp_path / "hub"
    snapshot = cache / "models--timm--efficientnet_b0.ra_in1k" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0123abc")
    _save_safetensors(source.state_dict(), snapshot / "model.safetensors")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    cached = build_model("timm:efficientnet_b0", "ra_in1k", 3)
    assert torch.equal(cached.model.blocks[1][0].conv_pw.weight, source.blocks[1][0].conv_pw.weight)
    assert cached.weights.describe() == "timm efficientnet_b0.ra_in1k"
    # Neither cached nor reachable: one line saying where the file must go.
    with pytest.raises(WeightsError, match=r"could not get timm weights "
                       r"efficientnet_b0.ra4_e3600_r224_in1k .*Hugging Face cache"):
        build_model("timm:efficientnet_b0", "ra4_e3600_r224_in1k", 3)


def test_weights_for_another_timm_model_are_refused(tmp_path):
    other = _save_safetensors(timm.create_model("resnet18d").state_dict(), tmp_path / "r.st")
    (tmp_path / "r.safetensors").write_bytes(other.read_bytes())
    with pytest.raises(WeightsError, match="do not fit timm:efficientnet_b0: 'conv_stem.weight' "
                                           "is missing"):
        build_model("timm:efficientnet_b0", str(tmp_path / "r.safetensors"), 3)
    with pytest.raises(WeightsError, match="neither a pretrained tag of timm:efficientnet_b0 "
                                           r"\(ra4_e3600_r224_in1k, ra_in1k; DEFAULT is ra_in1k\)"):
        resolve_weights("timm:efficientnet_b0", "in21k")


def test_preprocessing_follows_the_pretrained_cfg():
    source = resolve_weights("timm:convnext_atto", "IMAGENET1K_V1")  # ftlab's default: DEFAULT
    default_tag = timm.create_model("convnext_atto").pretrained_cfg["tag"]
    assert source.name == f"convnext_atto.{default_tag}"
    cfg = timm.models.get_pretrained_cfg(source.name)
    assert source.preprocessing.interpolation == cfg.interpolation == "bicubic"
    assert source.preprocessing.crop_size == cfg.input_size[-1]
    assert source.preprocessing.resize_size == round(cfg.input_size[-1] / cfg.crop_pct)
    from ftlab.config import DataConfig
    from ftlab.data import eval_transform, resolve_input
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    spec = resolve_input(DataConfig(resolution=32), source.preprocessing)
    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    expected = F.center_crop(F.resize(image, spec.eval_resize, InterpolationMode.BICUBIC,
                                      antialias=True), [32, 32])
    mean, std = torch.tensor(spec.mean).view(3, 1, 1), torch.tensor(spec.std).view(3, 1, 1)
    assert torch.allclose(eval_transform(spec)(image), (expected / 255 - mean) / std, atol=1e-5)


def test_unknown_and_unadaptable_names_are_refused_in_one_line(capsys):
    with pytest.raises(ConfigError, match="did you mean timm:convnext_tiny"):
        get_adapter("timm:convnxt_tiny")
    with pytest.raises(ConfigError, match="a timm model ftlab cannot adapt yet"):
        get_adapter("timm:levit_128")  # a hybrid CNN-transformer family
    with pytest.raises(ConfigError, match="give the pretrained tag as model.weights"):
        get_adapter("timm:convnext_tiny.fb_in1k")
    assert main(["memory", "--model", "timm:efficientnet_b9", "--strategies", "bias"]) == 2
    assert "did you mean timm:efficientnet_b8" in capsys.readouterr().err


def test_models_lists_every_timm_family_with_examples(capsys):
    from ftlab.models.timm_models import FAMILIES

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for family in FAMILIES:
        row = next(line for line in out.splitlines() if line.startswith(f"| {family} "))
        assert "models)" in row and not row.split("|")[3].strip().startswith(",")
    assert "swin_tiny_patch4_window7_224" in out


def test_without_timm_installed_the_fix_is_named(monkeypatch):
    from ftlab.models import timm_models

    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    timm_models.supported_names.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"needs timm, which is not installed: pip "
                                              r"install 'ftlab\[timm\]'"):
            get_adapter("timm:efficientnet_b0")
    finally:
        timm_models.supported_names.cache_clear()


def test_memory_arch_and_diff_work_unchanged(tiny, tmp_path, capsys):
    assert main(["memory", "--model", "timm:convnext_atto", "--strategies", "bias,tinytl",
                 "--batch-sizes", "2", "--resolution", "32", "--output-dir",
                 str(tmp_path / "m")]) == 0
    assert "| tinytl" in capsys.readouterr().out
    assert main(["arch", "--model", "timm:efficientnet_b0", "--strategy", "tinytl",
                 "data.resolution=32", "train.batch_size=2", "--output-dir",
                 str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert "blocks.1.0" in printed and "LiteResidual" in printed
    a = ftlab.train(None, overrides=tiny(**{"model.arch": "timm:resnet18d", "train.epochs": 1,
                                            "train.run_name": "a"}))
    b = ftlab.train(None, overrides=tiny(**{"model.arch": "timm:resnet18d", "train.epochs": 1,
                                            "train.run_name": "b", "strategy.name": "bias"}))
    capsys.readouterr()
    assert main(["diff", a["run_dir"], b["run_dir"], "--output-dir", str(tmp_path / "d"),
                 "--probe-size", "4"]) == 0
    assert "layer4.1.conv2" in (tmp_path / "d" / "layers.csv").read_text()


def test_memory_efficient_execution_realises_savings_on_timm_blocks():
    """SiLU/GELU outputs are not kept twice: the SE gate and the training layers after an
    activation keep its input instead; timm's BatchNormAct2d folds; the plan undoes cleanly."""
    from ftlab.efficient import apply_memory_plan, remove_memory_plan
    from ftlab.memory.report import measure_row

    def activations(arch: str, strategy: str, execution: str) -> int:
        return measure_row(arch, strategy, 2, 64, execution).measured.activations

    stock_full = activations("timm:efficientnet_b0", "full", "stock")
    assert activations("timm:efficientnet_b0", "full", "efficient") <= 0.70 * stock_full
    assert activations("timm:efficientnet_b0", "bias", "efficient") <= 0.32 * stock_full
    stock = activations("timm:convnext_atto", "full", "stock")
    assert activations("timm:convnext_atto", "full", "efficient") <= 0.75 * stock
    prepared = prepare_model("timm:efficientnet_b0", None, StrategyConfig(name="bias"), 4, 64,
                             load_weights=False)
    model = prepared.model
    prepared.strategy.set_train_mode(model)
    classes = {name: type(m) for name, m in model.named_modules()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    plan = apply_memory_plan(model)
    assert plan.gates == 16 and plan.folded_norms > 40
    assert "squeeze-excitation gates keep their activation's input" in plan.describe()
    assert type(model.blocks[1][0].se).__name__ == "EfficientSqueezeExcite"
    remove_memory_plan(model)
    assert {name: type(m) for name, m in model.named_modules()} == classes
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("conv_mlp", [True, False])
def test_frozen_convnext_mlps_rebuild_their_hidden_activation_bit_for_bit(conv_mlp, monkeypatch):
    """The GELU of a frozen ConvNeXt MLP keeps its LayerNorm's input instead of its own and
    rebuilds it in backward: gradients identical to keeping it (under bf16 autocast too, which
    the rebuild must re-enter), less memory; both MLP forms (1x1 convs, linears)."""
    from ftlab.efficient import apply_memory_plan, recompute
    from ftlab.memory import saved_activation_bytes

    model = timm.create_model("convnext_atto", num_classes=5, conv_mlp=conv_mlp)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.endswith("bias"))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    results = {}
    for budget in (0.0, 1.0):
        monkeypatch.setattr(recompute, "RECOMPUTE_BUDGET", budget)
        plan = apply_memory_plan(model)
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, saved = saved_activation_bytes(lambda: model(x), model)
        out.float().logsumexp(1).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results[budget] = plan.recomputed, saved, grads
    (none, kept_all, grads), (every, kept_less, rebuilt) = results[0.0], results[1.0]
    assert (none, every) == (0, 12)
    assert kept_less < 0.7 * kept_all
    assert grads.keys() == rebuilt.keys() and len(grads) > 50
    assert all(torch.equal(grads[k], rebuilt[k]) for k in grads)


def test_the_recompute_budget_goes_to_the_most_bytes_per_multiply_add_first():
    from ftlab.efficient.recompute import choose

    candidates = [("wide", 100, 400), ("narrow", 100, 100), ("mid", 100, 200)]
    assert choose(candidates, 1000, budget=0.3) == ["narrow", "mid"]
    assert choose(candidates, 1000, budget=0.25) == ["narrow"]
    assert choose(candidates, 1000, budget=0.0) == []
