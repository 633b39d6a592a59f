"""Training augmentations by name (`data.augment`), the rule behind `auto`, and what a run
folder records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ftlab.assembly import resolve_config
from ftlab.assembly.loaders import resolve_pipeline
from ftlab.config import config_to_yaml, load_config, load_run_config
from ftlab.data import AUGMENTATIONS, AUTO_RULE, build_data, check_augment, choose_augment
from ftlab.data.device_pipeline import DeviceBatches, in_memory, shifted_boxes
from ftlab.data.transforms import InputSpec
from ftlab.errors import ConfigError
from ftlab.preprocessing import Preprocessing


def _data(*overrides: str, epochs: int = 1):
    config = load_config(None, ["data.name=synthetic", "data.resolution=24",
                                "data.synthetic.train_per_class=4", *overrides])
    return build_data(config.data, Preprocessing(), epochs=epochs)


def _noise_folder(root: Path) -> Path:
    """Images of random pixels: no augmentation can leave one unchanged by chance."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
            for i in range(8):
                Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
                    root / split / name / f"{i}.png")
    return root


def _folder_data(root: Path, *overrides: str):
    config = load_config(None, ["data.name=imagefolder", f"data.root={root}",
                                "data.resolution=24", "data.val_fraction=0", *overrides])
    return build_data(config.data, Preprocessing())


def _samples(subset, seed: int, n: int = 6) -> torch.Tensor:
    return torch.stack([subset[(i, seed + i)][0] for i in range(n)])


def _evaluation_views(data) -> torch.Tensor:
    return torch.stack([data.test.transform(data.train.base[i][0]) for i in data.train.indices])


def test_none_is_the_evaluation_view_and_flip_its_mirror_image(tmp_path):
    root = _noise_folder(tmp_path)
    plain, data = _folder_data(root, "data.augment=none"), _folder_data(root, "data.augment=flip")
    reference = _evaluation_views(data)
    assert torch.equal(_samples(plain.train, seed=3, n=16), reference)
    flipped = _samples(data.train, seed=3, n=16)
    same = [torch.equal(a, b) for a, b in zip(flipped, reference)]
    mirrored = [torch.equal(a, b.flip(-1)) for a, b in zip(flipped, reference)]
    assert all(s != m for s, m in zip(same, mirrored))
    assert any(mirrored) and not all(mirrored)


def test_crop_shifts_the_evaluation_view_over_a_zero_padded_image(tmp_path):
    data = _folder_data(_noise_folder(tmp_path), "data.augment=crop",
                        "data.eval_crop_fraction=1.0", "data.mean=[0,0,0]", "data.std=[1,1,1]")
    side, pad = 24, 3
    padded = torch.nn.functional.pad(_evaluation_views(data)[0], (pad,) * 4)  # 0 is black
    shifts = set()
    for seed in range(40):
        out = data.train[(0, seed)][0]
        matches = [(top, left) for top in range(2 * pad + 1) for left in range(2 * pad + 1)
                   for view in [padded[:, top:top + side, left:left + side]]
                   if torch.equal(out, view) or torch.equal(out, view.flip(-1))]
        assert len(matches) == 1, f"seed {seed}: not one shifted crop of the padded view"
        shifts.add(matches[0])
    assert len(shifts) > 10  # the shift really varies


def test_rrc_and_policies_crop_at_random_and_keep_the_resolution():
    for name in ("rrc", "randaugment", "trivialaugment"):
        data = _data(f"data.augment={name}")
        a, b = _samples(data.train, seed=1), _samples(data.train, seed=2)
        assert a.shape == (6, 3, 24, 24) and not torch.equal(a, b)
        assert torch.equal(a, _samples(data.train, seed=1))  # seeded per sample


def test_auto_follows_the_measured_rule_and_the_run_config_records_the_choice():
    auto = load_config(None).data
    for most, name in AUTO_RULE[:-1]:
        assert choose_augment(auto, int(most)).name == name
        assert choose_augment(auto, int(most) + 1).name != name
    assert choose_augment(auto, 10_000).name == AUTO_RULE[-1][1]
    short = resolve_config(load_config(None, ["train.epochs=1"]))
    long = resolve_config(load_config(None, ["train.epochs=1000"]))
    assert short.data.augment == AUTO_RULE[0][1] and long.data.augment == AUTO_RULE[-1][1]
    chosen = resolve_config(load_config(None, ["train.epochs=1000", "data.augment=none"]))
    assert chosen.data.augment == "none"
    assert "augment: none" in config_to_yaml(chosen)


