"""An ImageFolder tree with its own val/ (or valid/) beside train/ and test/: the search scores
trials on exactly those images instead of carving a split from train/, `search train` trains on
train/ and val/ together, and a val/ whose classes differ is refused in one line."""

import shutil
from pathlib import Path

import pytest
import torch

from search.tasks import get_task
from tests.conftest import make_image_folder
from trainables import image_task
from trainables.basics import UserError


@pytest.mark.parametrize("name", ["val", "valid"])
def test_the_trees_own_validation_folder_is_the_validation_split(tmp_path, name):
    root = make_image_folder(tmp_path / "tree", {"train": 6, name: 3, "test": 2})
    data, facts = image_task.prepare_image_data(root, 32, 0.2, 0, cache=tmp_path / "cache")
    train, validation = image_task.trial_data(data)
    assert (len(train), len(validation)) == (12, 6) and facts["val_from"] == f" (its {name}/ folder)"
    assert torch.bincount(validation.labels).tolist() == [3, 3]
    # the set's rows are train/'s files, then val/'s: validation is exactly the latter
    assert validation.rows.tolist() == list(range(12, 18)) and train.rows.tolist() == list(range(12))

    doc = {"task": "hotdog", "data": str(root), "backbone": "mobilenet_v2", "image_size": 32}
    doc["cache"] = str(tmp_path / "cache")
    final = image_task.final_data(get_task("hotdog"), doc, None, pretrained=False)
    assert len(final.train) == 18 and len(final.test) == 4  # train/ and val/ together, as without val/


def test_without_a_validation_folder_the_split_is_carved(tmp_path):
    root = make_image_folder(tmp_path / "tree", {"train": 10, "test": 2})
    data, facts = image_task.prepare_image_data(root, 32, 0.2, 0, cache=tmp_path / "cache")
    assert (facts["train_images"], facts["val_images"], facts["val_from"]) == (16, 4, "")


def test_a_validation_folder_with_other_classes_is_refused(tmp_path):
    root = make_image_folder(tmp_path / "tree", {"train": 4, "val": 2, "test": 2})
    shutil.move(root / "val" / "dog", root / "val" / "wolf")
    with pytest.raises(UserError, match=r"val has classes \['cat', 'wolf'\], but the training data has"):
        image_task.prepare_image_data(Path(root), 32, 0.2, 0, cache=tmp_path / "cache")
