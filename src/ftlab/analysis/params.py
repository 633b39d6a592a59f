"""Per-layer comparison of two sets of parameters (and of each against a reference).

For every layer (module) with parameters: cosine similarity of the weights and of the
biases, relative change ||A - B|| / ||B||, norm ratio ||A|| / ||B||, and for conv and
linear weights the similarity of the subspaces their top-k filters span (the mean cosine of
the principal angles between the top-k right singular vectors): a layer whose filters were
only permuted or rotated computes the same features and keeps subspace similarity 1 while
its plain cosine drops.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass

import torch

from ftlab.errors import WeightsError


@dataclass
class LayerRow:
    layer: str
    index: int
    kind: str
    """conv, linear, norm or other (by the weight's shape)."""
    head: bool
    params: int
    weight_cosine: float | None = None
    bias_cosine: float | None = None
    relative_change: float | None = None
    norm_ratio: float | None = None
    subspace_similarity: float | None = None
    a_moved: float | None = None
    """||A - ref|| / ||ref|| over the layer's parameters (with a reference)."""
    b_moved: float | None = None
    a_ref_cosine: float | None = None
    b_ref_cosine: float | None = None
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def layers_of(state: dict[str, torch.Tensor]) -> "OrderedDict[str, dict[str, torch.Tensor]]":
    """Parameters grouped by layer in state_dict order (depth), buffers left out."""
    grouped: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
    for key, tensor in state.items():
        layer, _, name = key.rpartition(".")
        if name in ("weight", "bias") and tensor.is_floating_point():
            grouped.setdefault(layer, {})[name] = tensor.detach().double()
    return grouped


def check_same_architecture(a: dict, b: dict, head: str, labels: tuple[str, str]) -> None:
    """Refuse to compare different architectures, naming the first parameter that differs;
    heads may differ (different target classes)."""
    shared = [k for k in a if not k.startswith(head + ".")]
    for key in shared:
        if key not in b:
            raise WeightsError(f"{labels[0]} and {labels[1]} are different architectures: "
                               f"'{key}' is in the first but not the second")
        if a[key].shape != b[key].shape:
            raise WeightsError(f"{labels[0]} and {labels[1]} are different architectures: "
                               f"'{key}' has shape {tuple(a[key].shape)} vs "
                               f"{tuple(b[key].shape)}")


def compare(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], head: str,
            ref: dict[str, torch.Tensor] | None = None, k: int = 8) -> list[LayerRow]:
    """One row per layer present in both A and B (layers only one side has are skipped)."""
    la, lb = layers_of(a), layers_of(b)
    lr = layers_of(ref) if ref is not None else {}
    rows = []
    for index, (layer, pa) in enumerate(la.items()):
        pb = lb.get(layer)
        if pb is None:
            continue
        row = LayerRow(layer, index, _kind(pa.get("weight")), layer == head,
                       sum(t.numel() for t in pa.values()))
        if any(pa[n].shape != pb[n].shape for n in pa if n in pb):
            row.note = "shapes differ (a re-initialised head for other classes)"
            rows.append(row)
            continue
        _fill(row, pa, pb, k)
        if layer in lr and all(lr[layer].get(n) is not None and lr[layer][n].shape == t.shape
                               for n, t in pa.items()):
            _fill_reference(row, pa, pb, lr[layer])
        rows.append(row)
    return rows


def _fill(row: LayerRow, pa: dict, pb: dict, k: int) -> None:
    if "weight" in pa and "weight" in pb:
        wa, wb = pa["weight"], pb["weight"]
        row.weight_cosine = cosine(wa, wb)
        row.relative_change = relative(wa - wb, wb)
        row.norm_ratio = relative(wa, wb)
        if wa.dim() >= 2:
            row.subspace_similarity = subspace_similarity(wa, wb, k)
    if "bias" in pa and "bias" in pb:
        row.bias_cosine = cosine(pa["bias"], pb["bias"])


def _fill_reference(row: LayerRow, pa: dict, pb: dict, pr: dict) -> None:
    flat = lambda p: torch.cat([p[n].flatten() for n in sorted(p)])  # noqa: E731
    ra, rb, rr = flat(pa), flat(pb), flat({n: pr[n] for n in pa})
    row.a_moved, row.b_moved = relative(ra - rr, rr), relative(rb - rr, rr)
    row.a_ref_cosine, row.b_ref_cosine = cosine(ra, rr), cosine(rb, rr)


def cosine(x: torch.Tensor, y: torch.Tensor) -> float | None:
    nx, ny = x.norm(), y.norm()
    if nx == 0 or ny == 0:
        return 1.0 if nx == ny else None  # two zero vectors are the same; one is undefined
    return float((x.flatten() @ y.flatten()) / (nx * ny))


def relative(x: torch.Tensor, y: torch.Tensor) -> float | None:
    """||x|| / ||y|| (None when ||y|| is 0 and x is not)."""
    nx, ny = float(x.norm()), float(y.norm())
    if ny == 0:
        return 0.0 if nx == 0 else None
    return nx / ny


def subspace_similarity(wa: torch.Tensor, wb: torch.Tensor, k: int) -> float:
    """Mean cosine of the principal angles between the spans of the top-k right singular
    vectors of the weights, seen as (output channels) x (everything else); 1 when one set
    of filters is a rotation or permutation of the other."""
    ma, mb = wa.flatten(1), wb.flatten(1)
    # At most half the filter dimension: two k-dim subspaces of a (k+1)-dim space overlap
    # almost entirely by chance (a depthwise 3x3 filter has only 9 dimensions).
    k = max(1, min(k, ma.shape[0], ma.shape[1] // 2))
    va = torch.linalg.svd(ma, full_matrices=False).Vh[:k].T
    vb = torch.linalg.svd(mb, full_matrices=False).Vh[:k].T
    cosines = torch.linalg.svdvals(va.T @ vb).clamp(max=1.0)
    return float(cosines.mean())


def _kind(weight: torch.Tensor | None) -> str:
    if weight is None:
        return "other"
    return {4: "conv", 2: "linear", 1: "norm"}.get(weight.dim(), "other")


def mean_of(values: list[float | None]) -> float:
    real = [v for v in values if v is not None and not math.isnan(v)]
    return sum(real) / len(real) if real else math.nan
