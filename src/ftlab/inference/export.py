"""`ftlab export`: the plain network as ONNX, TorchScript or safetensors, with a JSON sidecar
holding its class names and exact preprocessing, checked before it is kept.

The exported network is built from ordinary modules only: memory-efficient execution is a
training-time change of module classes and is not applied; TinyTL's lite-residual branches
are traced into the graph like any module. Each export is run on real images (the target's
own test images, or `check_images`) by its own runtime — onnxruntime for ONNX, `torch.jit.load`
in a fresh Python process for TorchScript, a fresh torchvision model for safetensors — and
kept only if its logits match PyTorch's within `TOLERANCE` with the same top-1 class (but on
near-ties, which round-off may decide either way).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ftlab.data import build_data
from ftlab.errors import ConfigError, DataError, ExportError, RunDirError
from ftlab.fileio import atomic_write_text, check_new_file
from ftlab.inference.predict import ImageFiles, image_files
from ftlab.inference.target import Target, build_network, load_target
from ftlab.registry import Registry
from ftlab.runfiles import EXPORT_SIDECAR_SUFFIX, READ_BACK
from ftlab.strategies import get_strategy
from ftlab.version import __version__

TOLERANCE = 1e-4
"""Largest absolute logit difference an export may show against PyTorch eager."""
CHECK_IMAGES = 64
SIDECAR_VERSION = 1


@dataclass(frozen=True)
class Exporter:
    """One format: how to write it, and how to run what was written."""

    name: str
    suffix: str
    modules: tuple[str, ...]
    """Python packages it needs (the `export` extra)."""
    write: Callable[[nn.Module, torch.Tensor, Path], None]
    run: Callable[[Path, torch.Tensor, Target], tuple[torch.Tensor, str]]
    """Logits of the written file on images, and the runtime that computed them."""


FORMATS: Registry[Exporter] = Registry("--format")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    sidecar: Path
    check: dict[str, Any]


def export(target: str | Target, fmt: str, output: str | Path | None = None, *,
           overrides: Sequence[str] = (), overwrite: bool = False,
           check_images: Sequence[str | Path] = ()) -> ExportResult:
    """Export `target` (a run folder, checkpoint or `pretrained:<weights>`) as `fmt`.

    Args:
        output: The model file (default `<target label><suffix>` here); its sidecar is
            `output + ".json"`. Neither may exist unless `overwrite`.
        check_images: Image files or folders for the check (default: up to 64 images of the
            target's test split).

    Raises:
        ExportError: the export failed or does not compute what PyTorch computes; nothing
            is written then.
    """
    exporter = FORMATS.get(fmt)
    _require(exporter)
    target = target if isinstance(target, Target) else load_target(target, overrides)
    path = check_new_file(f"{target.label}{exporter.suffix}" if output is None else output,
                          overwrite, "output", protected=READ_BACK)
    if path.exists() and Path(target.source).exists() and path.samefile(target.source):
        raise RunDirError(f"output {path} is the checkpoint being exported, which --overwrite "
                          "never replaces; choose another path")
    sidecar = check_new_file(f"{path}{EXPORT_SIDECAR_SUFFIX}", overwrite, "sidecar",
                             protected=READ_BACK)
    model = build_network(target)
    images, inputs = _check_batch(target, check_images)
    with torch.no_grad():
        reference = model(images)
    model = plain_network(target, model, exporter.name)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        _quietly(lambda: exporter.write(model, images, temporary))
        logits, runtime = _quietly(lambda: exporter.run(temporary, images, target))
        check = _compare(logits, reference, runtime, inputs, exporter.name)
        os.replace(temporary, path)
        os.chmod(path, 0o666 & ~_umask())  # some writers create files private to the owner
    finally:
        temporary.unlink(missing_ok=True)
    atomic_write_text(sidecar, json.dumps(describe(target, exporter, path, check), indent=1)
                      + "\n")
    return ExportResult(path, sidecar, check)


def plain_network(target: Target, model: nn.Module, fmt: str) -> nn.Module:
    """`model` as its strategy exports it (PEFT adapters merged into their weights), checked
    with the rest of the export against the unmerged network's logits. Where merging is
    impossible, the formats that run the graph (onnx, torchscript) keep the adapters as
    side paths; safetensors, whose file is only weights, needs the merge."""
    if target.kind == "pretrained":
        return model
    try:
        return get_strategy(target.config.strategy).export_network(model)
    except ExportError as err:
        if fmt == "safetensors":
            raise
        warnings.warn(f"{err}; the {fmt} file keeps the adapters", stacklevel=2)
        return build_network(target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _require(exporter: Exporter) -> None:
    missing = [name for name in exporter.modules if not _importable(name)]
    if missing:
        raise ConfigError(f"--format {exporter.name} needs {', '.join(missing)}, which is not "
                          "installed: pip install 'ftlab[export]'")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _quietly(work: Callable[[], Any]) -> Any:
    """Exporters print progress and deprecation notes; a failure becomes one line."""
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return work()
    except ExportError:
        raise
    except Exception as err:  # noqa: BLE001 - each exporter raises its own errors
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else \
            type(err).__name__
        raise ExportError(f"the export failed ({type(err).__name__}: {reason}); nothing was "
                          "written") from err


def _check_batch(target: Target, files: Sequence[str | Path]) -> tuple[torch.Tensor, str]:
    """Real images in the target's evaluation preprocessing, and where they came from."""
    from ftlab.data import eval_transform

    if files:
        dataset = ImageFiles(image_files(files)[:CHECK_IMAGES],
                             eval_transform(target.input_spec()))
        images = [dataset[i][1] for i in range(len(dataset))]
        kept = [image for image in images if image is not None]
        if not kept:
            raise DataError("--check-images: none of the given files is a readable image")
        return torch.stack(kept), f"{len(kept)} given images"
    try:
        data = build_data(target.config.data, target.preprocessing())
    except DataError as err:
        raise DataError(f"the export is checked on real images, and the target's data cannot "
                        f"be read ({err}); pass --check-images FILES_OR_FOLDERS") from None
    count = min(CHECK_IMAGES, len(data.test))
    samples = [data.test[i] for i in range(count)]
    images = [s[0] for s in samples if s is not None]
    return torch.stack(images), f"{len(images)} images of the {target.config.data.name} test split"


def _compare(logits: torch.Tensor, reference: torch.Tensor, runtime: str, inputs: str,
             fmt: str) -> dict[str, Any]:
    difference = (logits.double() - reference.double()).abs().max().item()
    # Logits within `difference` of PyTorch's can pick another class only where PyTorch's
    # two best are within twice that: such near-ties are counted, not held against the file.
    top2 = reference.double().topk(min(2, reference.shape[1]), dim=1).values
    decided = (top2[:, 0] - top2[:, -1]) > 2 * difference if top2.shape[1] > 1 else \
        torch.ones(len(reference), dtype=torch.bool)
    agree = logits.argmax(dim=1) == reference.argmax(dim=1)
    same_top1 = bool(agree[decided].all())
    check = {"runtime": runtime, "inputs": inputs, "images": int(reference.shape[0]),
             "max_abs_logit_difference": difference, "same_top1": same_top1,
             "near_ties": int((~decided).sum()), "tolerance": TOLERANCE}
    if difference > TOLERANCE or not same_top1:
        raise ExportError(f"the {fmt} export does not compute what PyTorch computes on {inputs} "
                          f"(max logit difference {difference:.3g}, tolerance {TOLERANCE:g}; "
                          f"same top-1: {same_top1}); nothing was written")
    return check


def describe(target: Target, exporter: Exporter, path: Path, check: dict[str, Any]
             ) -> dict[str, Any]:
    """The sidecar: everything needed to use the file without ftlab."""
    spec = target.input_spec()
    return {
        "format_version": SIDECAR_VERSION, "ftlab_version": __version__,
        "format": exporter.name, "file": path.name, "source": target.describe(),
        "arch": target.arch, "strategy": target.config.strategy.name,
        "classes": target.names, "class_ids": target.classes,
        "input": {"name": "images", "layout": "NCHW", "dtype": "float32", "channels": "RGB",
                  "size": [spec.resolution, spec.resolution],
                  "resize": spec.eval_resize, "resize_interpolation": spec.interpolation,
                  "antialias": True, "crop": "center", "scale": 1 / 255,
                  "mean": list(spec.mean), "std": list(spec.std),
                  "steps": [f"decode to RGB; resize the shorter side to {spec.eval_resize} px "
                            f"({spec.interpolation}, antialiased)", f"centre-crop {spec.resolution} x "
                            f"{spec.resolution}", "scale pixels to [0, 1] (divide by 255)",
                            "subtract mean, divide by std (per channel)"]},
        "output": {"name": "logits", "shape": ["batch", len(target.classes)],
                   "note": "unnormalised scores; softmax gives probabilities"},
        "check": check,
    }


# --- ONNX ------------------------------------------------------------------------------
def _write_onnx(model: nn.Module, images: torch.Tensor, path: Path) -> None:
    """torch.export-based exporter (torch's default), with a dynamic batch axis."""
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.onnx.export(model, (images[:2],), dynamo=True, input_names=["images"],
                                output_names=["logits"], dynamic_shapes=({0: batch},),
                                external_data=False)
    program.save(str(path))


def _run_onnx(path: Path, images: torch.Tensor, target: Target) -> tuple[torch.Tensor, str]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"images": images.numpy()})
    return torch.from_numpy(logits), f"onnxruntime {onnxruntime.__version__}"


