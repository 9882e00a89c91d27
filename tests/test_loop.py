"""Tests for trainables.loop: run_epochs' per-epoch reports, the plateau rule, the NaN stop,
resuming from a reported state exactly as if never interrupted, and --amp off being the plain fp32
step, on a tiny nn.Linear model."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainables.loop import WeightAverage, run_epochs, train_one_epoch

torch.set_num_threads(1)
KEYS = {"epoch", "train_loss", "val_loss", "stop", "epoch_seconds", "rss_mb"}


def data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()  # linearly separable
    return x, y


class Run:
    """A tiny classification run; records what run_epochs asked for and reported."""

    def __init__(self, lr=0.5, val_losses=None, loss=None, batch_size=16):
        torch.manual_seed(0)
        self.model = nn.Linear(4, 2)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.x, self.y = data()
        self.val_losses = val_losses
        self.loss = loss
        self.batch_size = batch_size
        self.asked, self.reports, self.states, self.eval_modes = [], [], [], []

    def train_batches(self, epoch):
        self.asked.append(epoch)
        return [
            (self.x[i : i + self.batch_size], self.y[i : i + self.batch_size])
            for i in range(0, len(self.y), self.batch_size)
        ]

    def compute_loss(self, model, batch):
        x, y = batch
        if self.loss is not None:
            return self.loss(model, x, y), len(y)
        return F.cross_entropy(model(x), y), len(y)

    def evaluate(self, model):
        self.eval_modes.append((model.training, torch.is_grad_enabled()))
        if self.val_losses is not None:  # a scripted sequence: drives the plateau rule
            return {"val_loss": self.val_losses[len(self.eval_modes) - 1]}
        logits = model(self.x)
        return {
            "val_loss": F.cross_entropy(logits, self.y).item(),
            "val_accuracy": (logits.argmax(1) == self.y).float().mean().item(),
        }

    def report(self, metrics, state):
        self.reports.append(metrics)
        self.states.append(state())

    def __call__(self, epochs, **kwargs):
        return run_epochs(
            self.model,
            self.optimizer,
            epochs=epochs,
            train_batches=self.train_batches,
            compute_loss=self.compute_loss,
            evaluate=self.evaluate,
            report=self.report,
            **kwargs,
        )


def test_reports_once_per_epoch():
    run = Run()
    last = run(4)
    assert [r["epoch"] for r in run.reports] == [1, 2, 3, 4]
    assert run.asked == [1, 2, 3, 4]
    for r in run.reports:
        assert KEYS <= set(r)
        assert r["stop"] == ""
        assert r["epoch_seconds"] >= 0
        assert math.isfinite(r["train_loss"]) and "val_accuracy" in r
    assert last == run.reports[-1]
    assert run.reports[-1]["train_loss"] < run.reports[0]["train_loss"]  # it does learn
    assert run.reports[-1]["val_loss"] < run.reports[0]["val_loss"]
    assert run.reports[-1]["val_accuracy"] > 0.8
    assert run.eval_modes == [(False, False)] * 4  # evaluation in eval mode, without gradients


def test_train_loss_is_the_per_example_mean():
    run = Run(lr=0.0, batch_size=24)  # 64 examples: batches of 24, 24, 16; lr 0: the model does not move
    expected = F.cross_entropy(run.model(run.x), run.y).item()
    loss = train_one_epoch(run.model, run.optimizer, run.train_batches(1), run.compute_loss, [])
    assert loss == pytest.approx(expected, rel=1e-5)
    assert run.model.training


# (scripted val losses, patience, min_delta, epochs, epoch of the last report, its stop)
PLATEAU = [
    pytest.param([1.0, 0.8, 0.85, 0.9, 0.7, 0.6], 2, 0.0, 6, 4, "plateau", id="stops-after-patience"),
    pytest.param([1.0, 0.8, 0.85, 0.7, 0.75, 0.76, 0.77, 0.5], 3, 0.0, 8, 7, "plateau", id="improvement-resets"),
    pytest.param([1.0, 1.0, 1.0, 1.0], 1, 0.0, 4, 2, "plateau", id="equal-is-no-improvement"),
    pytest.param([1.0, 0.9995, 0.999, 0.9985, 0.5], 3, 1e-3, 5, 4, "plateau", id="min-delta"),
    pytest.param([1.0, 0.9995, 0.999, 0.9985, 0.5], 3, 0.0, 5, 5, "", id="without-min-delta"),
    pytest.param([1.0, 0.8, 0.85, 0.9], 2, 0.0, 4, 4, "", id="plateau-on-last-epoch-is-no-early-stop"),
    pytest.param([1.0, 0.9, 0.8, 0.7, 0.6], 1, 0.0, 5, 5, "", id="always-improving"),
    pytest.param([1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 0, 0.0, 6, 6, "", id="patience-0-never-stops"),
    pytest.param([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 0, 0.0, 6, 6, "", id="patience-0-getting-worse"),
    pytest.param([math.nan, 1.0, 1.1, 1.2, 1.3], 2, 0.0, 5, 1, "nan loss", id="nan-val-loss-stops-at-once"),
]


@pytest.mark.parametrize("val_losses, patience, min_delta, epochs, last_epoch, stop", PLATEAU)
def test_plateau_rule(val_losses, patience, min_delta, epochs, last_epoch, stop):
    run = Run(val_losses=val_losses)
    last = run(epochs, patience=patience, min_delta=min_delta)
    assert [r["epoch"] for r in run.reports] == list(range(1, last_epoch + 1))
    assert last["stop"] == stop
    assert all(r["stop"] == "" for r in run.reports[:-1])
    assert [r["val_loss"] for r in run.reports] == pytest.approx(val_losses[:last_epoch], nan_ok=True)


@pytest.mark.parametrize("when", [1, 3])
def test_nan_loss_stops_at_once(when):
    def loss(model, x, y):
        value = F.cross_entropy(model(x), y)
        return value * math.nan if len(run.asked) == when else value

    run = Run(loss=loss)
    last = run(6, patience=0)
    assert [r["epoch"] for r in run.reports] == list(range(1, when + 1))
    assert last["stop"] == "nan loss" and math.isnan(last["train_loss"])
    assert all(r["stop"] == "" for r in run.reports[:-1])
    assert KEYS <= set(last)


def test_nan_batch_does_not_update_the_model():
    run = Run(loss=lambda model, x, y: (model(x) * math.nan).sum())
    before = [p.clone() for p in run.model.parameters()]
    assert math.isnan(train_one_epoch(run.model, run.optimizer, run.train_batches(1), run.compute_loss, []))
    assert all(torch.equal(a, b) for a, b in zip(before, run.model.parameters()))


def test_diverging_lr_stops_with_nan_loss():
    # regression with a huge step size: the loss overflows within the first epoch
    run = Run(lr=1e30, loss=lambda model, x, y: F.mse_loss(model(x), F.one_hot(y, 2).float()))
    last = run(5, patience=3)
    assert len(run.reports) == 1
    assert last["stop"] == "nan loss"


def test_resumed_run_matches_an_uninterrupted_one():
    whole = Run()
    whole(6, seed=3)
    first = Run()
    first(3, seed=3)  # "interrupted" after epoch 3: its last state is the checkpoint
    resumed = Run()  # a fresh model and optimizer, as in a restarted trial process
    resumed(6, seed=3, resume=first.states[-1])
    assert [r["epoch"] for r in resumed.reports] == [4, 5, 6] and resumed.asked == [4, 5, 6]
    for a, b in zip(resumed.reports, whole.reports[3:]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)
    for a, b in zip(resumed.model.parameters(), whole.model.parameters()):
        assert torch.allclose(a, b)


def test_state_holds_what_a_checkpoint_needs():
    run = Run()
    run(2, patience=5)
    state = run.states[-1]
    assert state["epoch"] == 2 and state["stop"] == "" and state["stale"] >= 0
    assert state["best_loss"] == min(r["val_loss"] for r in run.reports)
    assert set(state["model"]) == set(run.model.state_dict()) and "state" in state["optimizer"]


def test_resume_from_a_finished_run_runs_nothing():
    run = Run(val_losses=[1.0, 1.0, 1.0])
    run(10, patience=2)
    assert run.states[-1]["stop"] == "plateau"
    again = Run()
    assert again(10, patience=2, resume=run.states[-1]) == {}
    assert again.reports == [] and again.asked == []


def test_plateau_counter_survives_a_resume():
    first = Run(val_losses=[1.0, 1.0])
    first(2, patience=3)  # one stale epoch so far
    resumed = Run(val_losses=[1.0, 1.0, 1.0])
    last = resumed(10, patience=3, resume=first.states[-1])
    assert [r["epoch"] for r in resumed.reports] == [3, 4]  # two more stale epochs make three
    assert last["stop"] == "plateau"


def test_amp_off_is_the_plain_fp32_step():
    run = Run()
    run(3, seed=3, amp="off")
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for epoch in range(1, 4):  # what the loop did before --amp existed, written out
        torch.manual_seed(3 * 100_003 + epoch)
        for x, y in Run().train_batches(epoch):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    for a, b in zip(run.model.parameters(), model.parameters()):
        assert torch.equal(a, b)  # bit for bit
    assert set(run.states[-1]) == {"epoch", "best_loss", "stale", "stop", "model", "optimizer"}  # no scaler


@pytest.mark.filterwarnings("ignore:.*CUDA is not available")
def test_fp16_checkpoints_carry_the_loss_scaler():
    # On a CPU GradScaler and autocast disable themselves (with a warning), so this runs the plumbing
    # only: the scaler's state rides in every checkpoint and a resumed run takes it back.
    first = Run()
    first(2, seed=1, amp="fp16")
    assert "scaler" in first.states[-1]
    resumed = Run()
    resumed(3, seed=1, amp="fp16", resume=first.states[-1])
    assert [r["epoch"] for r in resumed.reports] == [3] and "scaler" in resumed.states[-1]


# ---- the weight average (ema) and the before-epoch hook ----


def test_weight_average_follows_the_weights_with_timm_warm_up():
    model = nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update()  # step 1: decay min(0.9, 2/11)
    expected = start + (1 - 2 / 11) * 1.0
    assert torch.allclose(average.average["weight"], expected)
    with average.swapped_in():
        assert torch.allclose(model.weight, expected)
    assert torch.allclose(model.weight, start + 1.0)  # the trained weights are back


def test_ema_evaluates_the_average_and_resumes_exactly():
    plain, averaged = Run(), Run()
    plain(4, seed=1)
    averaged(4, seed=1, ema_decay=0.8)
    assert [r["train_loss"] for r in averaged.reports] == [r["train_loss"] for r in plain.reports]
    assert [r["val_loss"] for r in averaged.reports] != [r["val_loss"] for r in plain.reports]
    first = Run()
    first(2, seed=1, ema_decay=0.8)
    resumed = Run()
    resumed(4, seed=1, ema_decay=0.8, resume=first.states[-1])
    for a, b in zip(resumed.reports, averaged.reports[2:]):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)
    # the checkpoint's model is the evaluated average, and the model left at the end is too
    last = averaged.states[-1]
    assert not torch.equal(last["model"]["weight"], last["raw_model"]["weight"])
    assert torch.equal(averaged.model.weight.detach(), last["model"]["weight"])


def test_before_epoch_runs_before_every_epoch_and_its_modules_stay_in_eval_mode():
    run, seen, modes = Run(), [], []
    dropout = nn.Dropout(0.5)
    run.model = nn.Sequential(run.model, dropout)
    run.optimizer = torch.optim.SGD(run.model.parameters(), lr=0.5)

    def before(epoch):
        seen.append(epoch)
        return [dropout] if epoch == 1 else []  # eval mode in epoch 1 only

    def compute_loss(model, batch):
        modes.append(dropout.training)
        return F.cross_entropy(model(batch[0]), batch[1]), len(batch[1])

    run.compute_loss = compute_loss
    run(2, before_epoch=before)
    assert seen == [1, 2]
    assert modes == [False] * 4 + [True] * 4  # 4 batches an epoch
