"""Run a search: prepare the task's data and weights once, start (or join) Ray, build a
`tune.Tuner` with Optuna's seeded TPE and ASHA (epochs are the resource), and write the results
table and best.yaml as trials finish.
"""

import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from search import results as res
from search.errors import UserError
from search.tasks import Task, default_image_size, get_task, load_image_weights, prepare_image_data
from spaces import load_space

EXPERIMENT = "trials"  # Ray's experiment folder inside --output


@dataclass
class SearchOptions:
    """Everything a search needs, as plain data (the CLI builds it; tests build it directly)."""

    task: str
    output: Path
    data: str | None = None
    space: Path | None = None
    trials: int = 16
    max_epochs: int = 8
    time_budget: float | None = None  # seconds
    max_concurrent: int | None = None  # None: as many as the CPUs/GPUs allow
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    seed: int = 0
    backbone: str = "auto"
    pretrained: bool = True
    image_size: int | None = None  # None: default_image_size()
    val_fraction: float = 0.2
    patience: int = 3
    min_delta: float = 1e-3
    grace_period: int = 1  # epochs every trial gets before ASHA may stop it
    reduction_factor: int = 2  # ASHA keeps the top 1/reduction_factor at each rung
    address: str | None = None  # None: a private local Ray
    overwrite: bool = False
    verbose: bool = False

    def validate(self) -> None:
        checks = [
            (self.trials >= 1, f"--trials must be at least 1, got {self.trials}"),
            (self.max_epochs >= 1, f"--max-epochs must be at least 1, got {self.max_epochs}"),
            (self.time_budget is None or self.time_budget > 0, f"--time-budget must be positive, got {self.time_budget}"),
            (self.max_concurrent is None or self.max_concurrent >= 1, f"--max-concurrent must be at least 1, got {self.max_concurrent}"),
            (self.cpus_per_trial > 0, f"--cpus-per-trial must be positive, got {self.cpus_per_trial}"),
            (self.gpus_per_trial >= 0, f"--gpus-per-trial must not be negative, got {self.gpus_per_trial}"),
            (self.image_size is None or 16 <= self.image_size <= 1024, f"--image-size must be in [16, 1024], got {self.image_size}"),
            (0 < self.val_fraction < 1, f"--val-fraction must be between 0 and 1, got {self.val_fraction}"),
            (self.patience >= 0, f"--patience must not be negative, got {self.patience}"),
            (1 <= self.grace_period <= self.max_epochs, f"--grace-period must be in [1, --max-epochs], got {self.grace_period}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)


class TrialPrinter(tune.Callback):
    """One line per finished trial: its number, hyperparameters, best score and how it ended."""

    def __init__(self, total: int, metric: str, mode: str, names: list[str], max_epochs: int, on_finish=None):
        self.total, self.metric, self.mode, self.names, self.max_epochs = total, metric, mode, names, max_epochs
        self.on_finish = on_finish
        self.done = 0
        self.best: dict[str, float] = {}
        self.started = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        if value is not None and not math.isnan(value):
            old = self.best.get(trial.trial_id)
            if old is None or (value > old if self.mode == "max" else value < old):
                self.best[trial.trial_id] = value

    def _finished(self, trial, failed: bool):
        self.done += 1
        last = trial.last_result or {}
        epochs = last.get("epoch", 0)
        if failed:
            how = "errored"
        elif last.get("stop"):
            how = last["stop"]
        else:
            how = "completed" if epochs >= self.max_epochs else "stopped early"
        params = " ".join(f"{k}={_short(trial.config.get(k))}" for k in self.names)
        score = self.best.get(trial.trial_id, math.nan)
        elapsed = time.monotonic() - self.started
        print(f"[{self.done}/{self.total} {elapsed:5.0f}s] {trial.trial_id}  {params}  "
              f"{self.metric}={score:.4f} after {epochs} epoch(s), {how}", flush=True)
        if self.on_finish:
            self.on_finish()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finished(trial, failed=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finished(trial, failed=True)


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def quiet_logging(verbose: bool) -> None:
    """Ray and Optuna log a lot by default; keep warnings and errors unless -v."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
    level = logging.INFO if verbose else logging.ERROR
    for name in ("ray", "ray.tune", "ray.train", "ray.data"):
        logging.getLogger(name).setLevel(level)
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)


def start_ray(address: str | None, verbose: bool) -> bool:
    """Start a private local Ray (address="local", so a cluster already on this machine is never
    joined by accident), or connect to --address. Returns whether we started it."""
    if ray.is_initialized():
        return False
    ray.init(address=address or "local", include_dashboard=False, logging_level=logging.INFO if verbose else logging.ERROR,
             log_to_driver=verbose, configure_logging=True)
    return True


def prepare_output(output: Path, overwrite: bool) -> Path:
    output = output.expanduser().resolve()
    if (output / EXPERIMENT).exists() or (output / "results.csv").exists():
        if not overwrite:
            raise UserError(f"{output} already holds a search; pass --overwrite to replace it, or choose another --output")
        shutil.rmtree(output / EXPERIMENT, ignore_errors=True)
        for name in ("results.csv", "best.yaml"):
            (output / name).unlink(missing_ok=True)
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to output directory {output}: {e.strerror or e}") from None
    return output


def build_tuner(task: Task, options: SearchOptions, space: dict, trainable, callbacks: list) -> tune.Tuner:
    # TPE needs a few random points before it models anything; a third of the budget, 3 to 10 of them
    startup = min(10, max(3, options.trials // 3))
    searcher = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=options.seed, n_startup_trials=startup))
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=options.max_epochs,
                              grace_period=options.grace_period, reduction_factor=options.reduction_factor)
    resources = {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial}
    return tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=task.metric, mode=task.mode, search_alg=searcher, scheduler=scheduler,
            num_samples=options.trials, max_concurrent_trials=options.max_concurrent,
            time_budget_s=options.time_budget, reuse_actors=True,  # a fresh trial process costs 6-8 s here
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT, storage_path=str(options.output), verbose=0, callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )


def run_search(options: SearchOptions) -> tuple:
    """The whole search; returns (results table, best.yaml document)."""
    options.validate()
    task = get_task(options.task)
    space = load_space(options.space or task.space_file, task.hyperparameters)
    options.output = prepare_output(options.output, options.overwrite)
    quiet_logging(options.verbose)

    image_size = options.image_size or default_image_size()
    data, facts = prepare_image_data(options.data, image_size, options.val_fraction, options.seed)
    backbone, weights, source = load_image_weights(options.backbone, options.pretrained)
    counts = ", ".join(f"{k} {v}" for k, v in facts["class_counts"].items())
    print(f"{task.name}: {facts['data']}: {facts['train_images']} train / {facts['val_images']} validation images "
          f"({counts}); backbone {backbone}, weights: {source}; image size {image_size}", flush=True)

    gpus = options.gpus_per_trial > 0
    settings = {
        "backbone": backbone, "image_size": image_size, "num_classes": len(facts["classes"]),
        "max_epochs": options.max_epochs, "patience": options.patience, "min_delta": options.min_delta,
        "seed": options.seed, "threads": max(1, int(options.cpus_per_trial)), "device": "cuda" if gpus else "cpu",
    }
    record = {  # what best.yaml carries besides the hyperparameters
        "data": facts["data"], "backbone": backbone, "pretrained": options.pretrained, "weights": source,
        "image_size": image_size, "val_fraction": options.val_fraction, "seed": options.seed,
        "classes": facts["classes"],
    }
    names = [k for k, v in space.items() if hasattr(v, "sample")]  # the searched ones
    fixed = {k: v for k, v in space.items() if k not in names}

    started_ray = start_ray(options.address, options.verbose)
    try:
        trainable = tune.with_parameters(task.trainable, settings=settings, data=data, weights=weights)
        printer = TrialPrinter(options.trials, task.metric, task.mode, names, options.max_epochs)
        tuner = build_tuner(task, options, space, trainable, [printer])
        started = time.monotonic()
        grid = tuner.fit()
        wall = time.monotonic() - started
    finally:
        if started_ray:
            ray.shutdown()

    table = res.table_from_results(grid, task.metric, task.mode, options.max_epochs)
    table = table[["trial_id", *names, *fixed, *[c for c in table.columns if c not in ("trial_id", *names, *fixed)]]]
    res.write_results_csv(table, options.output / "results.csv")
    print()
    print(res.format_table(table.drop(columns=list(fixed))))
    best = res.best_config(table, task.name, task.metric, task.hyperparameters, record)
    res.write_best_config(best, options.output / "best.yaml")
    print(f"\nbest {task.metric} {best['metric']['value']:.4f} (trial {best['metric']['trial_id']}, epoch {best['epochs']}); "
          f"{len(table)} trials in {wall:.0f}s")
    print(f"wrote {options.output / 'results.csv'} and {options.output / 'best.yaml'}")
    print(f"train the final model: python -m search train {options.output / 'best.yaml'}")
    return table, best