def test_evaluation_sees_the_whole_image_when_training_does_and_the_weights_crop_otherwise():
    fraction = Preprocessing().crop_fraction
    assert fraction < 1.0  # the weights' 0.875: the two cases below differ

    def run(*overrides: str):
        config = resolve_config(load_config(None, ["data.name=synthetic", "data.resolution=24",
                                                   *overrides]))
        return config.data, build_data(config.data, Preprocessing()).input.eval_resize

    for name, expected in [("none", 1.0), ("flip", 1.0), ("crop", 1.0), ("rrc", None),
                           ("randaugment", None), ("trivialaugment", None)]:
        data, resize = run(f"data.augment={name}")
        assert data.eval_crop_fraction == expected, name
        assert resize == (24 if expected else round(24 / fraction)), name
    assert run("train.epochs=1")[0].eval_crop_fraction == 1.0  # auto: flip
    data, resize = run("data.augment=flip", "data.eval_crop_fraction=0.5")
    assert data.eval_crop_fraction == 0.5 and resize == 48  # a set fraction is kept
    # Outside a training run (evaluating pretrained weights, old checkpoints) None stays the
    # weights' own crop.
    assert _data("data.augment=flip").input.eval_resize == round(24 / fraction)


def test_a_run_folder_written_before_data_augment_keeps_training_with_rrc(tmp_path):
    old = tmp_path / "config.yaml"
    old.write_text("data:\n  name: synthetic\ntrain:\n  epochs: 2\n")
    assert load_run_config(old).data.augment == "rrc"
    assert load_run_config(old, ["data.augment=flip"]).data.augment == "flip"
    new = tmp_path / "new.yaml"
    new.write_text("data:\n  augment: crop\n")
    assert load_run_config(new).data.augment == "crop"
    assert load_config(old).data.augment == "auto"  # a config file is not a run folder


def test_bad_augment_settings_fail_with_one_line():
    with pytest.raises(ConfigError, match="data.augment='mixup' is unknown; choose one of:"):
        resolve_config(load_config(None, ["data.augment=mixup"]))
    with pytest.raises(ConfigError, match="data.augment=flip with data.hflip=false"):
        check_augment(load_config(None, ["data.augment=flip", "data.hflip=false"]).data)
    check_augment(load_config(None, ["data.augment=crop", "data.hflip=false"]).data)
    with pytest.raises(ConfigError, match=r"data.train_crop_scale=\[0.08, 1.0\] is not used "
                                          "by data.augment=crop"):
        resolve_config(load_config(None, ["data.augment=crop", "data.train_crop_scale=[0.08,1]"]))


def test_a_crop_scale_makes_auto_crop_so_that_searching_it_means_something():
    wide = resolve_config(load_config(None, ["train.epochs=1", "data.train_crop_scale=[0.08,1]"]))
    assert wide.data.augment == "rrc"
    default = resolve_config(load_config(None, ["train.epochs=1",
                                                "data.train_crop_scale=[0.35,1]"]))
    assert default.data.augment == AUTO_RULE[0][1]


def test_per_image_policies_run_in_the_worker_pipeline():
    data = _data("data.augment=randaugment")
    with pytest.raises(ConfigError, match="set data.pipeline=workers"):
        DeviceBatches(*in_memory(data.train), 4, data.input, train=True,
                      augmentation=data.augmentation)
    cuda = torch.device("cuda")
    for name, pipeline in (("randaugment", "workers"), ("rrc", "device"), ("flip", "device")):
        config = load_config(None, ["data.name=cifar10", f"data.augment={name}"])
        assert resolve_pipeline(config, cuda) == pipeline
    assert {a.on_device for a in (AUGMENTATIONS.get(n) for n in AUGMENTATIONS)} == {True, False}


def test_shifted_boxes_move_the_evaluation_box_by_whole_output_pixels():
    spec = InputSpec(resolution=64, eval_resize=73, mean=(0, 0, 0), std=(1, 1, 1))
    generator = torch.Generator().manual_seed(0)
    boxes = shifted_boxes(500, 32, 32, spec, generator)
    scale = 32 / 73
    assert torch.allclose(boxes[:, 2] - boxes[:, 0], torch.full((500,), 64 * scale))
    offsets = boxes[:, :2] / scale
    assert torch.allclose(offsets, offsets.round(), atol=1e-4)
    assert offsets.min() == -8 and offsets.max() == 73 + 8 - 64
