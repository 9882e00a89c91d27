"""How far the real training gets with a frozen backbone, over a grid of head learning rates and
epochs: `fit_image_classifier` (the trainer every trial runs) with frozen_layers 5 and flip views,
trained on all of train/ and scored on test/ after each epoch, no search and no selection. It tells
whether a space's ranges can reach what bench/probe.py's linear probe finds on the same features.

    python -m bench.head_grid --data ../shared/data/hotdog --backbones mobilenet_v2 efficientnet_lite0
"""

import argparse
import itertools
import tempfile
import time
from pathlib import Path

from trainables import backbones, images
from trainables.basics import with_defaults
from trainables.image_classifier import HYPERPARAMETERS, fit_image_classifier
from trainables.image_task import ImageModel
from trainables.settings import trial_settings

HEAD_LRS = (0.01, 0.03, 0.1)  # lr x head_lr_mult: the default space's reach is 3e-5 to 0.09
EPOCHS = (4, 8)


def run(model: ImageModel, train, test, epochs: int, head_lr: float, weight_decay: float) -> list[float]:
    """Test accuracy after each epoch of one head-only training of `model` (seed 0, batch 32) on the
    splits `train` and `test`."""
    settings = trial_settings(
        model, epochs=epochs, schedule_epochs=epochs, seed=0, patience=0, min_delta=0.0, cpus=2, gpus=0, amp="off"
    )
    config = {
        "backbone": model.backbone,
        "batch_size": 32,
        "frozen_layers": backbones.NUM_STAGES,
        "augment": "flip",
        "lr": head_lr / 10,
        "head_lr_mult": 10.0,
        "weight_decay": weight_decay,
    }
    reports = []
    fit_image_classifier(with_defaults(HYPERPARAMETERS, config), settings, train, test, lambda m, s: reports.append(m))
    return [r["val_accuracy"] for r in reports]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.head_grid", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="an ImageFolder tree with train/ and test/")
    parser.add_argument("--backbones", nargs="+", default=["mobilenet_v2", "efficientnet_lite0"])
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--head-lrs", type=float, nargs="+", default=list(HEAD_LRS))
    parser.add_argument("--epochs", type=int, nargs="+", default=list(EPOCHS))
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    args = parser.parse_args(argv)
    train = images.load_image_folder(args.data / "train", images.cache_size(args.size))
    test = images.load_image_folder(args.data / "test", images.cache_size(args.size), train.classes)
    splits = [
        images.whole_split(s.images.numpy(), s.labels, f"{k}-{args.size}")
        for k, s in (("train", train), ("test", test))
    ]
    print("| backbone | epochs | head lr | test accuracy after each epoch | last | seconds |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as features_dir:  # each backbone's features once, for the whole grid
        for name in args.backbones:
            weights, _ = backbones.pretrained_weights(name)
            model = ImageModel(name, args.size, len(train.classes), {name: weights}, features_dir=features_dir)
            for epochs, head_lr in itertools.product(args.epochs, args.head_lrs):
                started = time.perf_counter()
                accuracy = run(model, *splits, epochs, head_lr, args.weight_decay)
                seconds = time.perf_counter() - started
                shown = " ".join(f"{a:.3f}" for a in accuracy)
                print(f"| {name} | {epochs} | {head_lr:g} | {shown} | {accuracy[-1]:.3f} | {seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