# --- TorchScript -----------------------------------------------------------------------
def _write_torchscript(model: nn.Module, images: torch.Tensor, path: Path) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(model, images[:2])
    torch.jit.save(traced, str(path))


FRESH_PROCESS = """
import sys, warnings
warnings.simplefilter("ignore")
import torch
model = torch.jit.load(sys.argv[1], map_location="cpu").eval()
with torch.no_grad():
    torch.save(model(torch.load(sys.argv[2])), sys.argv[3])
"""


def _run_torchscript(path: Path, images: torch.Tensor, target: Target
                     ) -> tuple[torch.Tensor, str]:
    """Loaded in a new Python process that imports torch only: nothing of ftlab, nor of
    this process's modules, can help it run."""
    with tempfile.TemporaryDirectory() as folder:
        inputs, outputs = Path(folder) / "images.pt", Path(folder) / "logits.pt"
        torch.save(images, inputs)
        # absolute: the child runs in the temporary folder, and the output may be relative
        done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(path.resolve()),
                               str(inputs), str(outputs)], capture_output=True, text=True,
                              cwd=folder)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ExportError(f"the TorchScript file does not load in a fresh process ({last}); "
                              "nothing was written")
        return torch.load(outputs, weights_only=True), f"torch.jit {torch.__version__}"


