"""`ftlab diff A B [--ref C]`: how two networks differ, layer by layer and block by block.

Writes layers.csv and diff.json (every number), layers.png/svg (curves across depth),
cka.png/svg (the representation-similarity heatmap) and summary.md (for the report).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ftlab.analysis.cka import block_grams, cka_matrix
from ftlab.analysis.figures import cka_figure, layer_figure, save
from ftlab.analysis.params import LayerRow, check_same_architecture, compare, mean_of
from ftlab.analysis.sources import Network, describe, load_network, rebuild
from ftlab.config import DiffConfig, ExperimentConfig
from ftlab.data import build_data
from ftlab.errors import WeightsError
from ftlab.fileio import atomic_write_text, check_output_folder
from ftlab.models import block_names, head_name, resolve_weights
from ftlab.runfiles import DIFF_JSON, DIFF_SUMMARY


@dataclass
class DiffResult:
    rows: list[LayerRow]
    cka: list[list[float]] | None
    blocks: list[str]
    files: list[Path] = field(default_factory=list)

    def row(self, layer: str) -> LayerRow:
        return next(r for r in self.rows if r.layer == layer)


def diff(config: DiffConfig, out_dir: Path | None = None) -> DiffResult:
    """Compare A and B (and each with the reference); write the files when `out_dir` is given.

    The representations are compared on a probe batch from `config.probe`'s data settings,
    else A's or B's own; with no ftlab run among them, only the parameters are compared.
    """
    if out_dir is not None:
        check_output_folder(out_dir, DIFF_JSON, "diff")
    a, b, ref, arch = _networks(config.a, config.b, config.ref)
    head = head_name(arch)
    check_same_architecture(a.state, b.state, head, (a.label, b.label))
    if ref is not None:
        check_same_architecture(ref.state, a.state, head, (ref.label, a.label))
    rows = compare(a.state, b.state, head, ref.state if ref else None, config.k)
    probe = _probe_config(config.probe, a, b)
    cka, blocks = (_representations(a, b, arch, probe, config.probe_size) if probe
                   else (None, []))
    result = DiffResult(rows, cka, blocks)
    if out_dir is not None:
        result.files = _write(result, out_dir, (a, b, ref), config.probe_size)
    return result


def _networks(a_spec: str, b_spec: str, ref_spec: str | None):
    a = load_network(a_spec)
    b = load_network(b_spec, a.arch)
    arch = a.arch or b.arch
    if arch is None:
        raise WeightsError("neither side names its architecture: compare at least one ftlab "
                           "run or checkpoint")
    if a.arch and b.arch and a.arch != b.arch:
        raise WeightsError(f"{a.label} is a {a.arch} and {b.label} a {b.arch}: different "
                           "architectures cannot be compared layer by layer")
    a.arch = b.arch = arch
    ref = load_network(ref_spec, arch) if ref_spec else None
    if ref is not None:
        ref.arch = arch
    return a, b, ref, arch


def _probe_config(probe: str | None, a: Network, b: Network) -> ExperimentConfig | None:
    if probe is not None:
        network = load_network(probe)
        if network.config is None:
            raise WeightsError(f"--probe {probe} is not an ftlab run: its data settings are "
                               "needed for the probe batch")
        return network.config
    return a.config or b.config


def _representations(a: Network, b: Network, arch: str, config: ExperimentConfig,
                     size: int) -> tuple[list[list[float]], list[str]]:
    data = build_data(config.data, resolve_weights(arch, config.model.weights).preprocessing)
    split = data.val or data.test
    images = torch.stack([split[i][0] for i in range(min(size, len(split)))])
    resolution = data.input.resolution
    model_a, model_b = rebuild(a, arch, resolution), rebuild(b, arch, resolution)
    blocks = block_names(arch)
    matrix = cka_matrix(block_grams(model_a, blocks, images), block_grams(model_b, blocks,
                                                                          images))
    return matrix, ["+".join(prefixes) for prefixes in blocks]


def _write(result: DiffResult, out: Path, networks: tuple, probe_size: int) -> list[Path]:
    a, b, ref = networks
    out.mkdir(parents=True, exist_ok=True)
    labels = (a.label, b.label, ref.label if ref else None)
    files = [out / "layers.csv", out / DIFF_JSON, out / DIFF_SUMMARY]
    atomic_write_text(files[0], _csv(result.rows))
    meta = {"a": describe(a), "b": describe(b), "ref": describe(ref) if ref else None}
    atomic_write_text(files[1], json.dumps({**meta, "layers": [r.as_dict() for r in result.rows],
                                            "blocks": result.blocks, "cka": result.cka},
                                           indent=1) + "\n")
    title = f"{a.label} vs {b.label}" + (f" (reference {ref.label})" if ref else "")
    files += save(*layer_figure(result.rows, title, labels), out / "layers")
    if result.cka is not None:
        files += save(*cka_figure(result.cka, f"linear CKA, {probe_size} probe images",
                                  (a.label, b.label)), out / "cka")
    atomic_write_text(files[2], summary_markdown(result, labels, probe_size))
    return files


def _csv(rows: list[LayerRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0].as_dict()) if rows else ["layer"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(r.as_dict() for r in rows)
    return buffer.getvalue()


def summary_markdown(result: DiffResult, labels: tuple[str, str, str | None],
                     probe_size: int) -> str:
    a, b, ref = labels
    body = [r for r in result.rows if not r.note and not r.head]
    lines = [f"### {a} vs {b}" + (f", each against {ref}" if ref else ""), "",
             "![per-layer comparison](layers.png)", "",
             f"Backbone layers: mean weight cosine {mean_of([r.weight_cosine for r in body]):.3f}, "
             f"mean bias cosine {mean_of([r.bias_cosine for r in body]):.3f}, mean "
             f"filter-subspace similarity {mean_of([r.subspace_similarity for r in body]):.3f}. "
             "Every layer's numbers: `layers.csv`."]
    if ref:
        for label, key in ((a, "a_moved"), (b, "b_moved")):
            top = sorted((r for r in body if getattr(r, key) is not None),
                         key=lambda r: -getattr(r, key))[:5]
            moved = ", ".join(f"`{r.layer}` ({getattr(r, key):.2f})" for r in top)
            lines += ["", f"Layers {label} moved most from {ref} (||Δ||/||ref||): {moved}."]
    if result.cka is not None:
        diagonal = [result.cka[i][i] for i in range(min(len(result.cka), len(result.cka[0])))]
        lines += ["", "![linear CKA](cka.png)", "",
                  f"Representation similarity per block (linear CKA on {probe_size} validation "
                  f"images, block i of {a} against block i of {b}): "
                  + ", ".join(f"{v:.2f}" for v in diagonal) + "."]
    return "\n".join(lines) + "\n"
