"""Vision Transformers from timm (random-init small models) and the two ViT-native
strategies, SSF and VPT. The walks of every strategy over a ViT are in test_memory.py
(gradients under memory-efficient execution) and test_timm.py (training)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ftlab.config import StrategyConfig
from ftlab.errors import ConfigError
from ftlab.models import build_model
from ftlab.strategies import prepare_model

timm = pytest.importorskip("timm", reason="timm is not installed (pip install 'ftlab[timm]')")

VIT = "timm:vit_tiny_patch16_224"


def _prepared(strategy: str, arch: str = VIT, size: int = 32, **options):
    return prepare_model(arch, None, StrategyConfig(name=strategy, options=options), 5, size,
                         load_weights=False)


def test_a_vit_takes_another_resolution_and_numbers_its_blocks_from_timm():
    built = build_model(VIT, None, 5, pretrained=False)
    model, adapter = built.model, built.adapter
    assert model(torch.randn(2, 3, 48, 48)).shape == (2, 5)  # 3 x 3 patches, pos-embed resampled
    blocks = adapter.block_names(model)
    assert len(blocks) == len(model.blocks) + 1  # stem (tokens, patch embedding), blocks
    assert {"cls_token", "pos_embed"} <= set(blocks[0])
    index = adapter.block_indexer(model)
    assert index("cls_token") == 0 and index("blocks.0.attn.qkv.weight") == 1
    assert index("norm.weight") == len(blocks) - 1  # timm groups the final norm with the last
    assert index("head.weight") == len(blocks)
    roles = adapter.layer_roles(model)
    assert len(roles["qkv"]) == len(roles["proj"]) == len(model.blocks)
    assert len(roles["mlp"]) == 2 * len(model.blocks) and roles["conv"] == ["patch_embed.proj"]


def test_a_resolution_the_patch_size_does_not_divide_is_one_line():
    with pytest.raises(ConfigError, match=r"data.resolution=40 is not a multiple of "
                                          r"VisionTransformer's patch size 16; use 32 or 48"):
        _prepared("bias", size=40)


def test_distilled_deit_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match="a distilled DeiT has two heads"):
        build_model("timm:deit_tiny_distilled_patch16_224", None, 5, pretrained=False)


@pytest.mark.parametrize("arch", [VIT, "mobilenet_v2"])
def test_ssf_folds_into_the_layers_it_follows_on_export(arch):
    prepared = _prepared("ssf", arch, size=32)
    model = prepared.model.double().eval()
    torch.manual_seed(0)
    with torch.no_grad():  # a trained-looking SSF: away from its initialisation
        for name, param in model.named_parameters():
            if ".ssf." in name:
                param.add_(torch.randn_like(param) * 0.2)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    expected = model(x)
    plain = prepared.strategy.export_network(model)
    assert not any(".ssf." in k or "base_layer" in k for k in plain.state_dict())
    assert torch.allclose(plain(x), expected, rtol=1e-9, atol=1e-9)


def test_ssf_trains_only_its_scales_shifts_and_the_head():
    prepared = _prepared("ssf")
    trainable = [n for n, p in prepared.model.named_parameters() if p.requires_grad]
    head = prepared.adapter.head_name(prepared.model)
    assert all(".ssf." in n or n.startswith(head + ".") for n in trainable)
    wrapped = [n for n, m in prepared.model.named_modules() if hasattr(m, "ssf")]
    norms = [n for n, m in prepared.model.named_modules() if isinstance(m, nn.LayerNorm)]
    assert len(wrapped) == 4 * len(prepared.model.blocks) + 1 + len(norms)  # + patch conv


@pytest.mark.parametrize("deep", [True, False])
def test_vpt_prompts_join_every_block_or_the_first_and_leave_before_the_head(deep):
    prepared = _prepared("vpt", tokens=3, deep=deep, dropout=0.0)
    model = prepared.model.eval()
    depth, width = len(model.blocks), model.embed_dim
    assert model.vpt.prompts.shape == ((depth if deep else 1), 3, width)
    seen = []
    hooks = [block.register_forward_hook(lambda m, a, out: seen.append(out.shape[1]))
             for block in model.blocks]
    logits = model(torch.randn(2, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    patches = (32 // 16) ** 2
    # prompts inside every block; the last block's hook saw them removed (after ftlab's)
    assert seen[:-1] == [1 + 3 + patches] * (depth - 1) and seen[-1] == 1 + patches
    logits.sum().backward()
    grad = model.vpt.prompts.grad
    assert grad is not None and bool((grad.abs().sum(dim=(1, 2)) > 0).all())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"vpt.prompts", "head.weight", "head.bias"}


def test_arch_draws_vpts_prompts_as_an_inserted_block(tmp_path):
    """The prompts' module never runs (hooks insert its tensor), so the drawing gives it the
    token stream's shape there and counts its parameters as inserted and trained."""
    from ftlab.cli import main

    assert main(["arch", "--model", VIT, "--strategy", "vpt", "data.resolution=32",
                 "train.batch_size=2", "--output-dir", str(tmp_path)]) == 0
    rows = (tmp_path / "architecture.md").read_text().splitlines()
    row = next(line for line in rows if line.startswith("| vpt "))
    prompts = 10 * 12 * 192  # VPT-deep's default 10 tokens per block, ViT-Ti's width
    assert "5x192 -> 5x192" in row and f"inserted {prompts:,}/{prompts:,}" in row


