"""`search train best.yaml`, for every task: train the chosen configuration once more, on train +
validation, for the epochs the search found best, and report the test metric after each epoch
(the only place the test split is read); or, with a checkpoint, test the best trial's model as it
is. Writes the model (as the task saves it), model.yaml beside it (what using it needs) and
metrics.json. The task supplies the data, the model and its scores; this driver does the rest the
same way for all of them.
"""

import json
import math
import pickle
import time
from collections.abc import Callable
from pathlib import Path

import torch

from search.layout import METRICS, MODEL_INFO, write_atomic
from search.model_dir import model_info, write_model_info
from search.results import package_versions, retraining
from search.tasks import get_task
from trainables import checkpoints
from trainables.basics import UserError
from trainables.settings import trial_settings


def as_test(metrics: dict) -> dict:
    """An epoch's report as measured on test: val_* named test_*, the loop's stop reason dropped."""
    return {key.replace("val_", "test_"): value for key, value in metrics.items() if key != "stop"}


def print_epoch(row: dict, epochs: int) -> None:
    shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("test_") or k == "train_loss")
    print(f"epoch {row['epoch']}/{epochs}  {shown}  ({row['epoch_seconds']:.0f}s)", flush=True)


def load_checkpoint(checkpoint: Path | str) -> dict:
    try:
        return checkpoints.load_state(checkpoint)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as e:  # missing, damaged, or holding code
        raise UserError(f"cannot load checkpoint {checkpoint}: {str(e).splitlines()[0]}") from None


def train_best_config(
    doc: dict,
    output: Path,
    data: str | None = None,
    pretrained: bool | None = None,
    epochs: int | None = None,
    checkpoint: Path | str | None = None,
    seed: int | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Train `doc` (a validated best.yaml) and evaluate on the test split; returns the metrics
    written. With `checkpoint` (the best trial's), skip training: test the model saved there.
    `seed` replaces the search's seed for the training only (initialisation, order, augmentation).
    `on_epoch` gets each epoch's row as printed (--mlflow's run logs them)."""
    task = get_task(doc["task"])
    pretrained = doc.get("pretrained", True) if pretrained is None else pretrained
    run = retraining(doc, epochs, seed)
    final = task.final_data(task, doc, data, pretrained, with_train=checkpoint is None)
    output = output.expanduser().resolve()
    output.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config, started = doc["hyperparameters"], time.monotonic()
    if checkpoint is not None:
        state = load_checkpoint(checkpoint)
        model = task.load_model(final, config, state).to(device)
        scores = as_test(task.evaluate(model, final, config, device))
        trained = {"epochs": state["epoch"], "from_checkpoint": str(checkpoint)}
    else:
        settings = trial_settings(
            final.model,
            epochs=run["epochs"],
            schedule_epochs=run["schedule_epochs"],
            seed=run["seed"],
            patience=0,
            min_delta=0.0,  # test/ only measures: never stops
            cpus=torch.get_num_threads(),
            gpus=int(device == "cuda"),
            amp="off",
        )
        print(f"{task.name}: training {final.describe} ({run['epochs']} epochs)", flush=True)
        history = []

        def report(metrics: dict, state) -> None:
            history.append(as_test(metrics))
            print_epoch(history[-1], run["epochs"])
            if on_epoch:
                on_epoch(history[-1])

        model = task.fit(config, settings, final.train, final.test, report)
        scores = {k: v for k, v in history[-1].items() if k.startswith("test_")}
        trained = {"epochs": run["epochs"], "seed": run["seed"], "from_checkpoint": None}
    scores.update(task.test_extras(model, final, config, device))
    saved = task.save_model(model, final, output)
    metrics = {
        "task": task.name,
        **scores,
        **trained,
        **final.facts,
        "hyperparameters": config,
        "seconds": time.monotonic() - started,
    }
    if checkpoint is None:
        metrics["history"] = history
    metrics["versions"] = package_versions()
    write_atomic(output / METRICS, json.dumps(metrics, indent=2, default=float) + "\n")
    write_model_info(output, model_info(task, final, config, saved.relative_to(output), scores, trained))
    shown = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float) and math.isfinite(v))
    what = f"tested the checkpoint {checkpoint} (epoch {state['epoch']}): " if checkpoint is not None else ""
    print(f"{task.name}: {what}{shown}; wrote {saved}, {output / MODEL_INFO} and {output / METRICS}")
    return metrics
