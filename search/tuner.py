"""Run a search: prepare the task's data and weights once, start (or join) Ray, build a
`tune.Tuner` with Optuna's seeded TPE and ASHA (epochs are the resource), and write the results
table and best.yaml as trials finish. `resume_search` continues an interrupted search with
`Tuner.restore`: finished trials are kept, unfinished ones continue from their last checkpoint,
and the searcher's and ASHA's state come back with them.
"""

import functools
import os
import shutil
import signal
import time
from pathlib import Path

import optuna
import yaml
from ray import tune
from ray.tune.search.optuna import OptunaSearch

import search.checkpoint_deletion  # noqa: F401  (patches Ray on import: no checkpoint a saved state names is deleted)
from search import results as res
from search import selection, storage, tracking, watch
from search.layout import TRIALS, Layout, write_atomic
from search.options import SearchOptions, load_options, save_options
from search.progress import SearchProgress, driver_stop
from search.resources import trial_request
from search.session import configure_ray_env, experiment_path, ray_session
from search.tasks import get_task
from search.warm_start import load_warm_start
from search.warm_start import summary as warm_summary
from search.watch import WatchedASHA
from spaces import load_space, parse_space
from trainables.basics import SearchInterrupted, UserError
from trainables.task import Task
from trainables.trial import run_trial