# --- safetensors -----------------------------------------------------------------------
def _write_safetensors(model: nn.Module, images: torch.Tensor, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})


def _run_safetensors(path: Path, images: torch.Tensor, target: Target
                     ) -> tuple[torch.Tensor, str]:
    """Into torchvision's own model when the strategy added no modules (the weights then
    need nothing of ftlab); else into the network ftlab rebuilds with its branches."""
    from safetensors.torch import load_file
    from torchvision.models import get_model

    state = load_file(str(path))
    plain = get_model(target.arch, weights=None, num_classes=len(target.classes))
    if set(state) == set(plain.state_dict()):
        plain.load_state_dict(state, strict=True)
        runtime = f"torchvision.models.get_model({target.arch!r})"
    else:
        plain = build_network(target)
        plain.load_state_dict(state, strict=True)
        runtime = f"ftlab-rebuilt {target.arch} with {target.config.strategy.name}'s modules"
    with torch.no_grad():
        return plain.eval()(images), runtime


FORMATS.register("onnx", Exporter("onnx", ".onnx", ("onnx", "onnxscript", "onnxruntime"),
                                  _write_onnx, _run_onnx))
FORMATS.register("torchscript", Exporter("torchscript", ".torchscript.pt", (),
                                         _write_torchscript, _run_torchscript))
FORMATS.register("safetensors", Exporter("safetensors", ".safetensors", ("safetensors",),
                                         _write_safetensors, _run_safetensors))
