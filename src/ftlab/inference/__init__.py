"""Using a trained network: evaluate it (`ftlab eval`), classify images with it
(`ftlab predict`) and export it for inference without ftlab (`ftlab export`).

Each takes a target — a run folder, an ftlab checkpoint, or `pretrained:<weights>` with its
own head (`model.head=keep`) — rebuilt with its strategy's modules, classes and evaluation
preprocessing (`load_target`).
"""

from ftlab.inference.classes import label_map
from ftlab.inference.evaluate import EvalResult, evaluate
from ftlab.inference.target import PRETRAINED, Target, build_network, load_target

__all__ = ["PRETRAINED", "EvalResult", "Target", "build_network", "evaluate", "label_map",
           "load_target"]
