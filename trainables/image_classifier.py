"""The image classification task (d2l's hotdog recipe): fine-tune a pretrained backbone with a new
head, SGD with momentum and weight decay, the head at a higher learning rate.

`train_image_classifier` is the Ray Tune trainable (one trial); `fit_image_classifier` is the same
training, used by the trainable and by `search train` for the final model.
"""

import torch
import torch.nn.functional as F
from ray import tune

from spaces import Hyperparameter
from trainables import backbones, images
from trainables.loop import run_epochs

HYPERPARAMETERS = {
    "lr": Hyperparameter(0.01, float, 1e-7, 10.0),  # for the copied layers; the head gets lr * head_lr_mult
    "batch_size": Hyperparameter(32, int, 1, 4096),
    "frozen_layers": Hyperparameter(0, int, 0, backbones.NUM_STAGES),  # 0: train everything, 5: only the head
    "head_lr_mult": Hyperparameter(10.0, float, 0.1, 1000.0),  # d2l trains the new head 10x faster
    "weight_decay": Hyperparameter(1e-3, float, 0.0, 1.0),  # d2l's hotdog value
    "momentum": Hyperparameter(0.9, float, 0.0, 0.999),
}


def fit_image_classifier(config: dict, settings: dict, train: tuple, evaluation: tuple, weights: dict | None,
                         report, epochs: int, patience: int = 0) -> torch.nn.Module:
    """Fine-tune on `train` (uint8 images, labels) for up to `epochs`, evaluating on `evaluation`
    after each epoch and passing the metrics (val_loss, val_accuracy, ...) to `report`."""
    torch.set_num_threads(settings["threads"])
    torch.manual_seed(settings["seed"])  # same config + seed -> same run, in a trial or in `search train`
    device = torch.device(settings["device"])
    name, image_size = settings["backbone"], settings["image_size"]

    model = backbones.build_model(name, settings["num_classes"], weights)
    frozen = backbones.freeze(model, name, config["frozen_layers"])
    model.to(device)
    optimizer = torch.optim.SGD(backbones.param_groups(model, name, config["lr"], config["head_lr_mult"]),
                                lr=config["lr"], momentum=config["momentum"], weight_decay=config["weight_decay"])

    train_images, train_labels = train
    eval_images, eval_labels = evaluation
    train_tf, eval_tf = images.train_transform(image_size), images.eval_transform(image_size)
    shuffle = torch.Generator().manual_seed(settings["seed"])

    def train_batches(epoch):
        return images.batches(train_images, train_labels, config["batch_size"], train_tf, shuffle)

    def compute_loss(model, batch):
        x, y = batch
        return F.cross_entropy(model(x.to(device)), y.to(device)), len(y)

    def evaluate(model):
        loss, correct = 0.0, 0
        for x, y in images.batches(eval_images, eval_labels, 256, eval_tf):
            logits = model(x.to(device))
            y = y.to(device)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
        return {"val_loss": loss / len(eval_labels), "val_accuracy": correct / len(eval_labels)}

    run_epochs(model, optimizer, epochs=epochs, train_batches=train_batches, compute_loss=compute_loss,
               evaluate=evaluate, report=report, frozen=frozen, patience=patience, min_delta=settings["min_delta"])
    return model


def train_image_classifier(config: dict, settings: dict, data: dict, weights: dict | None) -> None:
    """Ray Tune trainable: one trial on the train part of the split, scored on the validation part."""
    train_idx, val_idx = data["train_idx"], data["val_idx"]
    fit_image_classifier(
        {**{k: p.default for k, p in HYPERPARAMETERS.items()}, **config}, settings,
        train=(data["images"][train_idx], data["labels"][train_idx]),
        evaluation=(data["images"][val_idx], data["labels"][val_idx]),
        weights=weights, report=tune.report, epochs=settings["max_epochs"], patience=settings["patience"],
    )
