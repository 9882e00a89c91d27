"""The one training loop every task shares: epochs of SGD steps, an evaluation after each epoch,
a report per epoch, and the plateau rule (stop when validation loss has improved by less than
`min_delta` for `patience` epochs). Tasks differ only in the batches, the loss and the metrics.
"""

import math
import time
from typing import Callable, Iterable

import torch
from torch import nn


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable, compute_loss: Callable,
                    frozen: list[nn.Module]) -> float:
    """One pass over `batches`; returns the mean training loss (per example)."""
    model.train()
    for module in frozen:  # frozen BatchNorm keeps its ImageNet statistics
        module.eval()
    total, count = 0.0, 0
    for batch in batches:
        loss, n = compute_loss(model, batch)
        if not math.isfinite(loss.item()):
            return float("nan")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * n
        count += n
    return total / max(count, 1)


def run_epochs(model: nn.Module, optimizer: torch.optim.Optimizer, *, epochs: int, train_batches: Callable[[int], Iterable],
               compute_loss: Callable, evaluate: Callable[[nn.Module], dict], report: Callable[[dict], None],
               frozen: list[nn.Module] = (), patience: int = 0, min_delta: float = 0.0, start_epoch: int = 0) -> dict:
    """Train for up to `epochs` epochs, calling `report(metrics)` after each; return the last metrics.

    `evaluate(model)` must return at least `val_loss`. patience=0 turns the plateau rule off.
    Every report carries `epoch`, `train_loss`, the evaluation, `epoch_seconds` and `stop`
    ("" while training goes on, else why it stopped early: "plateau" or "nan loss").
    """
    best_loss, stale, metrics = math.inf, 0, {}
    for epoch in range(start_epoch + 1, epochs + 1):
        started = time.perf_counter()
        train_loss = train_one_epoch(model, optimizer, train_batches(epoch), compute_loss, list(frozen))
        model.eval()
        with torch.no_grad():
            metrics = {"epoch": epoch, "train_loss": train_loss, **evaluate(model)}
        stale = 0 if metrics["val_loss"] < best_loss - min_delta else stale + 1
        best_loss = min(best_loss, metrics["val_loss"])
        if math.isnan(train_loss):
            metrics["stop"] = "nan loss"  # a diverged run: no point spending the rest of its budget
        else:
            metrics["stop"] = "plateau" if patience and stale >= patience and epoch < epochs else ""
        metrics["epoch_seconds"] = time.perf_counter() - started
        report(metrics)
        if metrics["stop"]:
            break
    return metrics
