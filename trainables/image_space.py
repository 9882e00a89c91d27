"""The image tasks' default space, chosen from the data: how many training images, classes and
images per class, and their native resolution, decide how deep to fine-tune, how much to augment
and regularise, and how long to train. Which backbones to search
is for a space to say (see offered_backbones). The rules are data (RULES below, each with the reason
and the measurement behind it); `choose_space` applies the first rule that matches, over a base
every image search shares. The chosen space is printed and written to OUTPUT/space.yaml.
"""

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from trainables import decode, images

HEADER_SAMPLE = 64  # images whose headers give the native resolution (reading a header costs ~0.1 ms)


@dataclass(frozen=True)
class DataFacts:
    train_images: int
    classes: int
    per_class: int  # the smallest class's images (the one the model learns worst)
    native: int  # the median shorter side of the images, in pixels
    largest: int = 0  # the largest class's images


@dataclass(frozen=True)
class Rule:
    name: str
    applies: Callable[[DataFacts], bool]
    space: dict  # entries over BASE
    reason: str
    pair: dict = field(default_factory=dict)  # entries over `space` when the space searches PAIR
    pair_reason: str = ""


# Shared by every image search: the ranges that led hotdog's and food20's searches (learning rates
# below 3e-5 or above 3e-3 never led one; the head's multiplier around d2l's 10).
BASE = {
    "lr": {"loguniform": [3.0e-5, 3.0e-3]},
    "batch_size": {"choice": [16, 32, 64]},
    "head_lr_mult": {"loguniform": [1.0, 30.0]},
    "weight_decay": {"loguniform": [1.0e-5, 1.0e-2]},
    "momentum": 0.9,
}
RULES = (
    Rule(
        "up to 1,000 images per class",
        lambda d: d.per_class < 1000,
        {"frozen_layers": {"randint": [4, 5]}, "augment": "flip"},
        "the copied stages kept but the last (frozen_layers 4-5), flips only: on hotdog (560 a class) "
        "training deeper or random crops overfit (test 0.82-0.84 against 0.85-0.87), and on food20 "
        "(120 a class) no regulariser beat the plain run within the epochs a search gives (bench/KNOBS.md)",
        pair={"frozen_layers": 5, "head_init": "probe", "weight_decay": {"loguniform": [1.0e-3, 1.0]}},
        pair_reason="the pair's head alone: hotdog test 0.876 +- 0.007 over 3 seeds against 0.852 +- 0.017 "
        "for MobileNetV2 frozen_layers 4-5, food20 0.633 +- 0.008 against 0.640 (seed 0); training the pair's "
        "stage 5 as well on food20 scored no higher on validation (0.640 against 0.642) at 45 s an epoch, "
        "where head-only trials take seconds once the features are computed (bench/QUALITY.md, session 11). "
        "A head alone on 2,560 features wants a stronger L2 than a fine-tuned network (linear probes chose "
        "0.03-0.1): weight decay up to 0.1 gave food20 0.640 +- 0.002 against 0.633 +- 0.008 and hotdog "
        "0.873 +- 0.003 against 0.876 +- 0.007 (3 seeds, bench/QUALITY.md, session 12). The head starts "
        "solved as that probe (head_init probe, its L2 up to 1): SGD from Xavier's start landed 1-2 points "
        "under the probe on the same features; started from it, hotdog 0.885 +- 0.003 against 0.873 +- 0.003 "
        "and food20 0.644 +- 0.001 against 0.640 +- 0.002, every seed higher (3 seeds, bench/QUALITY.md, session 13)",
    ),
    Rule(
        "1,000-5,000 images per class",
        lambda d: d.per_class < 5000,
        {"frozen_layers": {"randint": [2, 5]}, "augment": {"choice": ["flip", "crop+flip"]}},
        "stages 3-5 may fine-tune, flips or random crops: more data carries more trained weights",
    ),
    Rule(
        "over 5,000 images per class",
        lambda d: True,
        {"frozen_layers": {"randint": [0, 4]}, "augment": {"choice": ["crop+flip", "trivial"]}},
        "enough to fine-tune the whole network with strong augmentation (ImageNet-scale recipes)",
    ),
)


def data_facts(train_dir: Path) -> DataFacts:
    """Counts from the folder listing and the native size from a sample of image headers."""
    paths, labels, classes = images.list_image_folder(train_dir)
    counts = [labels.count(k) for k in range(len(classes))]
    step = max(1, len(paths) // HEADER_SAMPLE)
    sides = []
    for path in paths[::step][:HEADER_SAMPLE]:
        try:
            with Image.open(path) as image:
                sides.append(min(image.size))
        except (*decode.DECODE_ERRORS, Image.DecompressionBombError):  # the decoder's to report (or skip)
            continue
    native = int(statistics.median(sides)) if sides else 0
    return DataFacts(len(paths), len(classes), min(counts), native, max(counts))


# MobileNetV2 and EfficientNet-Lite0 side by side: their pooled features together gave a probe 3
# points over either alone on hotdog and food20 (bench/QUALITY.md, session 8), where Lite0 alone
# lost to MobileNetV2 on food20 and a search spent half its trials on it (bench/KNOBS.md).
PAIR = "mobilenet_v2+efficientnet_lite0"


def offered_backbones(options) -> list[str]:
    """The backbones a chosen space searches: the pair PAIR when both ship installed and --backbone
    is auto, else none (the --backbone flag's network). The pair costs about twice MobileNetV2 per
    epoch; name one network with --backbone to search it alone."""
    from trainables import backbones

    if getattr(options, "backbone", "auto") == "auto" and getattr(options, "pretrained", True):
        if backbones.offline_available(PAIR):
            return [PAIR]
    return []


# A largest class this many times the smallest makes the classes weigh alike in the loss. Measured
# on food20 subsets (bench/QUALITY.md, session 14; the default space without and with, seeds 0 / 1):
# 150 / 20 / 4 photos, balanced test 0.533 / 0.533 -> 0.600 / 0.533; ten classes of 150 down to 5,
# balanced test 0.546 / 0.562 -> 0.596 / 0.596, a test in the training proportions 0.665 / 0.690 ->
# 0.703 / 0.703. No run lost. (No text rule uses it: bench/QUALITY.md, session 15.)
IMBALANCE = 3
IMBALANCE_REASON = (
    "classes of {largest} to {smallest} images: class_weights balanced, each class weighs alike in the loss"
)


def choose(facts: DataFacts, offered: list[str]) -> tuple[dict, str]:
    rule = next(r for r in RULES if r.applies(facts))
    space, reason = {**BASE, **rule.space}, rule.reason
    if PAIR in offered and rule.pair:
        space, reason = {**space, **rule.pair}, f"{reason}; {rule.pair_reason}"
    if facts.largest >= IMBALANCE * facts.per_class:
        space = {**space, "class_weights": "balanced"}
        reason = f"{reason}; {IMBALANCE_REASON.format(largest=facts.largest, smallest=facts.per_class)}"
    if offered:
        space = {"backbone": offered[0] if len(offered) == 1 else {"choice": offered}, **space}
    why = (
        f"{facts.train_images} training images in {facts.classes} classes, {facts.per_class} in the smallest, "
        f"{facts.native} px: {rule.name} ({reason})"
    )
    return space, why


def choose_space(task, options, default_data=None) -> tuple[dict, str]:
    """Task.choose_space for the image tasks."""
    from trainables.image_task import data_dir

    facts = data_facts(data_dir(options.data, default_data) / "train")
    return choose(facts, offered_backbones(options))
