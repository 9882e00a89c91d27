"""search/final.py, the one `search train` driver: it trains best.yaml's configuration through the
task, writes metrics.json with the per-epoch test history and the model, and tests a checkpoint as it
is; here on tiny generated images, with no Ray."""

import json

import pytest
import torch
import torchvision

from search.final import as_test, train_best_config
from search.tasks import get_task
from trainables import backbones, images
from trainables.basics import UserError, with_defaults
from trainables.image_classifier import evaluate_model


def doc_for(data, **changes):
    config = with_defaults(get_task("hotdog").hyperparameters, {"batch_size": 8, "frozen_layers": 5, "augment": "flip"})
    return {
        "task": "hotdog",
        "data": str(data),
        "backbone": "mobilenet_v2",
        "pretrained": True,
        "image_size": 32,
        "seed": 0,
        "epochs": 2,
        "schedule_epochs": 2,
        "classes": ["cat", "dog"],
        "hyperparameters": config,
        **changes,
    }


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # search train uses torch's threads; one is fastest on the shared 2 cores
    yield
    torch.set_num_threads(threads)


def test_as_test_names_an_epochs_report_for_the_test_split():
    assert as_test({"epoch": 1, "val_loss": 0.5, "val_accuracy": 0.9, "stop": ""}) == {
        "epoch": 1,
        "test_loss": 0.5,
        "test_accuracy": 0.9,
    }


def test_train_writes_the_model_and_the_test_history(tiny_images, tmp_path, capsys):
    metrics = train_best_config(doc_for(tiny_images), tmp_path / "final")
    saved = json.loads((tmp_path / "final" / "metrics.json").read_text())
    assert saved["test_accuracy"] == metrics["test_accuracy"] == saved["history"][-1]["test_accuracy"]
    assert [h["epoch"] for h in saved["history"]] == [1, 2] and saved["epochs"] == 2 and saved["seed"] == 0
    assert (
        saved["backbone"] == "mobilenet_v2" and saved["classes"] == ["cat", "dog"] and saved["from_checkpoint"] is None
    )
    model = torchvision.models.mobilenet_v2(num_classes=2)  # model.pt loads into the torchvision model
    model.load_state_dict(torch.load(tmp_path / "final" / "model.pt", weights_only=True))
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "test_accuracy" in out and "hotdog: training mobilenet_v2" in out


def test_a_checkpoint_is_tested_as_it_is(tiny_images, tmp_path):
    weights, _ = backbones.pretrained_weights("mobilenet_v2")
    model = backbones.build_model("mobilenet_v2", 2, weights)
    torch.save({"model": model.state_dict(), "epoch": 3}, tmp_path / "state.pt")
    metrics = train_best_config(doc_for(tiny_images), tmp_path / "out", checkpoint=tmp_path)
    test = images.load_image_folder(tiny_images / "test", images.cache_size(32), ["cat", "dog"])
    expected = evaluate_model(model, images.whole_split(test.images.numpy(), test.labels, "test"), 32, "cpu")
    assert metrics["test_accuracy"] == expected["val_accuracy"] and metrics["epochs"] == 3
    assert metrics["from_checkpoint"] == str(tmp_path) and "history" not in metrics


def test_an_unloadable_checkpoint_is_a_user_error(tiny_images, tmp_path):
    (tmp_path / "state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot load checkpoint"):
        train_best_config(doc_for(tiny_images), tmp_path / "out", checkpoint=tmp_path)


def test_an_unknown_backbone_is_refused_before_anything_is_written(tiny_images, tmp_path):
    with pytest.raises(UserError, match="unknown backbone 'vgg99' in best.yaml"):
        train_best_config(doc_for(tiny_images, backbone="vgg99"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
