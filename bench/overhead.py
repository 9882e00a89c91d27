"""Benchmark 1, Tune overhead: the same training (default config, 1 torch thread) run plainly in this
process and as one trial of a Tune search, compared per epoch; then the fixed costs of a search:
ray.init and the start of each trial with reuse_actors=True vs False. The Tune side includes the
trainable's per-epoch checkpoint; 1d times that write alone.
"""

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import default_config, gaps, median, row, run_trials, trainable, trial_settings, verdict
from trainables.image_classifier import fit_image_classifier
from trainables.image_task import trial_data
from trainables.settings import TrialSettings


def plain_run(ctx: dict, config: dict, settings: TrialSettings) -> dict:
    """fit_image_classifier in this process. Per epoch: epoch_seconds; between reports: wall and CPU
    seconds (this process's); and the seconds to write the last epoch's checkpoint state as the
    trainable does, measured afterwards so the epochs above do not include it."""
    train, evaluation = trial_data(ctx["data"])
    walls, cpus, metrics, states = [], [], [], []

    def report(m, state):
        walls.append(time.perf_counter())
        cpus.append(time.process_time())
        metrics.append(m)
        states[:] = [state]

    fit_image_classifier(config, settings, train, evaluation, report)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        torch.save(states[0](), Path(folder) / "state.pt")
        save = time.perf_counter() - started
    return {
        "epoch": [m["epoch_seconds"] for m in metrics],
        "gap": gaps(walls),
        "cpu": gaps(cpus),
        "save": save,
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
    }


def tune_run(ctx: dict, config: dict, settings: TrialSettings, name: str) -> dict:
    """The project's trainable as the only trial of a Tune run: the same measures, the gaps taken
    between results arriving at the driver and the CPU seconds read from the trial's process."""
    reports = run_trials(trainable(settings, ctx["data"]), config, ctx["storage"], name, reuse_actors=False)["reports"]
    return {
        "epoch": [r["epoch_seconds"] for r in reports],
        "gap": gaps([r["t"] for r in reports]),
        "cpu": gaps([r["cpu"] for r in reports]) if all(r["cpu"] is not None for r in reports) else [],
        "nice": reports[-1]["nice"],
    }


def tiny_data(data: dict, n_train: int = 64, n_val: int = 32) -> dict:
    """A few images of both classes, so a trial's own work is well under a second and its wall time
    is mostly the cost of starting it."""
    train_idx = data["train_idx"][np.linspace(0, len(data["train_idx"]) - 1, n_train).astype(np.int64)]
    val_idx = data["val_idx"][np.linspace(0, len(data["val_idx"]) - 1, n_val).astype(np.int64)]
    keep = np.concatenate([train_idx, val_idx])
    return {
        "images": np.ascontiguousarray(data["images"][keep]),
        "labels": data["labels"][keep],
        "train_idx": np.arange(n_train),
        "val_idx": np.arange(n_train, n_train + n_val),
        "key": f"{data['key']}:tiny",
    }


def trial_start_seconds(ctx: dict, trials: int, reuse_actors: bool) -> float:
    """Wall seconds per trial of `trials` one-epoch trials run one after another."""
    settings = trial_settings(ctx, max_epochs=1)
    config = default_config(frozen_layers=5, augment="none")  # the cheapest trial: only the head trains
    out = run_trials(
        trainable(settings, tiny_data(ctx["data"])),
        config,
        ctx["storage"],
        f"start-reuse-{reuse_actors}",
        num_samples=trials,
        max_concurrent=1,
        reuse_actors=reuse_actors,
    )
    return out["wall"] / trials


def run(ctx: dict) -> list[dict]:
    budget = ctx["budget"]
    epochs = budget["overhead_epochs"]
    config = default_config()
    settings = trial_settings(ctx, max_epochs=epochs)
    plain, tuned = [], []
    for rep in range(budget["overhead_reps"]):  # alternate, so a change in machine load hits both sides
        plain.append(plain_run(ctx, config, settings))
        tuned.append(tune_run(ctx, config, settings, f"overhead-{rep}"))
    pe, pg, pc = (median(v for r in plain for v in r[key]) for key in ("epoch", "gap", "cpu"))
    te, tg, tc = (median(v for r in tuned for v in r[key]) for key in ("epoch", "gap", "cpu"))
    save = median(r["save"] for r in plain)

    trials = budget["start_trials"]
    fresh = trial_start_seconds(ctx, trials, reuse_actors=False)
    reused = trial_start_seconds(ctx, trials, reuse_actors=True)
    init = median(ctx["ray_init_seconds"])
    n, gap_count = sum(len(r["epoch"]) for r in plain), sum(len(r["gap"]) for r in plain)
    return [
        row(
            "1a",
            f"Tune / plain: median epoch_seconds ({n} epochs each; trial process nice {tuned[-1]['nice']}, "
            f"plain nice {plain[-1]['nice']})",
            f"plain {pe:.2f} s",
            f"Tune {te:.2f} s",
            te / pe,
            "<= 1.05",
            verdict(te / pe <= 1.05),
        ),
        row(
            "1b",
            f"Tune / plain: median wall s between epoch reports ({gap_count} gaps each)",
            f"plain {pg:.2f} s",
            f"Tune {tg:.2f} s",
            tg / pg,
            "<= 1.05",
            verdict(tg / pg <= 1.05),
        ),
        row(
            "1c",
            "Tune / plain: median CPU s between epoch reports (the trial's whole process vs this one; "
            "one thread each, so other jobs hardly move it)",
            f"plain {pc:.2f} s",
            f"Tune {tc:.2f} s",
            tc / pc,
            "<= 1.05",
            verdict(tc / pc <= 1.05),
        ),
        row(
            "1d",
            "checkpoint write per epoch (torch.save of model + optimizer state, as the trainable does) / plain epoch",
            f"epoch {pe:.2f} s",
            f"save {save:.3f} s",
            save / pe,
        ),
        row(
            "1e",
            f"ray.init, in plain epochs (median of {len(ctx['ray_init_seconds'])})",
            f"epoch {pe:.2f} s",
            f"ray.init {init:.2f} s",
            init / pe,
        ),
        row(
            "1f",
            f"trial start, reuse_actors False / True ({trials} sequential 1-epoch trials)",
            f"reuse {reused:.2f} s/trial",
            f"fresh {fresh:.2f} s/trial",
            fresh / reused,
        ),
    ]
