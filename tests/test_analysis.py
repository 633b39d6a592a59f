"""ftlab diff: per-layer parameter comparison and linear CKA, checked against known answers."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torchvision

import ftlab
from ftlab.analysis import DiffResult, cka, diff
from ftlab.analysis.params import compare, subspace_similarity
from ftlab.cli import main
from ftlab.config import DiffConfig
from ftlab.errors import ConfigError, WeightsError


def _state(seed: int = 0, arch: str = "mobilenet_v2", classes: int = 4) -> dict:
    torch.manual_seed(seed)
    return torchvision.models.get_model(arch, num_classes=classes).state_dict()


def test_identical_networks_have_cosine_one_and_no_change():
    state = _state()
    rows = compare(state, {k: v.clone() for k, v in state.items()}, "classifier.1")
    assert rows and all(r.weight_cosine == pytest.approx(1.0) for r in rows)
    assert all(r.relative_change == 0.0 and r.norm_ratio == pytest.approx(1.0) for r in rows)
    assert all(r.bias_cosine in (None, pytest.approx(1.0)) for r in rows)
    convs = [r for r in rows if r.kind == "conv"]
    assert all(r.subspace_similarity == pytest.approx(1.0) for r in convs)


def test_known_perturbations_give_known_values():
    b = _state()
    a = {k: v.clone() for k, v in b.items()}
    a["features.0.0.weight"] *= 1.1                         # scaled by 1.1
    w = b["features.2.conv.0.0.weight"].double()
    noise = torch.randn_like(w)
    noise -= (noise.flatten() @ w.flatten()) / (w.norm() ** 2) * w   # orthogonal to w
    noise *= 0.5 * w.norm() / noise.norm()                  # ||noise|| = 0.5 ||w||
    a["features.2.conv.0.0.weight"] = (w + noise).float()
    a["features.3.conv.2.weight"] = b["features.3.conv.2.weight"][torch.randperm(24)]  # permuted
    rows = {r.layer: r for r in compare(a, b, "classifier.1")}
    scaled = rows["features.0.0"]
    assert scaled.weight_cosine == pytest.approx(1.0)
    assert scaled.relative_change == pytest.approx(0.1, rel=1e-5)
    assert scaled.norm_ratio == pytest.approx(1.1, rel=1e-5)
    orthogonal = rows["features.2.conv.0.0"]
    assert orthogonal.relative_change == pytest.approx(0.5, rel=1e-4)
    assert orthogonal.weight_cosine == pytest.approx(1 / math.sqrt(1.25), rel=1e-4)
    permuted = rows["features.3.conv.2"]
    assert permuted.weight_cosine < 0.5                    # looks very different ...
    assert permuted.subspace_similarity == pytest.approx(1.0, abs=1e-6)  # ... computes the same
    assert rows["features.4.conv.0.0"].relative_change == 0.0


def test_subspace_similarity_of_unrelated_filters_is_low():
    torch.manual_seed(0)
    x, y = torch.randn(16, 64).double(), torch.randn(16, 64).double()
    assert subspace_similarity(x, y, 4) < 0.6
    rotation, _ = torch.linalg.qr(torch.randn(16, 16).double())
    assert subspace_similarity(x, rotation @ x, 4) == pytest.approx(1.0)


def test_cka_invariances():
    torch.manual_seed(0)
    x = torch.randn(60, 40).double()
    q, _ = torch.linalg.qr(torch.randn(40, 40).double())
    assert cka(x, x) == pytest.approx(1.0)
    assert cka(x, x @ q) == pytest.approx(1.0)               # orthogonal transform
    assert cka(x, 7.5 * x) == pytest.approx(1.0)             # isotropic scaling
    assert cka(x, x @ q * 0.3 + 2.0) == pytest.approx(1.0)   # plus a shift: features are centred
    stretch = torch.diag(torch.logspace(-2, 2, 40).double())
    assert cka(x, x @ stretch) < 0.9                         # not an arbitrary linear map
    assert cka(x, torch.randn(60, 40).double()) < 0.5


def test_bias_training_changes_biases_and_no_weight(tiny, tmp_path):
    start = tmp_path / "pretrained.pth"
    state = _state(seed=7, classes=1000)
    generator = torch.Generator().manual_seed(7)
    for key, tensor in state.items():  # torchvision's BatchNorm biases start at 0, which
        if key.endswith(".bias"):      # has no cosine: give each layer a bias to move
            tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
    torch.save(state, start)
    summary = ftlab.train(None, overrides=tiny(**{"strategy.name": "bias",
                                                  "model.weights": start}))
    result = diff(DiffConfig(summary["run_dir"], f"pretrained:{start}", probe_size=8),
                  out_dir=tmp_path / "diff")
    backbone = [r for r in result.rows if not r.head]
    assert backbone and not any(r.layer.startswith("classifier") for r in backbone)
    for row in backbone:
        assert row.relative_change == 0.0 and row.weight_cosine == pytest.approx(1.0), row.layer
    changed = [r for r in backbone if r.bias_cosine is not None and r.bias_cosine < 1 - 1e-9]
    with_bias = sum(r.bias_cosine is not None for r in backbone)
    assert with_bias == 52 and len(changed) >= 0.9 * with_bias  # every BatchNorm of 52
    assert result.cka is not None and len(result.cka) == len(result.blocks) == 19
    assert result.cka[0][0] == pytest.approx(1.0, abs=0.05)  # same first block weights
    written = json.loads((tmp_path / "diff" / "diff.json").read_text())
    assert written["layers"][0]["layer"] == "features.0.0"
    assert len(written["cka"]) == 19
    figure = json.loads((tmp_path / "diff" / "layers.json").read_text())
    assert figure["bias cosine"]["layers"] == [r.layer for r in result.rows
                                               if not r.note and r.bias_cosine is not None]
    for name in ("layers.csv", "layers.png", "layers.svg", "cka.png", "summary.md"):
        assert (tmp_path / "diff" / name).stat().st_size > 0


def test_reference_shows_which_layers_moved(tiny, tmp_path):
    start = tmp_path / "pretrained.pth"
    torch.save(_state(seed=3, classes=1000), start)
    tuned = ftlab.train(None, overrides=tiny(**{"strategy.name": "last_k", "strategy.k": 2,
                                                "model.weights": start,
                                                "train.run_name": "tuned"}))
    scratch = ftlab.train(None, overrides=tiny(**{"strategy.name": "scratch",
                                                  "model.weights": start,
                                                  "train.run_name": "scratch"}))
    assert main(["diff", tuned["run_dir"], scratch["run_dir"], "--ref", f"pretrained:{start}",
                 "--output-dir", str(tmp_path / "d"), "--probe-size", "8"]) == 0
    rows = {r["layer"]: r for r in json.loads((tmp_path / "d" / "diff.json").read_text())
            ["layers"]}
    assert rows["features.0.0"]["a_moved"] == 0.0        # last_k left the stem alone ...
    assert rows["features.18.0"]["a_moved"] > 0.0       # ... and trained the top
    assert rows["features.0.0"]["b_moved"] > 0.1        # scratch never was the reference
    assert "moved most" in (tmp_path / "d" / "summary.md").read_text()


def test_different_heads_and_architectures(tiny, tmp_path):
    four = ftlab.train(None, overrides=tiny(**{"train.run_name": "four", "train.epochs": 1}))
    three = ftlab.train(None, overrides=tiny(**{"train.run_name": "three", "train.epochs": 1,
                                                "data.synthetic.num_classes": 3}))
    result = diff(DiffConfig(four["run_dir"], three["run_dir"]))
    head = next(r for r in result.rows if r.head)
    assert "shapes differ" in head.note and head.weight_cosine is None
    resnet = tmp_path / "resnet.pth"
    torch.save(_state(arch="resnet18"), resnet)
    with pytest.raises(WeightsError, match="different architectures: 'features.0.0.weight' is "
                                           "in the first but not the second"):
        diff(DiffConfig(four["run_dir"], str(resnet)))
    other = ftlab.train(None, overrides=tiny(**{"train.run_name": "res", "train.epochs": 1,
                                                "model.arch": "resnet18"}))
    assert main(["diff", four["run_dir"], other["run_dir"]]) == 2
    with pytest.raises(WeightsError, match="is neither a run folder"):
        diff(DiffConfig(four["run_dir"], str(tmp_path / "nothing")))


def test_diff_flags_and_overrides_fill_one_config(tmp_path, monkeypatch):
    """The flags mean what they did; `key=value` overrides (after the flags or among them)
    set the same fields and win over a flag, as for `ftlab memory`."""
    import ftlab.analysis

    seen: list[tuple[DiffConfig, object]] = []

    def fake(config: DiffConfig, out_dir):
        seen.append((config, out_dir))
        out_dir.mkdir()
        (out_dir / "summary.md").write_text("summary\n", encoding="utf-8")
        return DiffResult([], None, [])

    monkeypatch.setattr(ftlab.analysis, "diff", fake)
    assert main(["diff", "A", "B", "--probe", "P", "--probe-size", "16", "--k", "4",
                 "--output-dir", str(tmp_path / "d")]) == 0
    assert main(["diff", "A", "B", "--ref", "R", "--probe-size", "16", "probe_size=32", "k=3",
                 "--output-dir", str(tmp_path / "e"), "probe=Q"]) == 0
    assert main(["diff", "A", "B", "--output-dir", str(tmp_path / "f")]) == 0
    assert seen == [(DiffConfig("A", "B", probe="P", probe_size=16, k=4), tmp_path / "d"),
                    (DiffConfig("A", "B", ref="R", probe="Q", probe_size=32, k=3),
                     tmp_path / "e"),
                    (DiffConfig("A", "B", probe_size=64, k=8), tmp_path / "f")]


@pytest.mark.parametrize("args, message", [
    (["--k", "0"], "diff.k=0 is not allowed: an integer in [1, 4096]"),
    (["k=5000"], "diff.k=5000 is not allowed: an integer in [1, 4096]"),
    (["--probe-size", "-3"], "diff.probe_size=-3 is not allowed: an integer in [1, 100000]"),
    (["probe_size=100001"], "diff.probe_size=100001 is not allowed"),
    (["k=two"], "'k'"),
    (["--ref", " "], "diff.ref=' ' is not allowed: a run folder, a checkpoint file or "
                     "pretrained:<weights>"),
    (["probes=3"], "unknown config key 'probes' (did you mean 'probe' or 'probe_size'?); "
                   "valid keys in the top level: a, b, ref, probe, probe_size, k"),
])
def test_diff_settings_out_of_bounds_exit_2_before_reading_anything(tmp_path, capsys, args,
                                                                     message):
    # A and B do not exist: the settings are refused before either is looked at.
    code = main(["diff", str(tmp_path / "no-a"), str(tmp_path / "no-b"), *args,
                 "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ftlab: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match=r"diff.k=0 is not allowed"):
        DiffConfig("a", "b", k=0)