def check_output(output: Path, overwrite: bool, experiment: str | None = None) -> Path:
    """Refuse an output folder (or a storage `experiment` elsewhere) that holds another search
    (unless --overwrite), or an output folder that cannot be written; writes nothing, so a refused
    search leaves everything as it was."""
    output = output.expanduser().resolve()
    if experiment and not overwrite and storage.is_dir(experiment):
        raise UserError(
            f"{experiment} already holds a search's trials; pass --overwrite to replace it "
            f"or choose another --storage-path"
        )
    layout = Layout(output)
    if any(path.exists() for path in (layout.trials, layout.results, layout.options)) and not overwrite:
        raise UserError(
            f"{output} already holds a search; pass --overwrite to replace it, "
            f"`python -m search resume {output}` to continue it, or choose another --output"
        )
    existing = next(p for p in (output, *output.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to output directory {output}: {existing} is not a writable directory")
    return output


def clear_output(output: Path, experiment: str | None = None) -> None:
    """Remove an earlier search's files (--overwrite), its trials in the storage `experiment` too,
    and create the folder."""
    layout = Layout(output)
    shutil.rmtree(layout.trials, ignore_errors=True)
    if experiment:
        storage.remove_dir(experiment)
    for path in layout.search_files():
        path.unlink(missing_ok=True)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write to output directory {output}: {e.strerror or e}") from None


def make_scheduler(options: SearchOptions) -> WatchedASHA:
    return watch.watched_asha(options, options.grace_period)


def build_tuner(
    task: Task,
    options: SearchOptions,
    space: dict,
    trainable,
    scheduler: WatchedASHA,
    callbacks: list,
    warm: dict | None = None,
) -> tune.Tuner:
    """`warm`: OptunaSearch's points_to_evaluate and evaluated_rewards (search/warm_start.py)."""
    # TPE needs a few random points before it models anything: a third of the budget, 3 to 10 of them
    # (warm-start points count among them: the sampler is told them as finished trials)
    startup = min(10, max(3, options.trials // 3))
    sampler = optuna.samplers.TPESampler(seed=options.seed, n_startup_trials=startup)
    searcher = OptunaSearch(sampler=sampler, **(warm or {}))
    if not searched_names(space):  # Optuna cannot sample an empty space: Tune runs the one fixed configuration
        searcher = None
    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=task.metric,
            mode=task.mode,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=options.trials,
            max_concurrent_trials=options.max_concurrent,
            time_budget_s=options.time_budget,
            reuse_actors=True,  # a fresh trial process costs 6-8 s here
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=TRIALS,
            storage_path=options.storage_path or str(options.output),
            verbose=0,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            # keep each trial's best epoch (for `search train --from-checkpoint`) and its latest (to resume)
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute=task.metric, checkpoint_score_order=task.mode
            ),
        ),
    )


def prepare_trials(task: Task, options: SearchOptions) -> tuple:
    """Load the data and weights once (the task's `prepare`); return (trainable, record for best.yaml)."""
    prepared = task.prepare(task, options)
    print(prepared.summary, flush=True)
    if options.max_epochs is None:  # the task chose it from the data
        options.max_epochs = prepared.settings.epochs
        options.validate()
    trainable = tune.with_parameters(run_trial, task=task, settings=prepared.settings, data=prepared.data)
    resources = {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial}
    if options.memory_per_trial:
        resources["memory"] = trial_request(options)["memory"]
    return tune.with_resources(trainable, resources), prepared.record


def searched_names(space: dict) -> list[str]:
    return [name for name, value in space.items() if hasattr(value, "sample")]


def write_tables(
    rows: list[dict],
    output: Path,
    experiment: str,
    task_name: str,
    metric: str,
    mode: str,
    max_epochs: int,
    names: list[str],
    hyperparameters: dict,
    record: dict,
    picked: list | None = None,
) -> tuple:
    """results.csv (every trial, best first) and best.yaml (the top trial), both written atomically;
    `picked`: the selection's candidates, best mean first (search/selection.py), which lead both."""
    table = res.results_table(
        [
            res.trial_row(r["trial_id"], r["config"], r["history"], r["error"], metric, mode, max_epochs, r.get("stop"))
            for r in rows
        ],
        metric,
        mode,
    )
    if table.empty:
        return table, None
    leading = ["trial_id", *[n for n in names if n in table]]
    table = table[leading + [c for c in table.columns if c not in leading]]
    if picked:
        table = selection.apply(table, picked)
    layout = Layout(output)
    res.write_results_csv(table, layout.results)
    try:
        best = res.best_config(table, task_name, metric, hyperparameters, record, mode)
    except UserError:  # no trial has a score yet
        return table, None
    top = next(r for r in rows if r["trial_id"] == best["metric"]["trial_id"])
    best["checkpoint"] = _best_checkpoint(
        storage.join(experiment, top["trial_id"]), top["history"], metric, mode, output, best["epochs"]
    )
    if picked:
        best["selection"] = selection.block(picked)
    res.write_best_config(best, layout.best)
    return table, best


def _best_checkpoint(trial_dir: str, history, metric: str, mode: str, output: Path, best_epoch: int) -> str | None:
    """The kept checkpoint of the table's best_epoch, else the best-ranked kept one: Ray keeps the
    checkpoint with the best raw metric and the latest, while best_epoch comes from the smoothed
    score, so it may have neither. Relative to `output` when the trials are kept there (the folder
    may move), else absolute or a URI."""
    if history is None or "checkpoint_dir_name" not in history:
        return None
    folders = storage.list_dirs(trial_dir)
    kept = history[history["checkpoint_dir_name"].map(lambda name: isinstance(name, str) and name in folders)]
    if kept.empty:
        return None
    exact = kept[kept["epoch"] == best_epoch] if "epoch" in kept else kept.iloc[:0]
    row = exact.iloc[-1] if not exact.empty else res.ranked(kept.astype({metric: float}), metric, mode).iloc[0]
    path = storage.join(trial_dir, row["checkpoint_dir_name"])
    return (
        str(Path(path).relative_to(output)) if not storage.is_uri(path) and Path(path).is_relative_to(output) else path
    )


def _fit(tuner: tune.Tuner):
    """tuner.fit(), turning Ctrl-C and SIGTERM into Tune's graceful stop (state saved), then
    SearchInterrupted. A second Ctrl-C aborts at once."""
    interrupted = []

    def stop(signum, frame):
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(signum)
        print("\nstopping: saving the search state (Ctrl-C again to abort at once)", flush=True)
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's own graceful-stop signal

    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # our handler above does it, and remembers it did
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    watch.stop_reasons.clear()
    try:
        grid = tuner.fit()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if interrupted:
        raise SearchInterrupted()
    if watch.stop_reasons:
        raise SearchStopped(watch.stop_reasons[0])
    return grid


class SearchStopped(Exception):
    """The watch or the progress callback stopped the search (state saved): a UserError once the
    resume line is added."""


def _run(task: Task, options: SearchOptions, space: dict, trainable, record: dict, tuner_factory) -> tuple:
    """Fit (Ray is up: see ray_session), and write the final table and best.yaml."""
    names = searched_names(space)
    layout = Layout(options.output)
    writer = functools.partial(
        write_tables,
        output=options.output,
        experiment=experiment_path(options),
        task_name=task.name,
        metric=task.metric,
        mode=task.mode,
        max_epochs=options.max_epochs,
        names=names,
        hyperparameters=task.hyperparameters,
        record=record,
    )
    started = time.monotonic()
    tuner = tuner_factory(space, trainable, writer, names)
    try:
        grid = _fit(tuner)
    except SearchInterrupted:
        raise SearchInterrupted(
            f"interrupted; the trials finished so far are in {layout.results}; "
            f"continue with: python -m search resume {options.output}"
        ) from None
    except SearchStopped as e:
        raise UserError(f"{e}; the search is saved: continue with: python -m search resume {options.output}") from None
    except Exception as e:
        full = storage.write_failure(e)  # Tune's own state or a checkpoint could not be written
        if full is None:
            raise
        raise UserError(f"{full}; continue with: python -m search resume {options.output} once it can be") from None
    wall = time.monotonic() - started

    rows = [
        {
            # the trial's folder is named by its id (trial_dirname_creator); r.metrics of a trial that
            # failed as its reused actor started can be the previous trial's last report
            "trial_id": Path(r.path).name,
            "config": r.config,
            "history": r.metrics_dataframe,
            "error": r.error,
            "stop": driver_stop(r.metrics),
        }
        for r in grid
        if r.config is not None  # a trial the time budget ended before it started: nothing to record
    ]
    try:
        table, best = writer(rows)
    except OSError as e:
        raise UserError(
            f"{storage.cannot_write(e)}; the last good {layout.results.name} is kept: continue with: "
            f"python -m search resume {options.output} once it can be written"
        ) from None
    # the selection gets what is left of --time-budget: the budget is the whole search's
    time_left = options.time_budget - (time.monotonic() - started) if options.time_budget else None
    picked = selection.reselect(task, options, trainable, rows, table, names, _fit, time_left) if best else None
    if picked:
        table, best = writer(rows, picked=picked)
    if not table.empty:
        print()
        print(res.format_table(table.drop(columns=[c for c in space if c not in names], errors="ignore")))
    if best is None:
        raise UserError(f"no trial reported a result (see {layout.results})")
    print(
        f"\nbest {task.metric} {best['metric']['value']:.4f} (trial {best['metric']['trial_id']}, "
        f"epoch {best['epochs']}); "
        f"{len(table)} trials in {wall:.0f}s"
    )
    print(f"wrote {layout.results} and {layout.best}")
    print(f"train the final model: python -m search train {layout.best}")
    return table, best


def default_or_given_space(task: Task, options: SearchOptions) -> tuple[dict, str]:
    """(space, the text OUTPUT/space.yaml gets): --space's file, else the space the task chooses
    from the data (printed in one line), else the task's space file."""
    if options.space or task.choose_space is None:
        space_file = Path(options.space or task.space_file)
        space = load_space(space_file, task.hyperparameters)
        return space, space_file.read_text(encoding="utf-8")
    raw, why = task.choose_space(task, options)
    space = parse_space(raw, task.hyperparameters)  # a rule that builds a bad space is a bug: let it raise
    print(f"space chosen from the data: {why} (written to space.yaml; edit it and pass --space to change it)")
    text = f"# Chosen from the data by `search`: {why}\n" + yaml.safe_dump(raw, sort_keys=False)
    return space, text


def with_space(record: dict, layout: Layout) -> dict:
    """best.yaml's settings with the space the search searched (OUTPUT/space.yaml as plain data):
    the winner's document says where it came from, chosen from the data or given."""
    return {**record, "space": yaml.safe_load(layout.space.read_text(encoding="utf-8"))}


def run_search(options: SearchOptions) -> tuple:
    """A new search; returns (results table, best.yaml document)."""
    options.validate()
    if options.mlflow:
        options.mlflow = tracking.tracking_uri(options.mlflow)  # saved in search.yaml for `search train`
        tracking.check_tracking(options.mlflow)
    task = get_task(options.task)
    space, space_text = default_or_given_space(task, options)  # refuse a bad space before touching --output
    if not searched_names(space):  # a hand-set recipe: the baseline, run once through the same code
        options.trials = 1
    options.output = check_output(options.output, options.overwrite)
    if options.storage_path:  # stored resolved in search.yaml: resume may run from another folder
        options.storage_path = storage.resolve(options.storage_path, options.output)
        check_output(options.output, options.overwrite, experiment_path(options))
    warm = None
    if options.warm_start:  # read before --overwrite may clear it (it can be this same folder)
        options.warm_start = Path(options.warm_start).expanduser().resolve()
        warm = load_warm_start(options.warm_start, task, space)
        print(warm_summary(warm, options.warm_start), flush=True)
    configure_ray_env(options.verbose)

    def new_tuner(space, trainable, writer, names):
        scheduler = make_scheduler(options)
        progress = SearchProgress(
            options.trials, task.metric, task.mode, names, options.max_epochs, scheduler, writer, quiet=options.quiet
        )
        callbacks = [progress, *tracking.search_callbacks(options.mlflow, options.output, options.max_epochs)]
        return build_tuner(
            task, options, space, trainable, scheduler, callbacks, warm=warm.searcher_args() if warm else None
        )

    # Ray first: the task's preparation may run on the cluster (decoding images as Ray tasks). A
    # storage path some node cannot see, bad data or weights are refused before anything is written.
    with ray_session(options):
        trainable, record = prepare_trials(task, options)
        clear_output(options.output, experiment_path(options) if options.storage_path else None)
        save_options(options, Layout(options.output).options)
        write_atomic(Layout(options.output).space, space_text)
        return _run(task, options, space, trainable, with_space(record, Layout(options.output)), new_tuner)


def resume_search(output: Path, verbose: bool = False) -> tuple:
    """Continue the search in `output`: finished trials are kept, unfinished ones continue from
    their last checkpoint, the Optuna searcher and ASHA rungs are restored."""
    output = output.expanduser().resolve()
    layout = Layout(output)
    if not layout.options.is_file():
        raise UserError(f"{output} holds no search to resume (no {layout.options.name} there)")
    options = load_options(layout.options)
    options.output = output
    if not storage.is_dir(experiment_path(options)):
        raise UserError(f"{output} holds no search to resume (its trials folder {experiment_path(options)} is missing)")
    options.verbose = verbose
    task = get_task(options.task)
    print(f"resuming the search in {options.output}", flush=True)

    def restored_tuner(space, trainable, writer, names):
        # resume_errored=False: a trial that used up its retries stays errored
        return tune.Tuner.restore(
            experiment_path(options),
            trainable=trainable,
            param_space=space,
            resume_unfinished=True,
            resume_errored=False,
        )

    space = load_space(layout.space, task.hyperparameters)
    configure_ray_env(options.verbose)
    with ray_session(options):
        trainable, record = prepare_trials(task, options)
        return _run(task, options, space, trainable, with_space(record, layout), restored_tuner)
