"""The one training loop every task shares: epochs of SGD steps, an evaluation after each epoch,
a report per epoch (with the state to checkpoint), and the plateau rule (stop when validation loss
has improved by less than `min_delta` for `patience` epochs). Tasks differ only in the batches, the
loss and the metrics.

Each epoch reseeds torch from (seed, epoch), so a run resumed from the checkpoint of epoch k
replays epochs k+1... exactly as an uninterrupted run would.
"""

import contextlib
import ctypes
import gc
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Iterable

import torch
from torch import nn

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}  # --amp: autocast's dtype on CUDA; "off": fp32


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's randomness (shuffling, crops, flips, dropout): a function of the run's
    seed and the epoch alone, so a run resumed at epoch k replays epoch k+1 as an uninterrupted one."""
    return seed * 100_003 + epoch


def resident_mb() -> float:
    """This process's resident memory in MB (reported each epoch, so growth across trials shows)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the peak instead
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def release_memory() -> None:
    """Hand a finished trial's memory back before the reused actor runs the next one. Python frees
    the model, optimizer and caches, but glibc keeps the freed pages: measured here, a reused Ray
    actor grew ~30 MB per trial without the trim and ~3 MB with it."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:  # not glibc (e.g. musl): nothing to trim
            pass


def stop_requested() -> bool:
    """Whether Tune has told this trial to stop (ASHA, the search's end). Its training thread then
    leaves at the next batch, as Ray's own report does (sys.exit), instead of finishing the epoch: a
    reused actor waits only 2 s (TUNE_FUNCTION_THREAD_TIMEOUT_S) for it before refusing the next
    trial. Always False outside a Tune trial (`search train`)."""
    if "ray" not in sys.modules:
        return False
    from ray.train._internal.session import get_session

    session = get_session()
    return session is not None and session.stop_event.is_set()


class WeightAverage:
    """An exponential moving average of a model's trainable weights and floating-point buffers
    (BatchNorm's running statistics), for evaluation: `swapped_in()` puts the average in the model
    for a with-block. The decay warms up as min(decay, (1 + t) / (10 + t)) over steps t, timm's rule,
    so a short run is not dominated by its starting point."""

    def __init__(self, model: nn.Module, decay: float):
        self.model, self.decay, self.steps = model, decay, 0
        self.average = {name: t.detach().clone() for name, t in self.tensors().items()}

    def tensors(self) -> dict:
        trained = {name: p for name, p in self.model.named_parameters() if p.requires_grad}
        return {**trained, **{name: b for name, b in self.model.named_buffers() if b.is_floating_point()}}

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for name, tensor in self.tensors().items():
            self.average[name].lerp_(tensor.detach(), 1 - decay)

    @torch.no_grad()
    def copy_into_model(self) -> dict:
        """Put the average in the model; return the weights it replaced."""
        tensors = self.tensors()
        kept = {name: t.detach().clone() for name, t in tensors.items()}
        for name, tensor in tensors.items():
            tensor.copy_(self.average[name])
        return kept

    @contextlib.contextmanager
    def swapped_in(self):
        kept = self.copy_into_model()
        try:
            yield
        finally:
            with torch.no_grad():
                for name, tensor in self.tensors().items():
                    tensor.copy_(kept[name])

    def state_dict(self) -> dict:
        return {"steps": self.steps, "average": dict(self.average)}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        for name, tensor in state["average"].items():
            self.average[name].copy_(tensor)


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable,
    compute_loss: Callable,
    frozen: list[nn.Module] = (),
    amp: str = "off",
    scaler: torch.amp.GradScaler | None = None,
    scheduler=None,
    average: WeightAverage | None = None,
) -> float:
    """One pass over `batches`; returns the mean training loss per example (NaN as soon as a loss is
    not finite, without taking that step). `amp` bf16/fp16 runs the forward pass under CUDA autocast;
    `scaler` (fp16) scales the loss so small gradients do not underflow. `scheduler`, if any, steps
    after every optimizer step, and so does the weight `average`."""
    model.train()
    for module in frozen:  # frozen BatchNorm keeps its pretrained statistics
        module.eval()
    total, count = 0.0, 0
    for batch in batches:
        if stop_requested():  # let go at once: the actor is wanted for the next trial (see stop_requested)
            sys.exit(0)
        with torch.autocast("cuda", dtype=AMP_DTYPES[amp]) if amp != "off" else contextlib.nullcontext():
            loss, n = compute_loss(model, batch)
        if not math.isfinite(loss.item()):
            return float("nan")
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:  # skips the step when the scaled gradients overflowed, and adjusts the scale
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        if scheduler is not None:
            scheduler.step()
        if average is not None:
            average.update()
        total += loss.item() * n
        count += n
    return total / max(count, 1)


def run_epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    train_batches: Callable[[int], Iterable],
    compute_loss: Callable,
    evaluate: Callable[[nn.Module], dict],
    report: Callable[[dict, Callable], None],
    frozen: list[nn.Module] = (),
    seed: int = 0,
    patience: int = 0,
    min_delta: float = 0.0,
    saved_model: nn.Module | None = None,
    resume: dict | None = None,
    amp: str = "off",
    scheduler=None,
    before_epoch: Callable[[int], list[nn.Module]] | None = None,
    ema_decay: float = 0.0,
) -> dict:
    """Train `model` for up to `epochs` epochs; after each, call `report(metrics, state)` where
    `state()` returns what a checkpoint needs (epoch, plateau counters, `saved_model`'s, the
    optimizer's and `scheduler`'s state_dicts, fp16's loss scaler, the weight average). `resume` is
    such a state: training continues after its epoch. `amp` is "off" (fp32), or "bf16"/"fp16" on
    CUDA (see train_one_epoch). `before_epoch(epoch)`, if given, runs before each epoch (e.g. LP-FT
    unfreezing) and returns modules to keep in eval mode that epoch besides `frozen`. With
    `ema_decay` > 0, evaluation (and the model left at the end) uses an exponential moving average
    of `model`'s trainable weights (WeightAverage); the checkpoint's "model" holds the average too.

    `evaluate(model)` must return at least `val_loss`. patience=0 turns the plateau rule off.
    Every report carries `epoch`, `train_loss`, the evaluation, `epoch_seconds`, `rss_mb` and `stop`
    ("" while training goes on, else why it stopped early: "plateau" or "nan loss").
    """
    saved_model = saved_model or model
    start, best_loss, stale, metrics = 0, math.inf, 0, {}
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None  # bf16 has fp32's range: nothing to scale
    average = WeightAverage(model, ema_decay) if ema_decay > 0 else None
    if resume is not None:
        saved_model.load_state_dict(resume["raw_model"] if average is not None else resume["model"])
        if average is not None:
            average.load_state_dict(resume["average"])
        optimizer.load_state_dict(resume["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(resume["scheduler"])
        if scaler is not None and "scaler" in resume:
            scaler.load_state_dict(resume["scaler"])
        start, best_loss, stale = resume["epoch"], resume["best_loss"], resume["stale"]
        if resume["stop"]:  # the run had already ended when it was checkpointed
            return {}
    for epoch in range(start + 1, epochs + 1):
        started = time.perf_counter()
        torch.manual_seed(epoch_seed(seed, epoch))  # random crops/flips/dropout of this epoch, whatever came before
        also_frozen = before_epoch(epoch) if before_epoch is not None else []
        train_loss = train_one_epoch(
            model,
            optimizer,
            train_batches(epoch),
            compute_loss,
            [*frozen, *also_frozen],
            amp,
            scaler,
            scheduler,
            average,
        )
        model.eval()
        with torch.no_grad(), average.swapped_in() if average is not None else contextlib.nullcontext():
            metrics = {"epoch": epoch, "train_loss": train_loss, **evaluate(model)}
        stale = 0 if metrics["val_loss"] < best_loss - min_delta else stale + 1
        best_loss = min(best_loss, metrics["val_loss"])
        if math.isnan(train_loss) or math.isnan(metrics["val_loss"]):
            metrics["stop"] = "nan loss"  # a diverged run: no point spending the rest of its budget
        else:
            metrics["stop"] = "plateau" if patience and stale >= patience and epoch < epochs else ""
        metrics["epoch_seconds"] = time.perf_counter() - started
        metrics["rss_mb"] = resident_mb()
        if torch.cuda.is_available() and torch.cuda.is_initialized():  # GPU memory held: growth across trials shows
            metrics["gpu_mb"] = torch.cuda.memory_allocated() / 2**20

        def state(epoch=epoch, best_loss=best_loss, stale=stale, stop=metrics["stop"]):
            saved = {
                "epoch": epoch,
                "best_loss": best_loss,
                "stale": stale,
                "stop": stop,
                "model": saved_model.state_dict(),
                "optimizer": optimizer.state_dict(),
            }
            if average is not None:  # "model": the weights evaluated (the average); "raw_model": to train on
                saved["raw_model"] = {k: v.clone() for k, v in saved["model"].items()}
                with average.swapped_in():
                    saved["model"] = {k: v.clone() for k, v in saved_model.state_dict().items()}
                saved["average"] = average.state_dict()
            if scheduler is not None:
                saved["scheduler"] = scheduler.state_dict()
            return saved if scaler is None else {**saved, "scaler": scaler.state_dict()}

        report(metrics, state)
        if metrics["stop"]:
            break
    if average is not None:  # the model returned is the one evaluated
        average.copy_into_model()
    return metrics
