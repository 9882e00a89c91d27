"""Turn a finished (or partial) search into a pandas table, `results.csv` and `best.yaml`, and read
`best.yaml` back, validated, for `search train`.

The best trial is chosen over every epoch each trial reported (not just its last one), because ASHA
stops trials part-way and a trial's best epoch is what `search train` reproduces. Epochs and trials
are ranked by the metric averaged over an epoch and its neighbours (`score`), equal scores by the
lower validation loss.
"""

import importlib.metadata
import math
import platform
import re
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from search.layout import write_atomic
from trainables.basics import UserError, check_value

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def error_summary(error: Any) -> str:
    """The line that says what went wrong (the exception's last line), without terminal colours."""
    lines = [line.strip() for line in ANSI.sub("", str(error or "")).splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def trial_row(
    trial_id: str,
    config: dict,
    history: pd.DataFrame | None,
    error: Any,
    metric: str,
    mode: str,
    max_epochs: int,
    stop: str | None = None,
) -> dict:
    """One table row: the trial's hyperparameters, how far it got, why it ended, its best epoch.
    `stop` is why the driver ended it (e.g. "timed out"), which its own reports cannot say."""
    row = {"trial_id": trial_id, **config}
    if history is None or history.empty or metric not in history:
        return {
            **row,
            "epochs": 0,
            "status": "errored" if error else stop or "stopped early",
            metric: math.nan,
            "score": math.nan,
            "best_epoch": 0,
            "val_loss": math.nan,
            "seconds": 0.0,
            "error": error_summary(error),
        }
    scores = history[metric].astype(float)
    history = history.assign(score=smoothed(history, metric))
    if scores.isna().all():  # every epoch reported NaN (a diverged trial)
        best = history.index[-1]
    else:
        best = ranked(candidates(history), metric, mode).index[0]
    last = history.iloc[-1]
    epochs = int(last.get("epoch", len(history)))
    stop = stop or (last.get("stop") if isinstance(last.get("stop"), str) else "")  # progress.csv turns "" into NaN
    if error:
        status = "errored"
    elif stop:
        status = stop
    else:
        status = "completed" if epochs >= max_epochs else "stopped early"
    return {
        **row,
        "epochs": epochs,
        "status": status,
        metric: float(history.loc[best, metric]),
        "score": float(history.loc[best, "score"]),
        "best_epoch": int(history.loc[best, "epoch"]),
        "val_loss": float(history.loc[best, "val_loss"]),
        "seconds": float(last.get("time_total_s", 0.0)),
        "error": error_summary(error),
    }


def smoothed(history: pd.DataFrame, metric: str) -> pd.Series:
    """Each epoch's `metric` averaged with the epochs either side of it (those the trial ran). On a
    small validation set one epoch can peak by luck: on hotdog (280 validation photos) a trial's
    0.889 at epoch 1, with 0.85-0.86 after it, won a search and then tested at 0.77 once retrained
    for that one epoch; ranked by this, a steadily good epoch wins instead."""
    ordered = history.sort_values("epoch") if "epoch" in history else history
    return ordered[metric].astype(float).rolling(3, center=True, min_periods=1).mean().reindex(history.index)


def candidates(history: pd.DataFrame) -> pd.DataFrame:
    """The epochs a trial may be represented by: not the first one when it ran more. Epoch 1 is a
    snapshot taken at the top of the learning-rate schedule with a head that is one epoch old, the
    least reproducible state of a run: hotdog's seed-2 search picked a trial's epoch 1 (0.889 on
    validation), which retrained for 1 epoch tested 0.77-0.80 over three seeds, for 2 epochs
    0.84-0.85 and for 4 epochs 0.86-0.87."""
    if "epoch" not in history or history["epoch"].max() < 2:
        return history
    return history[history["epoch"] >= 2]


def ranked(frame: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """`frame` (trials, or one trial's epochs) best first: by `score` (the smoothed metric) where
    there is one, else by `metric`; ties go to the lower val_loss (accuracy on a few hundred examples
    moves in steps, and the loss still tells equal scores apart). Stable; NaN last."""
    first = "score" if "score" in frame else metric
    keys = [first, "val_loss"] if "val_loss" in frame and first != "val_loss" else [first]
    return frame.sort_values(keys, ascending=[mode == "min", True][: len(keys)], na_position="last", kind="stable")


def results_table(rows: list[dict], metric: str, mode: str) -> pd.DataFrame:
    """All trials, best first (see `ranked`; errored and metric-less trials last)."""
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = ranked(table, metric, mode)
    table = table.sort_values("status", key=lambda status: status == "errored", kind="stable")
    return table.reset_index(drop=True)


def format_table(table: pd.DataFrame) -> str:
    shown = table.drop(columns=["error"], errors="ignore")
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def write_results_csv(table: pd.DataFrame, path: Path) -> None:
    write_atomic(path, table.to_csv(index=False))


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("search", "torch", "torchvision", "ray", "optuna"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def plain(value: Any) -> Any:
    """numpy scalars -> plain Python, so best.yaml holds only plain YAML scalars."""
    return value.item() if hasattr(value, "item") else value


def best_config(table: pd.DataFrame, task: str, metric: str, hyperparameters: dict, settings: dict, mode: str) -> dict:
    """The best.yaml document for the top row of `table`: everything `search train` needs."""
    ok = table[table["status"] != "errored"].dropna(subset=[metric])  # an errored trial is never the answer
    if ok.empty:
        raise UserError("no trial finished with a result, so there is no best configuration (see results.csv)")
    top = ok.iloc[0]
    values = {
        name: check_value(name, plain(top[name]), spec) if name in top and not pd.isna(top[name]) else spec.default
        for name, spec in hyperparameters.items()
    }  # check_value: a NaN-holed int column reads back as 128.0
    return {
        "task": task,
        **settings,
        "epochs": int(top["best_epoch"]),
        "hyperparameters": values,
        "metric": {
            "name": metric,
            "mode": mode,
            "value": float(top[metric]),
            "trial_id": str(top["trial_id"]),
            "score": float(top["score"]) if "score" in top else float(top[metric]),
        },
        "versions": package_versions(),
    }


def write_best_config(doc: dict, path: Path) -> None:
    write_atomic(path, yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))


def retraining(doc: dict, epochs: int | None = None, seed: int | None = None) -> dict:
    """What `search train` takes from a best.yaml, with its flags applied, for every task:
    the epochs (the search's best unless given), the learning-rate schedule's length (stretched when
    training longer than the search did, so the rate does not sit at 0) and the training seed (the
    search's unless given; the splits always keep the search's)."""
    epochs = epochs or doc["epochs"]
    if epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {epochs}")
    return {
        "epochs": epochs,
        "schedule_epochs": max(doc.get("schedule_epochs", epochs), epochs),
        "seed": doc.get("seed", 0) if seed is None else seed,
    }


def read_best_config(path: Path) -> dict:
    """Load and validate a best.yaml (possibly hand-edited); raise UserError naming the file and key."""
    from search.tasks import get_task

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: expected a mapping written by `search`, got {type(doc).__name__}")
    for key in ("task", "hyperparameters", "epochs", "data"):
        if key not in doc:
            raise UserError(f"{path}: missing key {key!r}")
    try:
        spec = get_task(doc["task"]).hyperparameters
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    values = doc["hyperparameters"]
    if not isinstance(values, dict):
        raise UserError(f"{path}: hyperparameters must be a mapping")
    unknown = sorted(set(values) - set(spec))
    if unknown:
        raise UserError(f"{path}: unknown hyperparameter {unknown[0]!r} for task {doc['task']}")
    try:
        doc["hyperparameters"] = {name: check_value(name, values.get(name, p.default), p) for name, p in spec.items()}
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    if isinstance(doc["epochs"], bool) or not isinstance(doc["epochs"], int) or doc["epochs"] < 1:
        raise UserError(f"{path}: epochs must be a whole number >= 1, got {doc['epochs']!r}")
    return doc
