"""Using a trained network: `ftlab eval`, `ftlab predict`, `ftlab export`, and evaluating a
pretrained network with its own ImageNet head (`model.head=keep`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.models import get_model

import ftlab
from fake_datasets import make_imagenet
from ftlab.cli import main
from ftlab.errors import ConfigError, DataError, WeightsError
from ftlab.inference import evaluate, load_target
from ftlab.inference.predict import predict
from ftlab.models import imagenet_classes

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def make_folder(root: Path, per_class: int = 6, test_per_class: int = 3) -> Path:
    """An ImageFolder of three colours with train/ and test/, noisy so that no two images
    are alike."""
    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", per_class), ("test", test_per_class)):
        for name, colour in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                noise = torch.randint(-40, 40, (20, 20, 3), generator=generator)
                pixels = (torch.tensor(colour) + noise).clamp(0, 255).to(torch.uint8)
                Image.fromarray(pixels.numpy()).save(folder / f"{i}.png")
    return root


def folder_run(tiny, root: Path, **extra) -> dict:
    return ftlab.train(None, overrides=tiny(**{"data.name": "imagefolder",
                                               "data.root": str(root), **extra}))


@pytest.mark.parametrize("strategy", ["full", "tinytl", "bias"])
def test_eval_reproduces_the_runs_own_test_numbers(tiny, tmp_path, strategy):
    """Best checkpoint, last epoch's state and memory-efficient execution as the run had
    them: the summary's test top-1 and top-5 come out exactly, and the files agree."""
    summary = ftlab.train(None, overrides=tiny(**{"strategy.name": strategy,
                                                  "train.run_name": strategy}))
    result = evaluate(summary["run_dir"], output_dir=tmp_path / "eval")
    record = result.record
    assert (record.top1, record.top5) == (summary["test_top1"], summary["test_top5"])
    assert record.loss == pytest.approx(summary["test_loss"], rel=1e-5)
    assert record.images == summary["split_sizes"]["test"] == 16
    per_class = list(csv.DictReader((tmp_path / "eval" / "per_class.csv").open()))
    assert sum(int(r["images"]) for r in per_class) == 16
    confusion = list(csv.reader((tmp_path / "eval" / "confusion.csv").open()))
    assert confusion[0][-1] == "other" and len(confusion) == 1 + 4
    diagonal = sum(int(row[1 + i]) for i, row in enumerate(confusion[1:]))
    assert diagonal == round(record.top1 * 16 / 100)
    predictions = list(csv.DictReader((tmp_path / "eval" / "predictions.csv").open()))
    assert sum(int(p["correct"]) for p in predictions) == diagonal
    assert 0.0 <= record.ece <= 100.0
    saved = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert saved["top1"] == record.top1 and saved["target"]["strategy"] == strategy
    for name in ("confusion.png", "confusion.svg", "reliability.png", "reliability.json"):
        assert (tmp_path / "eval" / name).stat().st_size > 0


