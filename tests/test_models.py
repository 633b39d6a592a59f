"""Architectures, weight sources and head reset."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from ftlab.errors import ConfigError, WeightsError
from ftlab.models import (architectures, block_names, build_model, count_parameters, get_adapter,
                          head_name, input_size, skeleton)
from ftlab.models.weights import resolve_weights

V1_FILE = "mobilenet_v2-b0353104.pth"  # basename of torchvision's IMAGENET1K_V1 URL


def _random_state(arch: str, seed: int, **kwargs) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return torchvision.models.get_model(arch, weights=None, **kwargs).state_dict()


def _backbone(state: dict[str, torch.Tensor], head: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith(head + ".")}


@pytest.mark.parametrize("arch", architectures())
def test_adapter_walk_every_architecture(arch):
    built = build_model(arch, None, 7, pretrained=False)
    model, adapter = built.model, built.adapter
    head = adapter.head(model)
    assert isinstance(head, nn.Linear) and head.out_features == 7
    blocks = adapter.block_names(model)
    indexer = adapter.block_indexer(model)
    seen_blocks = []
    for name, _ in model.named_parameters():
        index = indexer(name)
        assert 0 <= index <= len(blocks)
        assert (index == len(blocks)) == adapter.is_head_parameter(model, name)
        if not seen_blocks or seen_blocks[-1] != index:
            seen_blocks.append(index)
    # Parameters appear block by block, input to output: numbering follows depth.
    assert seen_blocks == sorted(seen_blocks)
    assert seen_blocks[0] == 0 and seen_blocks[-1] == len(blocks)
    out = model.eval()(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 7)
    # What the models layer answers from the structure alone is what the built model says.
    assert head_name(arch) == adapter.head_name(model)
    assert block_names(arch) == blocks
    shapes = {name: p.shape for name, p in skeleton(arch, 7).named_parameters()}
    assert shapes == {name: p.shape for name, p in model.named_parameters()}


def test_head_and_block_names_are_read_on_the_meta_device(monkeypatch):
    """No weights are made to learn names: every network built for them lives on `meta`
    (no memory, no initialisation), once per architecture."""
    import ftlab.models.factory as factory

    made: list[nn.Module] = []

    def spy(arch: str, **kwargs) -> nn.Module:
        made.append(real(arch, **kwargs))
        return made[-1]

    real = factory.get_model
    monkeypatch.setattr(factory, "get_model", spy)
    factory._layout.cache_clear()
    for _ in range(2):
        assert head_name("efficientnet_v2_l") == "classifier.1"
        assert block_names("efficientnet_v2_l")[0] == ("features.0",)
    assert len(made) == 1 and all(p.is_meta for p in made[0].parameters())
    head = skeleton("resnet18", 5).fc
    assert head.out_features == 5 and head.weight.is_meta
    with pytest.raises(ConfigError, match="model.arch='vgg11' is unknown"):
        head_name("vgg11")


def test_input_size_is_the_crop_of_the_weights():
    assert input_size("mobilenet_v2", "IMAGENET1K_V1") == 224
    assert input_size("efficientnet_b3", "IMAGENET1K_V1") == 300
    assert input_size("efficientnet_v2_s", "DEFAULT") == 384
    assert input_size("efficientnet_b3", None) == 224              # random init: ImageNet's
    assert input_size("efficientnet_b3", "/some/weights.pth") == 224


def test_head_reset_keeps_backbone_and_initialises_head(tmp_path):
    state = _random_state("mobilenet_v2", seed=1)
    path = tmp_path / "w.pth"
    torch.save(state, path)
    built = build_model("mobilenet_v2", str(path), 10, seed=3)
    loaded = built.model.state_dict()
    for key, tensor in _backbone(state, "classifier.1").items():
        assert torch.equal(loaded[key], tensor), key
    head = built.adapter.head(built.model)
    assert head.weight.shape == (10, 1280)
    assert torch.count_nonzero(head.bias) == 0
    assert head.weight.std().item() == pytest.approx(0.01, rel=0.1)  # torchvision's N(0, 0.01)
    again = build_model("mobilenet_v2", str(path), 10, seed=3)
    assert torch.equal(again.adapter.head(again.model).weight, head.weight)  # seeded
    other = build_model("mobilenet_v2", str(path), 10, seed=4)
    assert not torch.equal(other.adapter.head(other.model).weight, head.weight)


def test_torchvision_weights_name_uses_the_hub_cache(tmp_path):
    # conftest points TORCH_HOME at a fresh folder; seed it as a finished download would.
    cache = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    state = _random_state("mobilenet_v2", seed=5)
    torch.save(state, cache / V1_FILE)
    built = build_model("mobilenet_v2", "IMAGENET1K_V1", 3)
    assert built.weights.kind == "torchvision" and built.weights.name == "IMAGENET1K_V1"
    assert built.weights.url.endswith(V1_FILE)
    loaded = built.model.state_dict()
    for key, tensor in _backbone(state, "classifier.1").items():
        assert torch.equal(loaded[key], tensor), key
    assert built.adapter.head(built.model).out_features == 3


def test_torchvision_weights_carry_their_preprocessing():
    v1 = resolve_weights("mobilenet_v2", "IMAGENET1K_V1").preprocessing
    v2 = resolve_weights("mobilenet_v2", "DEFAULT").preprocessing
    assert (v1.crop_size, v1.resize_size) == (224, 256)
    assert (v2.crop_size, v2.resize_size) == (224, 232)  # DEFAULT resolves to IMAGENET1K_V2
    assert resolve_weights("mobilenet_v2", "DEFAULT").name == "IMAGENET1K_V2"


def test_download_failure_says_where_to_put_the_file(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(torchvision.models.MobileNet_V2_Weights, "get_state_dict", offline)
    with pytest.raises(WeightsError) as info:
        build_model("mobilenet_v2", "IMAGENET1K_V1", 3)
    message = str(info.value)
    assert "download.pytorch.org/models/" + V1_FILE in message
    assert str(Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / V1_FILE) in message


def test_no_weights_is_random_and_seeded():
    a = build_model("mobilenet_v2", "none", 4, seed=0).model.state_dict()
    b = build_model("mobilenet_v2", None, 4, seed=0).model.state_dict()
    c = build_model("mobilenet_v2", "none", 4, seed=1).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.0.0.weight"], c["features.0.0.weight"])


def test_scratch_ignores_weights_but_keeps_their_preprocessing(tmp_path):
    path = tmp_path / "w.pth"
    state = _random_state("mobilenet_v2", seed=1)
    torch.save(state, path)
    built = build_model("mobilenet_v2", str(path), 4, pretrained=False)
    assert built.weights.kind == "none"
    assert not torch.equal(built.model.state_dict()["features.0.0.weight"],
                           state["features.0.0.weight"])


def test_checkpoint_and_prefixed_state_dicts_load(tmp_path):
    state = _random_state("resnet18", seed=2)
    wrapped = tmp_path / "ckpt.pt"
    torch.save({"format": "ftlab-checkpoint/1", "model": state, "epoch": 3}, wrapped)
    ddp = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in state.items()}, ddp)
    for path in (wrapped, ddp):
        built = build_model("resnet18", str(path), 5)
        assert torch.equal(built.model.state_dict()["conv1.weight"], state["conv1.weight"])
        assert built.model.fc.out_features == 5


def test_weights_for_another_architecture_name_the_mismatch(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(_random_state("resnet18", seed=0), path)
    with pytest.raises(WeightsError) as info:
        build_model("mobilenet_v2", str(path), 10)
    message = str(info.value)
    assert "do not fit mobilenet_v2" in message
    assert "'features.0.0.weight' is missing" in message
    assert "'conv1.weight' is unknown to mobilenet_v2" in message
    assert "set model.arch" in message


def test_weights_of_another_width_name_the_shape(tmp_path):
    path = tmp_path / "narrow.pth"
    torch.save(_random_state("mobilenet_v2", seed=0, width_mult=0.5), path)
    with pytest.raises(WeightsError, match=r"'features.0.0.weight' has shape \(16, 3, 3, 3\) in "
                                           r"the file but \(32, 3, 3, 3\) in mobilenet_v2"):
        build_model("mobilenet_v2", str(path), 10)


class _RunsCode:
    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_that_runs_code_is_refused(tmp_path):
    _RunsCode.marker = str(tmp_path / "code-ran")
    files = []
    for protocol in (2, 4):
        path = tmp_path / f"evil{protocol}.pth"
        with open(path, "wb") as handle:
            pickle.dump({"features.0.0.weight": _RunsCode()}, handle, protocol=protocol)
        files.append(path)
    torch.save({"w": _RunsCode()}, tmp_path / "evil_zip.pth")
    files.append(tmp_path / "evil_zip.pth")
    for path in files:
        with pytest.raises(WeightsError) as info:
            build_model("mobilenet_v2", str(path), 10)
        assert str(path) in str(info.value)
    assert not (tmp_path / "code-ran").exists()
    with pytest.raises(WeightsError, match=r"holds a Python object \(posix.system\).*refuses "
                                           "to unpickle it because that can run code"):
        build_model("mobilenet_v2", str(tmp_path / "evil_zip.pth"), 10)


def test_truncated_and_non_state_dict_files(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(_random_state("mobilenet_v2", seed=0), good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="cut.pth cannot be read: it is truncated, corrupt"):
        build_model("mobilenet_v2", str(cut), 10)
    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    with pytest.raises(WeightsError, match="cannot be read"):
        build_model("mobilenet_v2", str(text), 10)
    listing = tmp_path / "list.pth"
    torch.save([1, 2, 3], listing)
    with pytest.raises(WeightsError, match="does not hold a state_dict"):
        build_model("mobilenet_v2", str(listing), 10)


def test_unknown_names_and_missing_files():
    with pytest.raises(WeightsError, match="neither a torchvision weights name of mobilenet_v2 "
                                           r"\(IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT\)"):
        resolve_weights("mobilenet_v2", "IMAGENET1K_V9")
    with pytest.raises(WeightsError, match="weights file .*nowhere/w.pth does not exist"):
        resolve_weights("mobilenet_v2", "/nowhere/w.pth")


def test_count_parameters_counts_frozen_separately():
    model = build_model("mobilenet_v3_small", None, 4, pretrained=False).model
    trainable, total = count_parameters(model)
    assert trainable == total == sum(p.numel() for p in model.parameters())
    for p in model.features.parameters():
        p.requires_grad_(False)
    trainable, total2 = count_parameters(model)
    assert total2 == total
    assert trainable == sum(p.numel() for p in model.classifier.parameters())


def test_adapter_lookup_error_lists_architectures():
    with pytest.raises(Exception, match="choose one of: .*mobilenet_v2.*resnet50"):
        get_adapter("alexnet")
