"""The task registry: for each task name, its trainable, hyperparameter table, default space file,
search metric, and the driver-side preparation (load the data and weights once, before any trial).

Adding a task means adding one `Task` here; the CLI, tuner, results and `search train` follow.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from search.errors import UserError
from spaces import SPACES_DIR, Hyperparameter
from trainables import backbones, images
from trainables.image_classifier import HYPERPARAMETERS as IMAGE_HYPERPARAMETERS
from trainables.image_classifier import train_image_classifier


@dataclass(frozen=True)
class Task:
    name: str
    summary: str
    trainable: Callable  # (config, settings, data, weights) -> None, reports through tune.report
    hyperparameters: dict[str, Hyperparameter]
    space_file: Path
    metric: str
    mode: str  # "max" or "min"


TASKS = {
    "hotdog": Task("hotdog", "image classification, d2l's hotdog fine-tuning (any ImageFolder with train/ and test/)",
                   train_image_classifier, IMAGE_HYPERPARAMETERS, SPACES_DIR / "hotdog.yaml", "val_accuracy", "max"),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise UserError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    return TASKS[name]


def default_image_size() -> int:
    # 224: the ImageNet size the backbones were trained at. On a CPU 96 is the compromise measured on
    # hotdog (64 px photos): ~0.87 validation accuracy vs ~0.84 at 64 px, ~2.5x cheaper than 128.
    return 224 if torch.cuda.is_available() else 96


def prepare_image_data(data: str | None, image_size: int, val_fraction: float, seed: int) -> tuple[dict, dict]:
    """Decode the train/ split once and carve the seeded, stratified validation split out of it.
    Returns (data for the trials, facts for the user and best.yaml). test/ is only checked here."""
    root = images.resolve_data_dir(data)
    train = images.load_image_folder(root / "train", images.cache_size(image_size))
    images.list_image_folder(root / "test", train.classes)  # fail now, not after the search
    train_idx, val_idx = images.stratified_split(train.labels, val_fraction, seed)
    counts = torch.bincount(train.labels, minlength=len(train.classes)).tolist()
    facts = {"data": str(root), "classes": train.classes, "train_images": len(train_idx), "val_images": len(val_idx),
             "class_counts": dict(zip(train.classes, counts))}
    return {"images": train.images, "labels": train.labels, "train_idx": train_idx, "val_idx": val_idx}, facts


def load_image_weights(backbone: str, pretrained: bool) -> tuple[str, dict | None, str]:
    if backbone != "auto" and backbone not in backbones.BACKBONES:
        raise UserError(f"unknown backbone {backbone!r} (known: auto, {', '.join(backbones.BACKBONES)})")
    return backbones.choose_backbone(backbone, pretrained)
