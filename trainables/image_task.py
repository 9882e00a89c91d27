"""What the image tasks (`image`, `hotdog`) do around the shared training: on the driver, decode
train/ once, carve the seeded, stratified validation split and load the backbone's weights; for
`search train`, decode train/ (with validation) and test/ again, test a model and save it as a
state_dict that loads into torchvision.models.NAME(num_classes=...).
"""

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainables import backbones, images
from trainables.basics import UserError
from trainables.image_classifier import evaluate_model
from trainables.settings import trial_settings
from trainables.task import FinalData, Prepared

DEFAULT_MAX_EPOCHS = 8  # hotdog's best trials peak within 2-6 epochs; the plateau rule ends most earlier


@dataclass(frozen=True)
class ImageModel:
    """The image task's part of TrialSettings: the network to start from."""

    backbone: str  # a torchvision model name (backbones.BACKBONES)
    image_size: int  # training resolution
    num_classes: int
    weights: dict | None = field(default=None, repr=False)  # the backbone's pretrained state_dict; None: random
    cache_frozen: bool = True  # reuse frozen stages' outputs across epochs and trials (bench/ turns it off)


def default_image_size() -> int:
    # 224: the ImageNet size the backbones were trained at. On a CPU, 160: measured on hotdog (64 px
    # photos, MobileNetV2, head-only training on the train split, scored on test/ over epochs 2-10):
    # 0.82-0.865 at 128 px, 0.855-0.868 at 160, no better at 224 for twice the cost of 160.
    return 224 if torch.cuda.is_available() else 160


def data_dir(data: str | None, default: Callable[[], Path] | None) -> Path:
    """--data, else $SEARCH_DATA_DIR, else the task's own default data (hotdog: d2l's download)."""
    given = data or os.environ.get("SEARCH_DATA_DIR")
    if not given and default is None:
        raise UserError(
            "no data given: pass --data DIR (an ImageFolder tree with train/ and test/, one "
            "sub-folder per class) or set SEARCH_DATA_DIR"
        )
    return images.resolve_data_dir(given or str(default()))


def prepare_image_data(root: Path, image_size: int, val_fraction: float, seed: int) -> tuple[dict, dict]:
    """Decode the train/ split once and carve the seeded, stratified validation split out of it.
    Returns (data for the trials, facts for the user and best.yaml). test/ is only checked here."""
    train = images.load_image_folder(root / "train", images.cache_size(image_size))
    images.list_image_folder(root / "test", train.classes)  # fail now, not after the search
    train_idx, val_idx = images.stratified_split(train.labels, val_fraction, seed)
    counts = torch.bincount(train.labels, minlength=len(train.classes)).tolist()
    facts = {
        "data": str(root),
        "classes": train.classes,
        "train_images": len(train_idx),
        "val_images": len(val_idx),
        "class_counts": dict(zip(train.classes, counts)),
    }
    return {"images": train.images, "labels": train.labels, "train_idx": train_idx, "val_idx": val_idx}, facts


def load_image_weights(backbone: str, pretrained: bool) -> tuple[str, dict | None, str]:
    if backbone != "auto" and backbone not in backbones.BACKBONES:
        raise UserError(f"unknown backbone {backbone!r} (known: auto, {', '.join(backbones.BACKBONES)})")
    return backbones.choose_backbone(backbone, pretrained)


def prepare_search(task, options, default_data: Callable[[], Path] | None = None) -> Prepared:
    """Everything the trials of an image search share: settings (with the weights), decoded data,
    and the record that goes into best.yaml."""
    image_size = options.image_size or default_image_size()
    max_epochs = options.max_epochs or DEFAULT_MAX_EPOCHS
    data, facts = prepare_image_data(
        data_dir(options.data, default_data), image_size, options.val_fraction, options.seed
    )
    backbone, weights, source = load_image_weights(options.backbone, options.pretrained)
    counts = ", ".join(f"{k} {v}" for k, v in facts["class_counts"].items())
    summary = (
        f"{task.name}: {facts['data']}: {facts['train_images']} train / {facts['val_images']} validation images "
        f"({counts}); backbone {backbone}, weights: {source}; image size {image_size}"
    )
    model = ImageModel(backbone, image_size, len(facts["classes"]), weights)
    settings = trial_settings(
        model,
        epochs=max_epochs,
        schedule_epochs=max_epochs,
        seed=options.seed,
        patience=options.patience,
        min_delta=options.min_delta,
        cpus=options.cpus_per_trial,
        gpus=options.gpus_per_trial,
        amp=options.amp,
    )
    record = {  # what best.yaml carries besides the hyperparameters
        "data": facts["data"],
        "backbone": backbone,
        "pretrained": options.pretrained,
        "weights": source,
        "image_size": image_size,
        "val_fraction": options.val_fraction,
        "seed": options.seed,
        "classes": facts["classes"],
        "schedule_epochs": max_epochs,  # the learning rate decays over these
    }
    return Prepared(settings, data, record, summary)


def trial_data(data: dict) -> tuple[tuple, tuple]:
    """A trial's (train, evaluation): the two sides of the split, as (uint8 images, labels)."""
    train_idx, val_idx = data["train_idx"], data["val_idx"]
    return ((data["images"][train_idx], data["labels"][train_idx]), (data["images"][val_idx], data["labels"][val_idx]))


def final_data(task, doc: dict, data: str | None, pretrained: bool, with_train: bool = True) -> FinalData:
    """`search train`'s data: all of train/ (validation included) and test/, decoded at best.yaml's
    size, and the backbone's weights (none without `pretrained`). Without `with_train` (testing a
    checkpoint) only test/, with best.yaml's classes."""
    backbone = doc.get("backbone", "resnet18")
    if backbone not in backbones.BACKBONES:
        raise UserError(f"unknown backbone {backbone!r} in best.yaml (known: {', '.join(backbones.BACKBONES)})")
    image_size = doc.get("image_size") or default_image_size()
    root = images.resolve_data_dir(data or doc["data"])
    size = images.cache_size(image_size)
    train = images.load_image_folder(root / "train", size) if with_train else None
    test = images.load_image_folder(root / "test", size, train.classes if train else doc.get("classes"))
    weights, source = backbones.pretrained_weights(backbone) if pretrained else (None, "none (random initialisation)")
    facts = {"backbone": backbone, "pretrained": pretrained, "weights": source, "classes": test.classes}
    n_train = f"{len(train.labels)} images" if train else "no images"
    return FinalData(
        model=ImageModel(backbone, image_size, len(test.classes), weights),
        train=(train.images, train.labels) if train else None,
        test=(test.images, test.labels),
        describe=f"{backbone} ({source}) on {n_train}, testing on {len(test.labels)}",
        facts=facts,
    )


def load_model(final: FinalData, config: dict, state: dict) -> torch.nn.Module:
    model = backbones.build_model(final.model.backbone, final.model.num_classes, None)
    model.load_state_dict(state["model"])
    return model


def evaluate(model, final: FinalData, config: dict, device) -> dict:
    images_, labels = final.test
    return evaluate_model(model, images_, labels, final.model.image_size, device)


def save_model(model, final: FinalData, output: Path) -> Path:
    torch.save(model.state_dict(), output / "model.pt")
    return output / "model.pt"
