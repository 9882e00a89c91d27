"""Several pretrained backbones side by side under one head (`backbone: mobilenet_v2+efficientnet_lite0`):
each stage runs every member's piece of that stage and concatenates their feature maps along the
channels, so the network is still 5 stages of one tensor each and frozen_layers, the shared
frozen features, mixup and cutmix on feature maps all work on it unchanged. The head sees every
member's pooled features: on hotdog and food20 a probe on MobileNetV2's and EfficientNet-Lite0's
features together scored 3 points above either alone (bench/QUALITY.md).
"""

import torch
from torch import nn

from trainables.heads import new_head

PROBE_SIZE = 64  # px: a zero image this size finds each stage's channels and resolution
DROPOUT = 0.2  # before the head, as MobileNetV2's and EfficientNet-Lite's own classifiers have


class Renormalize(nn.Module):
    """Maps an input normalised with one (mean, std) to another's: a member whose weights expect
    other statistics than the first member's sees the inputs it was trained on."""

    def __init__(self, given: tuple, wanted: tuple):
        super().__init__()
        (m_in, s_in), (m, s) = [[torch.tensor(v).view(3, 1, 1) for v in pair] for pair in (given, wanted)]
        self.register_buffer("scale", s_in / s, persistent=False)  # derived from the names, not learned
        self.register_buffer("shift", (m_in - m) / s, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)


class Stage(nn.Module):
    """One stage of every member: the first stage gives each the image (renormalised where its
    weights want other statistics), a later one splits the channels its predecessor concatenated."""

    def __init__(self, pieces: list[nn.Module], in_channels: list[int] | None, inputs: list[nn.Module] | None = None):
        super().__init__()
        self.pieces = nn.ModuleList(pieces)
        self.in_channels = in_channels  # None: the first stage
        self.inputs = nn.ModuleList(inputs or [nn.Identity() for _ in pieces])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels is None:
            xs = [prepare(x) for prepare in self.inputs]
        else:
            xs = x.split(self.in_channels, dim=1)
        return torch.cat([piece(xi) for piece, xi in zip(self.pieces, xs)], dim=1)


class Concatenated(nn.Module):
    """The members' stages joined (see Stage), global average pooling and one new head."""

    def __init__(self, stages: list[Stage], features: int, num_classes: int):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(DROPOUT))
        self.fc = new_head(nn.Linear(features, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.fc(self.pool(x))


@torch.no_grad()
def stage_shapes(pieces: list[nn.Module]) -> list[tuple[int, int]]:
    """(channels, width) after each of a member's stages, for a PROBE_SIZE image."""
    x, shapes = torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE), []
    for piece in pieces:
        was_training = piece.training
        x = piece.eval()(x)
        piece.train(was_training)
        shapes.append((x.shape[1], x.shape[-1]))
    return shapes


def join(
    names: list[str], members: list[list[nn.Module]], normalizations: list[tuple], num_classes: int
) -> Concatenated:
    """The members' stages (lists of equal length, earliest first) side by side. The input is
    normalised as the first member wants. Raises ValueError when two members' stages end at
    different resolutions (their maps could not be concatenated)."""
    shapes = [stage_shapes(pieces) for pieces in members]
    for k, widths in enumerate(zip(*([w for _, w in s] for s in shapes))):
        if len(set(widths)) > 1:
            sizes = ", ".join(f"{n} {w} px" for n, w in zip(names, widths))
            raise ValueError(f"stage {k + 1} ends at different resolutions ({sizes} from {PROBE_SIZE} px)")
    inputs = [nn.Identity() if n == normalizations[0] else Renormalize(normalizations[0], n) for n in normalizations]
    stages, in_channels = [], None
    for k, pieces in enumerate(zip(*members)):
        stages.append(Stage(list(pieces), in_channels, inputs if k == 0 else None))
        in_channels = [s[k][0] for s in shapes]
    return Concatenated(stages, sum(in_channels), num_classes)
