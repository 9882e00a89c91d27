"""Tests for trainables.image_space: the facts read from an ImageFolder (counts, the smallest class,
native size from headers), the rules chosen by them, backbones offered only when their weights are
installed, and that every chosen space is a valid space for the image task."""

import types

import pytest

from spaces import parse_space
from tests.conftest import make_image_folder
from trainables import image_space
from trainables.image_classifier import HYPERPARAMETERS
from trainables.image_space import DataFacts


def options(**changes):
    return types.SimpleNamespace(**{"backbone": "auto", "pretrained": True, "data": None, **changes})


def test_facts_come_from_the_listing_and_the_headers(tmp_path):
    root = make_image_folder(tmp_path, {"train": 7}, size=48)
    (root / "train" / "dog" / "6.jpg").unlink()  # the smallest class decides per_class
    facts = image_space.data_facts(root / "train")
    assert facts == DataFacts(train_images=13, classes=2, per_class=6, native=48, largest=7)


@pytest.mark.parametrize(
    "per_class, frozen, augment",
    [
        (30, [4, 5], "flip"),  # few per class: keep all but the last stage, mild augmentation
        (999, [4, 5], "flip"),
        (1000, [2, 5], {"choice": ["flip", "crop+flip"]}),
        (5000, [0, 4], {"choice": ["crop+flip", "trivial"]}),  # many: fine-tune deeper
    ],
)
def test_fewer_images_per_class_freeze_more_and_augment_less(per_class, frozen, augment):
    space, why = image_space.choose(DataFacts(per_class * 10, 10, per_class, 64), [])
    assert space["frozen_layers"] == {"randint": frozen}
    assert space["augment"] == augment
    assert f"{per_class} in the smallest" in why and "backbone" not in space
    parse_space(space, HYPERPARAMETERS)  # a valid space for the image task


def test_the_installed_pair_is_offered_unless_a_backbone_is_named():
    assert image_space.offered_backbones(options()) == [image_space.PAIR]  # both weights ship installed
    assert image_space.offered_backbones(options(backbone="efficientnet_lite0")) == []  # the flag's network
    assert image_space.offered_backbones(options(pretrained=False)) == []  # the pair's gain is its features


def test_the_pair_trains_its_head_alone_on_small_data_only():
    space, why = image_space.choose(DataFacts(1120, 2, 560, 64), [image_space.PAIR])
    assert space["backbone"] == image_space.PAIR and space["frozen_layers"] == 5
    assert "the pair's head alone" in why
    assert space["head_init"] == "probe"  # the head solved as a linear probe first
    assert space["weight_decay"] == {"loguniform": [1.0e-3, 1.0]}  # a linear head wants a stronger L2
    parse_space(space, HYPERPARAMETERS)
    space, why = image_space.choose(DataFacts(60000, 10, 6000, 64), [image_space.PAIR])
    assert space["frozen_layers"] == {"randint": [0, 4]} and "pair" not in why  # much data: fine-tune deeper
    assert space["weight_decay"] == image_space.BASE["weight_decay"] and "head_init" not in space


def test_classes_of_very_different_sizes_weigh_alike_in_the_loss():
    space, why = image_space.choose(DataFacts(174, 3, 4, 450, largest=150), [image_space.PAIR])
    assert space["class_weights"] == "balanced" and "classes of 150 to 4 images" in why
    parse_space(space, HYPERPARAMETERS)
    near, _ = image_space.choose(DataFacts(50, 2, 20, 64, largest=30), [image_space.PAIR])  # 1.5 to 1: as it was
    assert "class_weights" not in near


def test_offered_backbones_become_a_choice():
    offered = ["mobilenet_v2", "efficientnet_lite0"]
    space, _ = image_space.choose(DataFacts(1000, 2, 500, 64), offered)
    assert space["backbone"] == {"choice": offered}
    parse_space(space, HYPERPARAMETERS)


def test_choose_space_reads_the_data_folder(tmp_path):
    root = make_image_folder(tmp_path, {"train": 5, "test": 2}, size=40)
    space, why = image_space.choose_space(None, options(data=str(root)))
    assert "10 training images in 2 classes, 5 in the smallest, 40 px" in why
    assert space["backbone"] == image_space.PAIR and space["frozen_layers"] == 5  # both weights installed
    space, _ = image_space.choose_space(None, options(data=str(root), backbone="mobilenet_v2"))
    assert "backbone" not in space and space["frozen_layers"] == {"randint": [4, 5]}