def test_vpt_refuses_a_cnn_and_rotary_transformers():
    with pytest.raises(ConfigError, match="strategy vpt needs a Vision Transformer"):
        _prepared("vpt", "mobilenet_v2")
    with pytest.raises(ConfigError, match="strategy vpt needs a Vision Transformer"):
        _prepared("vpt", "timm:eva02_tiny_patch14_224", size=28)


@pytest.mark.parametrize("name", ["vpt", "ssf", "lora"])
def test_a_vit_run_resumes_to_the_same_weights_as_a_straight_one(name, tiny):
    from pathlib import Path

    import ftlab
    from extras import needs_extra

    needs_extra(name, VIT)
    extra = {"strategy.name": name, "model.arch": VIT, "data.synthetic.train_per_class": 6}
    first = ftlab.train(None, overrides=tiny(**extra, **{"train.epochs": 1,
                                                           "train.run_name": "resumed"}))
    resumed = ftlab.train(resume=Path(first["run_dir"]), overrides=["train.epochs=2"])
    straight = ftlab.train(None, overrides=tiny(**extra, **{"train.epochs": 2,
                                                              "train.run_name": "straight"}))
    a = torch.load(Path(first["run_dir"]) / "last.pt", weights_only=True)["model"]
    b = torch.load(Path(straight["run_dir"]) / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for key in b:
        assert torch.equal(a[key], b[key]), key
    assert resumed["test_top1"] == straight["test_top1"]


@pytest.mark.parametrize("name, options", [("full", {}), ("lora", {"target": "qkv"})])
def test_training_layers_after_a_layernorm_keep_nothing_and_gradients_stay_stock(name, options):
    """Memory-efficient execution on a ViT: the first layer of each sub-block (qkv and fc1
    in full fine-tuning, LoRA's lora_A beside a frozen qkv) keeps no input of its own and
    rebuilds it from its LayerNorm's, which the norm keeps anyway; one token-wide tensor
    less per such layer, gradients equal to stock autograd's in float64."""
    from extras import needs_extra
    from ftlab.efficient import apply_memory_plan, remove_memory_plan
    from ftlab.efficient.rules import RULES
    from ftlab.memory import saved_activation_bytes

    needs_extra(name, VIT)
    prepared = _prepared(name, **options)
    model, strategy = prepared.built.model.double(), prepared.strategy
    strategy.set_train_mode(model)
    for key, parameter in model.named_parameters():  # B = 0 would zero lora_A's gradient
        if "lora_B" in key:
            nn.init.normal_(parameter, generator=torch.Generator().manual_seed(1))
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def step() -> tuple[int, dict[str, torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        out, saved = saved_activation_bytes(lambda: model(x), model)
        out.square().sum().backward()
        return saved, {n: p.grad.clone() for n, p in model.named_parameters()
                       if p.grad is not None}

    _, stock = step()
    apply_memory_plan(model, rules=set(RULES) - {"norm_input"})
    saved_without, _ = step()
    plan = apply_memory_plan(model, rules=set(RULES))
    saved, grads = step()
    remove_memory_plan(model)
    depth = len(model.blocks)
    assert plan.rebuilt_inputs == (2 * depth if name == "full" else depth)
    token_tensor = 2 * (4 + 1) * model.embed_dim * 8  # batch x (patches + class) x width
    rebuilt = {"full": 2 * depth, "lora": depth - 1}[name]  # block 0's norm: no graph in LoRA
    assert saved_without - saved == rebuilt * token_tensor
    assert grads.keys() == stock.keys()
    for key in stock:
        torch.testing.assert_close(grads[key], stock[key], rtol=1e-10, atol=1e-12)


SWIN = "timm:swin_tiny_patch4_window7_224"


def test_a_swin_takes_another_resolution_with_its_blocks_and_roles_from_timm():
    built = build_model(SWIN, None, 5, pretrained=False)
    model, adapter = built.model, built.adapter
    for size in (32, 48):  # 8 x 8 and 12 x 12 patches: windows masked and padded by timm
        assert model(torch.randn(1, 3, size, size)).shape == (1, 5)
    blocks = adapter.block_names(model)
    depth = sum(len(stage.blocks) for stage in model.layers)
    assert blocks[0] == ("patch_embed",) and len(blocks) == depth + 1
    assert adapter.block_indexer(model)("head.fc.weight") == len(blocks)
    roles = adapter.layer_roles(model)
    assert len(roles["qkv"]) == len(roles["proj"]) == depth
    merges = sum(not isinstance(stage.downsample, nn.Identity) for stage in model.layers)
    assert len(roles["mlp"]) == 2 * depth + merges  # the MLPs and patch merging's reductions
    with pytest.raises(ConfigError, match="not a multiple of SwinTransformer's patch size 4"):
        _prepared("bias", SWIN, size=34)


@pytest.mark.parametrize("name, options", [("bias", {}), ("lora", {"target": "qkv+mlp"})])
def test_swin_gradients_under_memory_efficient_execution_equal_stock(name, options):
    """Shifted windows (rolled, partitioned, masked attention with a relative position
    bias) under the plan: the same gradients as stock autograd in float64, less kept."""
    from extras import needs_extra
    from ftlab.efficient import apply_memory_plan, remove_memory_plan
    from ftlab.memory import saved_activation_bytes

    needs_extra(name, SWIN)
    prepared = _prepared(name, SWIN, **options)
    model, strategy = prepared.built.model.double(), prepared.strategy
    strategy.set_train_mode(model)
    for key, parameter in model.named_parameters():  # B = 0 would zero lora_A's gradient
        if "lora_B" in key:
            nn.init.normal_(parameter, std=0.1, generator=torch.Generator().manual_seed(1))
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def step() -> tuple[int, dict[str, torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        torch.manual_seed(2)  # the same stochastic-depth draws in both runs
        out, saved = saved_activation_bytes(lambda: model(x), model)
        out.square().sum().backward()
        return saved, {n: p.grad.clone() for n, p in model.named_parameters()
                       if p.grad is not None}

    stock_saved, stock = step()
    apply_memory_plan(model)
    saved, grads = step()
    remove_memory_plan(model)
    assert saved < stock_saved
    assert grads.keys() == stock.keys()
    for key in stock:
        torch.testing.assert_close(grads[key], stock[key], rtol=1e-10, atol=1e-12)
