"""Benchmark 2, the data path: an epoch over the project's decoded uint8 tensors
(trainables.images.batches) vs the textbook loader that decodes every JPEG every epoch
(ImageFolder + PIL transforms, DataLoader num_workers=0), same model, config and threads; and a
counter around trainables.decode.decode_array for the decodes of a whole search.
"""

import contextlib
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torchvision import datasets
from torchvision import transforms as T

from bench.common import default_config, median, row, trial_settings
from trainables import backbones, decode, images
from trainables.image_classifier import EVAL_BATCH, fit_image_classifier
from trainables.image_task import trial_data
from trainables.loop import run_epochs
from trainables.settings import TrialSettings


@contextlib.contextmanager
def counting_decodes():
    """Count calls of trainables.decode.decode_array (every decoder's one call per image) in this
    process while the block runs."""
    counter = {"decodes": 0}
    original = decode.decode_array

    def counted(path, size, content=None):
        counter["decodes"] += 1
        return original(path, size, content)

    decode.decode_array = counted  # the decoders look the name up at call time
    try:
        yield counter
    finally:
        decode.decode_array = original


def decoding_loaders(root: Path, data: dict, image_size: int, batch_size: int) -> tuple[DataLoader, DataLoader]:
    """d2l's loaders over the same split: train with RandomResizedCrop (the project's scale range) +
    flip, evaluation resized to the project's cache size and centre-cropped; both decode every JPEG."""
    normalize = T.Normalize(images.IMAGENET_MEAN, images.IMAGENET_STD)
    train_tf = T.Compose(
        [T.RandomResizedCrop(image_size, scale=(0.3, 1.0)), T.RandomHorizontalFlip(), T.ToTensor(), normalize]
    )
    eval_tf = T.Compose([T.Resize(images.cache_size(image_size)), T.CenterCrop(image_size), T.ToTensor(), normalize])
    train_set, eval_set = datasets.ImageFolder(root / "train", train_tf), datasets.ImageFolder(root / "train", eval_tf)
    paths, _, _ = images.list_image_folder(root / "train")
    assert [p for p, _ in train_set.samples] == paths, "ImageFolder and the project order train/ differently"
    shuffle = torch.Generator().manual_seed(0)
    return (
        DataLoader(
            Subset(train_set, data["train_idx"].tolist()), batch_size, shuffle=True, generator=shuffle, num_workers=0
        ),
        DataLoader(Subset(eval_set, data["val_idx"].tolist()), EVAL_BATCH, num_workers=0),
    )


def fit_decoding(config: dict, settings: TrialSettings, loaders: tuple, report) -> None:
    """fit_image_classifier's model, optimiser and loop (run_epochs, settings.epochs of it), fed by the
    decoding loaders."""
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    name = settings.model.backbone
    weights = settings.model.weights[name] if settings.model.weights else None
    model = backbones.build_model(name, settings.model.num_classes, weights)
    frozen = backbones.freeze(model, name, config["frozen_layers"])
    optimizer = torch.optim.SGD(
        backbones.param_groups(model, name, config["lr"], config["head_lr_mult"]),
        lr=config["lr"],
        momentum=config["momentum"],
        weight_decay=config["weight_decay"],
    )
    train_loader, eval_loader = loaders

    def compute_loss(net, batch):
        x, y = batch
        return F.cross_entropy(net(x), y), len(y)

    def evaluate(net):
        loss, correct, n = 0.0, 0, 0
        for x, y in eval_loader:
            logits = net(x)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
        return {"val_loss": loss / n, "val_accuracy": correct / n}

    run_epochs(
        model,
        optimizer,
        epochs=settings.epochs,
        train_batches=lambda epoch: train_loader,
        compute_loss=compute_loss,
        evaluate=evaluate,
        report=report,
        frozen=frozen,
    )


def data_only_seconds(batches) -> float:
    started = time.perf_counter()
    for _ in batches:
        pass
    return time.perf_counter() - started


def timed(out: dict, epochs: int, fit) -> None:
    """Run fit(report); add its epoch_seconds to out["epoch"] and its CPU seconds per epoch to out["cpu"]."""
    started = time.process_time()
    fit(lambda metrics, state: out["epoch"].append(metrics["epoch_seconds"]))
    out["cpu"].append((time.process_time() - started) / epochs)


def run(ctx: dict) -> list[dict]:
    epochs = ctx["budget"]["data_epochs"]
    config = default_config()  # d2l's recipe: everything fine-tuned, random-resized-crop + flip
    settings = trial_settings(ctx, max_epochs=epochs)
    torch.set_num_threads(settings.threads)
    train, evaluation = trial_data(ctx["data"])
    loaders = decoding_loaders(ctx["root"], ctx["data"], ctx["image_size"], config["batch_size"])
    transform = images.train_transform(ctx["image_size"])

    cached_data, decoded_data = [], []
    for _ in range(3):  # the data alone, no model: cheap, so alternate three times
        cached_data.append(
            data_only_seconds(images.batches(train, config["batch_size"], transform, torch.Generator().manual_seed(0)))
        )
        decoded_data.append(data_only_seconds(loaders[0]))

    cached, decoded = {"epoch": [], "cpu": []}, {"epoch": [], "cpu": []}
    for _ in range(ctx["budget"]["data_reps"]):  # alternate, so a change in machine load hits both sides
        timed(cached, epochs, lambda report: fit_image_classifier(config, settings, train, evaluation, report))
        timed(decoded, epochs, lambda report: fit_decoding(config, settings, loaders, report))
    ce, de = median(cached["epoch"]), median(decoded["epoch"])
    cc, dc = median(cached["cpu"]), median(decoded["cpu"])
    cd, dd = median(cached_data), median(decoded_data)
    n = len(cached["epoch"])
    return [
        row(
            "2a",
            f"decode-every-epoch / uint8 cache: median epoch_seconds, train + eval ({n} epochs each)",
            f"cache {ce:.2f} s",
            f"decode {de:.2f} s",
            de / ce,
        ),
        row(
            "2b",
            "decode-every-epoch / uint8 cache: CPU s of this process per epoch, whole fit / epochs "
            "(one thread, so other jobs hardly move it)",
            f"cache {cc:.2f} s",
            f"decode {dc:.2f} s",
            dc / cc,
        ),
        row(
            "2c",
            "decode-every-epoch / uint8 cache: one pass over the training batches, no model (median of 3)",
            f"cache {cd:.2f} s",
            f"decode {dd:.2f} s",
            dd / cd,
        ),
    ]


def decode_row(count: int, train_images: int) -> dict:
    """The decodes counted during the project's search (benchmark 4c) against the images in train/."""
    return row(
        "2d",
        "decodes during a whole search (4c) / images in train/",
        f"{train_images} train images",
        f"{count} decodes",
        count / train_images,
        "= 1",
        "yes" if count == train_images else "no",
    )
