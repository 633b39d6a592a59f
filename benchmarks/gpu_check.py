"""GPU readiness: one command that runs ftlab's whole CUDA path and records its figures.

GPU time comes in short windows, so everything a GPU must prove is in this one script:

1. environment: GPU, memory, driver, CUDA, torch; whether ftlab and each of its
   requirements import (what is missing must be carried to the machine);
2. throughput: MobileNetV2, 224 px, batch 256, ftlab (train.amp=auto, channels-last, the
   device pipeline on in-memory 32 px images) against the plain PyTorch loop of
   benchmarks/throughput.py in the same process, for full, bias and tinytl, and full once
   more with train.compile=true; the input pipelines alone (benchmarks/dataloader.py);
3. memory: `ftlab memory`'s measurement at batch 64 and 256, stock against memory-efficient,
   and the gradients of both compared on the device in float32 (TF32 off), and against a
   float64 reference where float32 itself cannot resolve a gradient to 1e-4;
4. fine-tune: the mirror's cifar10-mini at 224 px, 3 epochs, full and tinytl, through
   `ftlab.train`; a run stopped by SIGTERM mid-epoch and resumed against an uninterrupted
   one (train.deterministic=true, last.pt weights compared);
5. torchrun: one process on NCCL against the same run without torchrun (the resume check's
   uninterrupted run, trained once for both).

Each part runs even if an earlier one failed, and records its error. After each part
gpu_check.json and gpu_check.md are rewritten in the output folder, so a run cut short
still leaves what it measured. Exit code 0 when every part ran (targets met or not), 1 when
a part failed.

    python benchmarks/gpu_check.py --mirror .carry/mirror --output-dir "$OUT"  # one GPU
    python benchmarks/gpu_check.py --dry-run --output-dir /tmp/gpu-check      # CPU, tiny

The parts are in gpu_parts.py beside this file. --dry-run runs the same code on CPU at tiny
sizes (32 px, a generated image folder, random weights, gloo instead of NCCL, no compile);
the test suite runs it, so this check cannot rot between GPU windows. BENCHMARKS.md says
what to carry to the GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the modules beside this file

from gpu_parts import (  # noqa: E402
    DRY,
    GPU,
    Context,
    Row,
    environment,
    finetune,
    memory,
    throughput,
    torchrun,
)


PARTS: dict[str, Callable[[Context], tuple[dict[str, Any], list[Row]]]] = {
    "environment": environment, "throughput": throughput, "memory": memory,
    "finetune": finetune, "torchrun": torchrun}


def make_folder(root: Path, classes: int = 4, train: int = 6, test: int = 2) -> Path:
    """A tiny ImageFolder of 32 px JPEGs (train/ and test/), for the dry run."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                pixels[..., c % 3] //= 2  # some signal per class
                Image.fromarray(pixels).save(folder / f"{i}.jpg")
    return root


def markdown(report: dict[str, Any]) -> str:
    lines = [f"GPU check{' (dry run, CPU)' if report['dry_run'] else ''}: "
             f"{report['environment_line']}", "",
             "| part | measure | value | target | met |", "|---|---|---|---|---|"]
    for name, part in report["parts"].items():
        status = f"ran in {part['seconds']:.0f} s" if part["ok"] else \
            f"FAILED after {part['seconds']:.0f} s: {part['error']}"
        lines.append(f"| {name} | | {status.replace('|', chr(92) + '|')} | | |")
        lines += ["| | " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
                  for row in part["rows"]]
    lines += [f"\n{note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path("gpu-check"))
    parser.add_argument("--mirror", type=Path,
                        default=Path(os.environ.get("FTLAB_MIRROR", "../shared/mirror")))
    parser.add_argument("--dry-run", action="store_true",
                        help="the same code on CPU at tiny sizes")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated, of {', '.join(PARTS)}")
    args = parser.parse_args(argv)
    out = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        ctx = Context(DRY, out, make_folder(out / "data"), "none")
    else:
        ctx = Context(GPU, out, (args.mirror / "cifar10-mini").resolve(),
                      str((args.mirror / "weights" / "mobilenet_v2_imagenet.pth").resolve()))
    report: dict[str, Any] = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                              "dry_run": args.dry_run, "sizes": asdict(ctx.sizes),
                              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                              "environment_line": "", "parts": {}, "notes": ctx.notes}
    for name in args.parts.split(","):
        start = time.perf_counter()
        try:
            results, rows = PARTS[name](ctx)
            part: dict[str, Any] = {"ok": True, "results": results}
        except Exception as err:  # noqa: BLE001 - each part runs whatever the others did
            part = {"ok": False, "error": f"{type(err).__name__}: {err}".splitlines()[0],
                    "traceback": traceback.format_exc()[-4000:]}
            rows = []
        part.update(seconds=time.perf_counter() - start, rows=rows)
        report["parts"][name] = part
        if name == "environment" and part["ok"]:
            env = part["results"]
            report["environment_line"] = (f"{env.get('gpu', 'CPU')}, torch {env['torch']}, "
                                          f"CUDA {env['cuda']}, Python {env['python']}")
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        (out / "gpu_check.md").write_text(markdown(report))
        print(f"[{name}] {'ok' if part['ok'] else 'FAILED: ' + part['error']} "
              f"({part['seconds']:.0f} s)", flush=True)
    print(markdown(report))
    return 0 if all(p["ok"] for p in report["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
