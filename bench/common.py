"""What the benchmarks share: the quick and full budgets, the data (a per-class subset for --quick),
the trial settings the project's tuner builds, a private Ray, one Tune run that records every report
on the driver's clock, and the row format of the results table.
"""

import os
import statistics
import time
from pathlib import Path

import ray
from ray import tune

from search.tasks import get_task
from trainables.basics import with_defaults
from trainables.image_classifier import HYPERPARAMETERS
from trainables.image_task import ImageModel
from trainables.settings import TrialSettings
from trainables.settings import trial_settings as project_trial_settings
from trainables.trial import run_trial

SEED = 0  # the project's default --seed: split, sampler and training
VAL_FRACTION = 0.2  # the project's default --val-fraction

BUDGETS = {
    # --quick: 1.5-3 minutes on 2 cores (more under load); so small that Ray's fixed costs dominate
    "quick": {
        "image_size": 32,
        "per_class": 100,  # 200 of the 1400 train/ images, decoded at 37 px (200 a class: CI 20-30 s longer)
        "overhead_epochs": 2,
        "overhead_reps": 1,  # 2 epochs: one report-to-report gap per run (3 cost CI ~5 s more)
        "start_trials": 2,  # 2 fresh trial processes: ~6 s each here
        "init_reps": 1,
        "data_epochs": 2,
        "data_reps": 1,
        "frozen_epochs": 2,
        "search_epochs": 2,
        "grid": {"lr": [0.01, 0.001], "batch_size": [32, 64]},  # 2x2: 4 trials
        "cpu_trials": 2,
        "cpu_epochs": 2,
        "cpu_reps": 1,
    },
    # full: 15 minutes on 2 quiet cores, 25 under load; most of it the three searches of benchmark 4
    "full": {
        "image_size": 64,
        "per_class": None,  # the photos are 64 px; 160 (the CPU default) would not fit 30 min
        "overhead_epochs": 4,
        "overhead_reps": 2,
        "start_trials": 4,
        "init_reps": 3,
        "data_epochs": 2,
        "data_reps": 2,
        "frozen_epochs": 3,
        "search_epochs": 6,
        "grid": {"lr": [0.01, 0.001, 0.0001], "batch_size": [16, 32, 64]},  # the seed's grid
        "cpu_trials": 2,
        "cpu_epochs": 2,
        "cpu_reps": 2,  # 2 trials per run, each side run twice, alternating
    },
}


def default_config(**changes) -> dict:
    """Every hyperparameter at the task's default (d2l's recipe), with `changes` on top."""
    return with_defaults(HYPERPARAMETERS, changes)


def trial_settings(
    ctx: dict, max_epochs: int, threads: int = 1, patience: int = 0, cache_frozen: bool = True
) -> TrialSettings:
    """The settings every trial gets, built by the project's own trainables.settings.trial_settings (as
    a search's prepare does), on the CPU without mixed precision; the learning rate decays over
    `max_epochs`; patience=0 turns the plateau rule off, so every run lasts `max_epochs`."""
    weights = {ctx["backbone"]: ctx["weights"]} if ctx["weights"] is not None else None
    model = ImageModel(ctx["backbone"], ctx["image_size"], len(ctx["facts"]["classes"]), weights, cache_frozen)
    return project_trial_settings(
        model,
        epochs=max_epochs,
        schedule_epochs=max_epochs,
        seed=SEED,
        patience=patience,
        min_delta=1e-3,
        cpus=threads,
        gpus=0,
        amp="off",
    )


def trainable(settings: TrialSettings, data: dict):
    """The project's trainable for the hotdog task (trainables.trial.run_trial, which cuts the trial's
    train and evaluation sides from `data` and fills in default hyperparameters), wrapped as
    search.tuner.prepare_trials wraps it."""
    return tune.with_parameters(run_trial, task=get_task("hotdog"), settings=settings, data=data)


