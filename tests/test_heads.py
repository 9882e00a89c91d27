"""The new head: Xavier's start, or solved as a linear probe (fit_head)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainables.heads import balanced_weights, fit_head, new_head


def separable_data(rows=200, features=12, classes=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(classes, features, generator=generator)
    labels = torch.randint(classes, (rows,), generator=generator)
    return centres[labels] + torch.randn(rows, features, generator=generator), labels


def objective(layer, x, y, decay):
    return F.cross_entropy(layer(x), y) + decay / 2 * layer.weight.pow(2).sum()


def test_fit_head_reaches_the_regularised_optimum():
    x, y = separable_data()
    layer = new_head(nn.Linear(12, 3))
    fit_head(layer, x, y, weight_decay=0.1)
    loss = objective(layer, x, y, 0.1)
    weight_grad, bias_grad = torch.autograd.grad(loss, [layer.weight, layer.bias])
    assert weight_grad.abs().max() < 1e-3 and bias_grad.abs().max() < 1e-3  # a stationary point of a convex loss
    assert (layer(x).argmax(1) == y).float().mean() > 0.95


def test_fit_head_is_the_same_whatever_the_start_and_shrinks_with_the_decay():
    x, y = separable_data()
    first, second = nn.Linear(12, 3), new_head(nn.Linear(12, 3))
    with torch.no_grad():
        first.weight.fill_(5.0)
    fit_head(first, x, y, weight_decay=0.1)
    fit_head(second, x, y, weight_decay=0.1)
    assert torch.allclose(first.weight, second.weight, atol=1e-4)
    strong = nn.Linear(12, 3)
    fit_head(strong, x, y, weight_decay=1.0)
    assert strong.weight.norm() < 0.7 * second.weight.norm()


def test_fit_head_without_a_bias():
    x, y = separable_data()
    layer = nn.Linear(12, 3, bias=False)
    fit_head(layer, x, y, weight_decay=0.1)
    assert layer.bias is None
    (grad,) = torch.autograd.grad(objective(layer, x, y, 0.1), [layer.weight])
    assert grad.abs().max() == pytest.approx(0.0, abs=1e-3)


def test_balanced_weights_make_every_class_weigh_alike():
    weights = balanced_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert weights.tolist() == pytest.approx([4 / 6, 2.0, 0.0])  # n / (classes x count); an absent class 0
    labels = torch.tensor([0] * 90 + [1] * 10)
    totals = torch.bincount(labels, weights=balanced_weights(labels, 2)[labels])
    assert totals.tolist() == pytest.approx([50.0, 50.0])  # each class's rows weigh half the set


def test_a_balanced_probe_finds_more_of_a_rare_class():
    """Overlapping classes, 10 to 1: the weighted probe predicts the rare class for more of its rows."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 300 + [1] * 30)
    x = torch.randn(330, 4, generator=generator) + labels[:, None] * 1.0  # one unit apart: they overlap
    plain, balanced = nn.Linear(4, 2), nn.Linear(4, 2)
    fit_head(plain, x, labels, weight_decay=0.01)
    fit_head(balanced, x, labels, weight_decay=0.01, class_weights=balanced_weights(labels, 2))
    rare = labels == 1
    recall = {
        name: (layer(x[rare]).argmax(1) == 1).float().mean().item()
        for name, layer in [("plain", plain), ("balanced", balanced)]
    }
    assert recall["balanced"] > recall["plain"] + 0.3, recall