def test_eval_other_split_and_refusals(tiny, tmp_path, capsys):
    summary = ftlab.train(None, overrides=tiny(**{"train.run_name": "run"}))
    run = summary["run_dir"]
    capsys.readouterr()
    val = evaluate(run, split="val", output_dir=tmp_path / "val").record
    assert val.top1 == summary["best_val_top1"] and val.split == "val"
    assert main(["eval", run, "--output-dir", str(tmp_path / "val")]) == 2
    assert "already holds the output of an earlier `ftlab eval`" in capsys.readouterr().err
    assert main(["eval", run, "--output-dir", str(tmp_path / "val"), "--overwrite",
                 "--split", "train"]) == 0
    assert "on synthetic train" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="model.arch cannot change for a trained network"):
        evaluate(run, overrides=["model.arch=resnet18"])
    with pytest.raises(DataError, match=r"2 are unknown to it \(class_4, class_5\)"):
        evaluate(run, overrides=["data.synthetic.num_classes=6"], output_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()  # refused before anything was written
    with pytest.raises(WeightsError, match="neither a run folder, a checkpoint file"):
        load_target(str(tmp_path / "absent"))
    with pytest.raises(WeightsError, match="holds no best.pt or last.pt"):
        load_target(str(tmp_path))
    plain = tmp_path / "plain.pth"
    torch.save(get_model("mobilenet_v2", num_classes=4).state_dict(), plain)
    with pytest.raises(WeightsError, match="a plain state_dict, not an ftlab checkpoint"):
        load_target(str(plain))


def test_eval_on_data_with_the_classes_in_another_order(tiny, tmp_path):
    """Classes are matched by name: a subset of them, in any order, evaluates correctly.
    One image a batch, so each image is computed alike in both evaluations (a batch of
    other images may round a near-tie the other way)."""
    root = make_folder(tmp_path / "colours")
    summary = folder_run(tiny, root, **{"train.run_name": "colours", "train.epochs": 3})
    alone = "train.eval_batch_size=1"
    full = evaluate(summary["run_dir"], overrides=[alone], output_dir=tmp_path / "all").record
    subset = make_folder(tmp_path / "two")
    for split in ("train", "test"):
        (subset / split / "green").rename(subset / split / "a-green")  # sorts first now
        for item in (subset / split / "blue").iterdir():
            item.unlink()
        (subset / split / "blue").rmdir()
    with pytest.raises(DataError, match=r"1 are unknown to it \(a-green\)"):
        evaluate(summary["run_dir"], overrides=[f"data.root={subset}"],
                 output_dir=tmp_path / "bad")
    (subset / "train" / "a-green").rename(subset / "train" / "green")
    (subset / "test" / "a-green").rename(subset / "test" / "green")
    part = evaluate(summary["run_dir"], overrides=[f"data.root={subset}", alone],
                    output_dir=tmp_path / "part").record
    rows = {r["class"]: r for r in full.per_class}
    assert {r["class"]: r["top1"] for r in part.per_class} == \
        {name: rows[name]["top1"] for name in ("green", "red")}


def test_predict_matches_eval_image_for_image(tiny, tmp_path, capsys):
    root = make_folder(tmp_path / "colours")
    summary = folder_run(tiny, root, **{"strategy.name": "tinytl", "train.run_name": "t"})
    # Batches of 4 in both, in the same (sorted) order: each image computed alike.
    evaluate(summary["run_dir"], overrides=["train.eval_batch_size=4"],
             output_dir=tmp_path / "eval")
    rows = {r["path"]: r for r in csv.DictReader((tmp_path / "eval" / "predictions.csv").open())}
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    inputs = [str(root / "test"), str(bad), str(tmp_path / "absent.png")]
    results = list(predict(summary["run_dir"], inputs, top_k=2, batch_size=4, workers=0))
    assert [r.path for r in results[:-2]] == sorted(rows)  # folder order, then the others
    for result in results[:-2]:
        assert result.error is None and len(result.top) == 2
        assert result.top[0][0] == rows[result.path]["predicted"]
        assert f"{result.top[0][1]:.6f}" == rows[result.path]["confidence"]
        assert result.top[0][1] >= result.top[1][1]
    assert "not a readable image" in results[-2].error or "not an image" in results[-2].error
    assert results[-1].error == "no such file or folder"
    capsys.readouterr()
    assert main(["predict", summary["run_dir"], str(root / "test" / "red"), "--format",
                 "jsonl", "--top-k", "9"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3 and len(lines[0]["predictions"]) == 3  # k capped at the classes
    assert main(["predict", summary["run_dir"], str(bad), str(root / "test" / "red" / "0.png"),
                 "--format", "csv"]) == 1
    out, err = capsys.readouterr()
    table = list(csv.DictReader(out.splitlines()))
    assert table[0]["error"] and table[0]["path"] == str(bad)
    assert [row["rank"] for row in table[1:]] == ["1", "2", "3"]
    assert err.strip() == "ftlab: 1 of 2 inputs could not be read (see their lines)"


@pytest.mark.parametrize("strategy", ["full", "tinytl"])
def test_export_runs_the_same_network_without_ftlab(tiny, tmp_path, strategy, capsys):
    """ONNX under onnxruntime (another batch size than traced), TorchScript in a fresh
    process and safetensors into torchvision's model: the logits PyTorch computes."""
    pytest.importorskip("onnxruntime")
    import onnxruntime

    root = make_folder(tmp_path / "colours")
    summary = folder_run(tiny, root, **{"strategy.name": strategy, "train.run_name": "r"})
    run = summary["run_dir"]
    capsys.readouterr()
    network = ftlab.inference.build_network(load_target(run))
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = network(images)
    for fmt in ("onnx", "torchscript", "safetensors"):
        out = tmp_path / f"model.{fmt}"
        assert main(["export", run, "--format", fmt, "--output", str(out)]) == 0
        assert "same top-1 on every image" in capsys.readouterr().out
        sidecar = json.loads((tmp_path / f"model.{fmt}.json").read_text())
        assert sidecar["classes"] == ["blue", "green", "red"]
        # The run trained on whole images (auto: flip at its budget), so it evaluates whole
        # images: resize to 32, crop 32 (the weights' 0.875 would resize to 37).
        assert sidecar["input"]["size"] == [32, 32] and sidecar["input"]["resize"] == 32
        assert sidecar["check"]["images"] == 9 and sidecar["check"]["same_top1"]
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    logits = session.run(None, {"images": images.numpy()})[0]
    assert torch.allclose(torch.from_numpy(logits), expected, atol=1e-4)
    script = torch.jit.load(str(tmp_path / "model.torchscript"))
    assert torch.allclose(script(images), expected, atol=1e-5)
    if strategy == "full":  # plain torchvision weights: nothing of ftlab to load them
        from safetensors.torch import load_file

        plain = get_model("mobilenet_v2", num_classes=3).eval()
        plain.load_state_dict(load_file(str(tmp_path / "model.safetensors")), strict=True)
        assert torch.allclose(plain(images), expected, atol=1e-6)
    before = (tmp_path / "model.onnx").read_bytes()
    assert main(["export", run, "--format", "onnx", "--output", str(tmp_path / "model.onnx")]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "model.onnx").read_bytes() == before
    assert main(["export", run, "--format", "tflite"]) == 2
    assert "--format='tflite' is unknown" in capsys.readouterr().err


def imagenet_weights(path: Path, favourite: int) -> Path:
    """MobileNetV2 weights whose ImageNet head always answers class `favourite`."""
    state = get_model("mobilenet_v2", num_classes=1000).state_dict()
    state["classifier.1.weight"].zero_()
    state["classifier.1.bias"].zero_()
    state["classifier.1.bias"][favourite] = 10.0
    torch.save(state, path)
    return path


def test_pretrained_head_on_an_imagenet_layout_folder(tmp_path):
    """model.head=keep: the 1000-class head, its outputs matched to the data's classes by
    WordNet id, for torchvision's ImageNet layout and for an image folder of wnid folders."""
    wnids, names = imagenet_classes()
    chosen = [wnids[1], wnids[7], wnids[500], wnids[999]]
    make_imagenet(tmp_path / "imagenet", chosen, train_per_class=2, val_per_class=3)
    weights = imagenet_weights(tmp_path / "w.pth", favourite=7)
    common = ["model.head=keep", "data.resolution=32", "data.num_workers=0",
              f"data.root={tmp_path / 'imagenet'}"]
    for data in ("imagenet", "imagefolder"):
        record = evaluate(f"pretrained:{weights}", overrides=[*common, f"data.name={data}"],
                          output_dir=tmp_path / f"eval-{data}").record
        assert record.images == 12 and record.top1 == 25.0  # every image called wnids[7]
        top1 = [r["top1"] for r in record.per_class]
        assert top1 == [0.0, 100.0, 0.0, 0.0]
        predicted = {p["predicted"] for p in csv.DictReader(
            (tmp_path / f"eval-{data}" / "predictions.csv").open())}
        assert predicted == {wnids[7]}
    elsewhere = imagenet_weights(tmp_path / "w2.pth", favourite=300)
    record = evaluate(f"pretrained:{elsewhere}", overrides=[*common, "data.name=imagenet"],
                      output_dir=tmp_path / "other").record
    assert record.top1 == 0.0 and record.most_confused[0]["predicted"] == "other"
    found = list(predict(f"pretrained:{weights}", [str(tmp_path / "imagenet" / "val")],
                         overrides=["model.head=keep", "data.resolution=32"], top_k=1))
    assert {p.top[0][0] for p in found} == {names[7]} and len(found) == 12


def test_pretrained_head_refusals(tiny, tmp_path):
    weights = imagenet_weights(tmp_path / "w.pth", favourite=3)
    root = make_folder(tmp_path / "colours")
    with pytest.raises(DataError, match="the pretrained head's classes are ImageNet-1k's "
                                        "WordNet ids, and 3 of the 3 classes"):
        evaluate(f"pretrained:{weights}", overrides=[
            "model.head=keep", "data.name=imagefolder", f"data.root={root}",
            "data.resolution=32"], output_dir=tmp_path / "e")
    with pytest.raises(ConfigError, match="set model.head=keep to evaluate the head"):
        load_target(f"pretrained:{weights}")
    with pytest.raises(ConfigError, match="model.head=keep is for ftlab eval"):
        ftlab.train(None, overrides=tiny(**{"model.head": "keep"}))
    with pytest.raises(WeightsError, match="neither a torchvision weights name"):
        load_target("pretrained:IMAGENET9K", ["model.head=keep"])


class _RunsCode:
    marker = ""

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_targets_that_would_run_code_are_refused(tmp_path, capsys):
    """eval, predict and export read checkpoints and weights with weights_only=True: a
    pickle that would run code is refused in one line, and nothing runs or is written."""
    _RunsCode.marker = str(tmp_path / "code-ran")
    evil = tmp_path / "evil.pt"
    torch.save({"format": "ftlab-checkpoint/1", "model": _RunsCode()}, evil)
    commands = [["eval", str(evil), "--output-dir", str(tmp_path / "e")],
                ["predict", str(evil), str(tmp_path)],
                ["export", str(evil), "--format", "safetensors", "--output",
                 str(tmp_path / "m.safetensors")],
                ["eval", f"pretrained:{evil}", "model.head=keep", "--output-dir",
                 str(tmp_path / "p")]]
    for argv in commands:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "refuses to unpickle it because that can run code" in err
    assert not (tmp_path / "code-ran").exists()
    assert not any((tmp_path / name).exists() for name in ("e", "p", "m.safetensors"))


def test_confusion_figure_names_every_one_of_200_classes():
    from ftlab.inference.figures import draw_confusion

    classes = [f"{i:03d}.Species_{i}" for i in range(200)]
    counts = torch.eye(200, 201, dtype=torch.long) * 20
    counts[5, 9] = 7
    figure = draw_confusion(counts, classes, "200 classes")
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == classes
    assert [t.get_text() for t in ax.get_xticklabels()] == [*classes, "other"]
    assert figure.get_size_inches()[0] > 20  # grows with the classes; the SVG zooms
    assert min(t.get_fontsize() for t in ax.get_yticklabels()) >= 3.0
