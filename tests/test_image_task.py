"""trainables/image_task.py: where an image search's data comes from, the split a trial sees, and
what `search train` builds from best.yaml."""

import pytest
import torch

from search.options import SearchOptions
from search.tasks import get_task
from trainables import image_task
from trainables.basics import UserError


def test_image_needs_data_and_hotdog_has_a_default(monkeypatch, tiny_images):
    monkeypatch.delenv("SEARCH_DATA_DIR", raising=False)
    with pytest.raises(UserError, match="no data given: pass --data DIR"):
        image_task.data_dir(None, None)
    assert image_task.data_dir(None, lambda: tiny_images) == tiny_images
    monkeypatch.setenv("SEARCH_DATA_DIR", str(tiny_images))
    assert image_task.data_dir(None, None) == tiny_images


def test_prepare_carves_a_stratified_split_and_ships_the_weights(tiny_images, tmp_path):
    task = get_task("image")
    options = SearchOptions(
        task="image", output=tmp_path, data=str(tiny_images), image_size=32, max_epochs=None, backbone="mobilenet_v2"
    )
    prepared = task.prepare(task, options)
    assert prepared.settings.epochs == image_task.DEFAULT_MAX_EPOCHS and prepared.settings.model.image_size == 32
    assert prepared.settings.model.weights is not None and prepared.record["classes"] == ["cat", "dog"]
    (train_x, train_y), (val_x, val_y) = task.trial_data(prepared.data)
    assert len(train_y) + len(val_y) == 20 and torch.bincount(val_y).tolist() == [2, 2]
    assert prepared.summary.startswith("image: ")


def test_final_data_without_training_decodes_only_test(tiny_images):
    doc = {
        "task": "hotdog",
        "data": str(tiny_images),
        "backbone": "mobilenet_v2",
        "image_size": 32,
        "classes": ["cat", "dog"],
    }
    final = image_task.final_data(get_task("hotdog"), doc, None, pretrained=False, with_train=False)
    assert final.train is None and len(final.test[1]) == 8 and final.model.weights is None
    assert final.facts == {
        "backbone": "mobilenet_v2",
        "pretrained": False,
        "weights": "none (random initialisation)",
        "classes": ["cat", "dog"],
    }
