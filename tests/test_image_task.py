"""trainables/image_task.py: where an image search's data comes from, the split a trial sees, and
what `search train` builds from best.yaml."""

import numpy as np
import pytest
import torch

from search.options import SearchOptions
from search.tasks import get_task
from trainables import image_task, images
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
    train, validation = task.trial_data(prepared.data)
    assert len(train) + len(validation) == 20 and torch.bincount(validation.labels).tolist() == [2, 2]
    assert not set(train.rows) & set(validation.rows)
    assert train.images is validation.images  # one shared array: a split holds rows of it, not a copy
    assert prepared.summary.startswith("image: ") and "in Ray's object store" in prepared.summary


def test_a_set_over_the_memory_budget_is_mapped_from_its_file_with_the_same_images(tiny_images, tmp_path):
    root, size = tiny_images, images.cache_size(32)
    in_memory, facts = image_task.prepare_image_data(root, 32, 0.2, 0, budget=10**9)
    streamed, streamed_facts = image_task.prepare_image_data(root, 32, 0.2, 0, budget=1)
    assert not facts["streamed"] and streamed_facts["streamed"] and isinstance(streamed["images"], str)
    for a, b in zip(image_task.trial_data(in_memory), image_task.trial_data(streamed)):
        assert isinstance(b.images, np.memmap) and a.identity == b.identity
        assert torch.equal(a.take(range(len(a))), b.take(range(len(b)))) and torch.equal(a.labels, b.labels)
    assert size == in_memory["images"].shape[-1]


def test_final_data_without_training_decodes_only_test(tiny_images):
    doc = {
        "task": "hotdog",
        "data": str(tiny_images),
        "backbone": "mobilenet_v2",
        "image_size": 32,
        "classes": ["cat", "dog"],
    }
    final = image_task.final_data(get_task("hotdog"), doc, None, pretrained=False, with_train=False)
    assert final.train is None and len(final.test) == 8 and final.model.weights is None
    assert final.facts == {
        "backbone": "mobilenet_v2",
        "pretrained": False,
        "weights": "none (random initialisation)",
        "classes": ["cat", "dog"],
    }
