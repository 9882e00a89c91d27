"""Driver-side preparation of an image search: decode train/ once, carve the seeded, stratified
validation split out of it, pick the backbone and its weights, and say what was found. The result
is shipped to every trial through Ray's object store.
"""

import torch

from search.errors import UserError
from search.options import trial_settings
from trainables import backbones, images

DEFAULT_MAX_EPOCHS = 8  # hotdog's best trials peak within 2-6 epochs; the plateau rule ends most earlier


def default_image_size() -> int:
    # 224: the ImageNet size the backbones were trained at. On a CPU, 160: measured on hotdog (64 px
    # photos, MobileNetV2, head-only training on the train split, scored on test/ over epochs 2-10):
    # 0.82-0.865 at 128 px, 0.855-0.868 at 160, no better at 224 for twice the cost of 160.
    return 224 if torch.cuda.is_available() else 160


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


def prepare_image_search(task, options) -> dict:
    """Everything the trials of an image search share: settings, decoded data, weights, and the
    record that goes into best.yaml."""
    image_size = options.image_size or default_image_size()
    max_epochs = options.max_epochs or DEFAULT_MAX_EPOCHS
    data, facts = prepare_image_data(options.data, image_size, options.val_fraction, options.seed)
    backbone, weights, source = load_image_weights(options.backbone, options.pretrained)
    counts = ", ".join(f"{k} {v}" for k, v in facts["class_counts"].items())
    summary = (f"{task.name}: {facts['data']}: {facts['train_images']} train / {facts['val_images']} validation images "
               f"({counts}); backbone {backbone}, weights: {source}; image size {image_size}")
    settings = {"backbone": backbone, "image_size": image_size, "num_classes": len(facts["classes"]),
                "schedule_epochs": max_epochs, **trial_settings(options, max_epochs)}
    record = {  # what best.yaml carries besides the hyperparameters
        "data": facts["data"], "backbone": backbone, "pretrained": options.pretrained, "weights": source,
        "image_size": image_size, "val_fraction": options.val_fraction, "seed": options.seed,
        "classes": facts["classes"], "schedule_epochs": max_epochs,  # the learning rate decays over these
    }
    return {"settings": settings, "data": data, "weights": weights, "record": record, "summary": summary,
            "max_epochs": max_epochs}