def subset_folder(root: Path, per_class: int, target: Path) -> Path:
    """An ImageFolder tree under `target` whose train/ holds symlinks to the first `per_class` images
    of every class (sorted by name) and whose test/ is the original one."""
    for class_dir in sorted(d for d in (root / "train").iterdir() if d.is_dir() and not d.name.startswith(".")):
        files = sorted(p for p in class_dir.iterdir() if p.is_file())[:per_class]
        (target / "train" / class_dir.name).mkdir(parents=True)
        for f in files:
            (target / "train" / class_dir.name / f.name).symlink_to(f.resolve())
    (target / "test").symlink_to((root / "test").resolve())
    return target


def start_ray(reps: int) -> list[float]:
    """Start our private Ray `reps` times (shutting down all but the last) and return the seconds
    each ray.init took."""
    seconds = []
    for i in range(reps):
        started = time.perf_counter()
        ray.init(address="local", include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        seconds.append(time.perf_counter() - started)
        if i < reps - 1:
            ray.shutdown()
    return seconds


def process_cpu(pid: int | None) -> tuple[float | None, int | None]:
    """(CPU seconds used so far, nice value) of process `pid`, from /proc; (None, None) elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[16])
    except (OSError, ValueError, IndexError, TypeError):
        return None, None


class Recorder(tune.Callback):
    """Every result a trial reports, stamped with the driver's clock when it arrives, with the trial
    process's CPU seconds so far and its nice value (Ray starts workers niced)."""

    def __init__(self):
        self.started = time.monotonic()
        self.reports: list[dict] = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        cpu, nice = process_cpu(result.get("pid"))
        self.reports.append(
            {
                "cpu": cpu,
                "nice": nice,
                "t": time.monotonic() - self.started,
                "trial": trial.trial_id,
                "epoch": result.get("epoch"),
                "val_accuracy": result.get("val_accuracy"),
                "val_loss": result.get("val_loss"),
                "epoch_seconds": result.get("epoch_seconds"),
            }
        )


def fit_recorded(tuner: tune.Tuner, recorder: Recorder) -> dict:
    """Run `tuner` (built with `recorder` among its callbacks); return its wall seconds and reports."""
    recorder.started = time.monotonic()
    grid = tuner.fit()
    wall = time.monotonic() - recorder.started
    if grid.errors:
        raise RuntimeError(f"{len(grid.errors)} trial(s) failed; first: {grid.errors[0]}")
    return {"wall": wall, "reports": recorder.reports}


def run_trials(
    trainable,
    param_space: dict,
    storage: Path,
    name: str,
    *,
    resources: dict | None = None,
    num_samples: int = 1,
    search_alg=None,
    scheduler=None,
    max_concurrent: int | None = None,
    reuse_actors: bool = True,
) -> dict:
    """One tune.Tuner run of `trainable` (already wrapped with tune.with_parameters); see fit_recorded."""
    recorder = Recorder()
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources or {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric="val_accuracy",
            mode="max",
            search_alg=search_alg,
            scheduler=scheduler,
            num_samples=num_samples,
            max_concurrent_trials=max_concurrent,
            reuse_actors=reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage),
            verbose=0,
            callbacks=[recorder],
            failure_config=tune.FailureConfig(max_failures=0),
            # as the project's tuner: the trainable checkpoints every epoch, keep one
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute="val_accuracy", checkpoint_score_order="max"
            ),
        ),
    )
    return fit_recorded(tuner, recorder)


def gaps(times: list[float]) -> list[float]:
    """Seconds between consecutive reports: a whole epoch each, setup excluded."""
    return [b - a for a, b in zip(times, times[1:])]


def median(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def row(id: str, what: str, baseline: str, measured: str, ratio: float, target: str = "-", held: str = "-") -> dict:
    """One line of the results table; `ratio` is explained by `what`."""
    return {
        "id": id,
        "what": what,
        "baseline": baseline,
        "measured": measured,
        "ratio": ratio,
        "target": target,
        "held": held,
    }


def verdict(ok: bool) -> str:
    return "yes" if ok else "no"


def load_average() -> float:
    return os.getloadavg()[0]
