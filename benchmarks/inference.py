"""Inference throughput: `ftlab predict` end to end against a plain torchvision loop, and the
ONNX export under onnxruntime against PyTorch eager, on CPU, in one process.

The network is the mirror's ImageNet MobileNetV2 with its own head (`pretrained:FILE
model.head=keep`), the images the mirror's cifar10-mini test JPEGs at ImageNet's evaluation
geometry (resize 256, centre crop 224):

* **plain loop**: what a tutorial writes — a Dataset that opens each file with PIL, converts to
  RGB and applies torchvision's Resize / CenterCrop / ToImage / ToDtype / Normalize, a
  DataLoader with the same worker count as ftlab's, the model under `torch.inference_mode`,
  softmax and top-5;
* **ftlab predict**: `ftlab.predict(target, files, top_k=5)` consumed to the end: decoding,
  preprocessing, batching, the model and the top-5 with class names.

Both include building the model from the weights file. Then, on the same preprocessed
batches, the model alone: PyTorch eager (as trained: NCHW; and channels-last) against the
ONNX file `ftlab export` writes, run by onnxruntime. Each measurement is repeated (`--repeats`, alternating order) and the median
taken; the table gives images/s and the ratio to the plain loop (or to eager).

    python benchmarks/inference.py [--images 512] [--batch-size 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import models
from torchvision.transforms import v2

MIRROR = Path(os.environ.get("FTLAB_MIRROR", "../shared/mirror"))
WEIGHTS = MIRROR / "weights" / "mobilenet_v2_imagenet.pth"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Files(Dataset):
    def __init__(self, files: list[str]) -> None:
        self.files = files
        self.transform = v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(224),
                                     v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                                     v2.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.files[index]) as image:
            return self.transform(image.convert("RGB"))


def plain_loop(files: list[str], batch: int, workers: int) -> int:
    model = models.mobilenet_v2()
    model.load_state_dict(torch.load(WEIGHTS, weights_only=True))
    model.eval()
    seen = 0
    with torch.inference_mode():
        for images in DataLoader(Files(files), batch_size=batch, num_workers=workers):
            model(images).softmax(dim=1).topk(5, dim=1)
            seen += len(images)
    return seen


def ftlab_predict(files: list[str], batch: int, workers: int) -> int:
    from ftlab.inference.predict import predict

    results = list(predict(f"pretrained:{WEIGHTS}", files, overrides=["model.head=keep"],
                           top_k=5, batch_size=batch, workers=workers))
    assert all(r.error is None for r in results)
    return len(results)


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def model_only(files: list[str], batch: int, repeats: int) -> dict[str, float]:
    """Seconds per pass over the preprocessed images: PyTorch eager and onnxruntime."""
    import onnxruntime

    from ftlab.inference.export import export

    batches = [torch.stack([Files(files)[i] for i in range(s, min(s + batch, len(files)))])
               for s in range(0, len(files), batch)]
    model = models.mobilenet_v2()
    model.load_state_dict(torch.load(WEIGHTS, weights_only=True))
    model.eval()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mobilenet_v2.onnx"
        export(f"pretrained:{WEIGHTS}", "onnx", path, overrides=["model.head=keep"],
               check_images=files[:16])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(path), options,
                                               providers=["CPUExecutionProvider"])

        def eager() -> None:
            with torch.inference_mode():
                for images in batches:
                    model(images)

        last = models.mobilenet_v2()
        last.load_state_dict(model.state_dict())
        last = last.eval().to(memory_format=torch.channels_last)

        def channels_last() -> None:
            with torch.inference_mode():
                for images in batches:
                    last(images.contiguous(memory_format=torch.channels_last))

        def onnx() -> None:
            for images in batches:
                session.run(None, {"images": images.numpy()})

        times: dict[str, list[float]] = {"eager": [], "channels_last": [], "onnx": []}
        for _ in range(repeats):
            times["eager"].append(timed(eager))
            times["channels_last"].append(timed(channels_last))
            times["onnx"].append(timed(onnx))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not WEIGHTS.is_file():
        sys.exit(f"the offline mirror is not at {MIRROR} (set FTLAB_MIRROR)")
    from ftlab.data import default_workers

    files = sorted(str(p) for p in (MIRROR / "cifar10-mini" / "test").rglob("*.jpg"))
    files = (files * (args.images // len(files) + 1))[:args.images]
    workers = default_workers()
    ends: dict[str, list[float]] = {"plain": [], "ftlab": []}
    for repeat in range(args.repeats):
        order = ("plain", "ftlab") if repeat % 2 == 0 else ("ftlab", "plain")
        for name in order:
            work = plain_loop if name == "plain" else ftlab_predict
            ends[name].append(timed(lambda: work(files, args.batch_size, workers)))
    end = {name: statistics.median(values) for name, values in ends.items()}
    model = model_only(files, args.batch_size, args.repeats)
    n = len(files)
    print(f"MobileNetV2 (ImageNet head), {n} mirror JPEGs at 224 px, batch {args.batch_size}, "
          f"{torch.get_num_threads()} torch threads, {workers} DataLoader worker(s), "
          f"median of {args.repeats}, torch {torch.__version__}\n")
    print("| measured | what | seconds | images/s | ratio |")
    print("|---|---|---|---|---|")
    print(f"| end to end | plain torchvision loop | {end['plain']:.2f} | {n / end['plain']:.0f} | "
          "1.00x |")
    print(f"| end to end | ftlab predict | {end['ftlab']:.2f} | {n / end['ftlab']:.0f} | "
          f"{end['plain'] / end['ftlab']:.2f}x |")
    print(f"| model only | PyTorch eager | {model['eager']:.2f} | {n / model['eager']:.0f} | "
          "1.00x |")
    print(f"| model only | PyTorch eager, channels-last | {model['channels_last']:.2f} | "
          f"{n / model['channels_last']:.0f} | {model['eager'] / model['channels_last']:.2f}x |")
    print(f"| model only | ONNX, onnxruntime | {model['onnx']:.2f} | {n / model['onnx']:.0f} | "
          f"{model['eager'] / model['onnx']:.2f}x |")


if __name__ == "__main__":
    main()
