"""Selection that survives noise: after the search, the top `--reselect` trials are re-run with
`--reselect-seeds` other training seeds (same data split, same settings, each for the epochs its
original ran) as a second Tune run in the same Ray session, and best.yaml takes the candidate whose
score (results.py's per-trial score) has the best mean over its original and new runs. The re-runs
live in OUTPUT/reselect/ (a Tune experiment): an interrupted selection leaves the search's
results.csv and best.yaml as they were, and `search resume` finishes it from there.
"""

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from ray import tune

from search import results as res
from search import storage
from search.layout import write_atomic
from search.options import SearchOptions
from search.progress import driver_stop
from search.watch import watched_asha
from trainables.basics import SearchInterrupted
from trainables.trial import RESELECT

EXPERIMENT = "reselect"  # the re-runs' Tune experiment, beside trials/
PLAN = "reselect.yaml"  # in --output: the candidates and seeds the experiment was started for
SEED_STEP = 1000  # re-run i trains with seed + 1000 * i: far from the seeds a user tries next


@dataclass
class Candidate:
    trial_id: str
    config: dict  # the trial's hyperparameters, as Tune gave them
    epochs: int  # how far the original ran: each re-run runs as far
    scores: list[float] = field(default_factory=list)  # the original's score first, then each re-run's
    seeds: list[int] = field(default_factory=list)  # the re-runs' training seeds

    def summary(self) -> dict:
        """mean, std (0 for one run) and runs over the scores that exist (an errored re-run has none)."""
        ok = [s for s in self.scores if not math.isnan(s)]
        return {
            "mean": statistics.mean(ok) if ok else math.nan,
            "std": statistics.stdev(ok) if len(ok) > 1 else 0.0,
            "runs": len(ok),
        }


def pick_candidates(table, rows: list[dict], k: int) -> list[Candidate]:
    """The top `k` trials of the ranked `table` that finished with a score."""
    ok = table[table["status"] != "errored"].dropna(subset=["score"]).head(k)
    configs = {r["trial_id"]: r["config"] for r in rows}
    return [
        Candidate(str(row.trial_id), configs[row.trial_id], int(row.epochs), [float(row.score)])
        for row in ok.itertuples()
    ]


def seeds(options: SearchOptions) -> list[int]:
    return [options.seed + SEED_STEP * i for i in range(1, options.reselect_seeds + 1)]


def plan(candidates: list[Candidate], options: SearchOptions) -> list[dict]:
    """One re-run per (candidate, seed): what RESELECT carries into the trainable."""
    return [
        {"trial_id": c.trial_id, "seed": seed, "epochs": c.epochs, "config": c.config}
        for c in candidates
        for seed in seeds(options)
    ]


def experiment(options: SearchOptions) -> str:
    return storage.join(options.storage_path or str(options.output), EXPERIMENT)


def build_tuner(task, options: SearchOptions, trainable, runs: list[dict], time_left: float | None) -> tune.Tuner:
    """The re-runs as a grid over fixed configs: no searcher, watched for hangs but never stopped
    early, concurrent and quiet, ended with what is left of --time-budget (`time_left`); the restored
    experiment when it was started for these runs."""
    path, plan_file = experiment(options), Path(options.output) / PLAN
    saved = yaml.safe_load(plan_file.read_text(encoding="utf-8")) if plan_file.is_file() else None
    if saved == runs and tune.Tuner.can_restore(path):  # an interrupted selection: finish it
        return tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    storage.remove_dir(path)  # another search's (or another candidate set's) re-runs
    write_atomic(plan_file, yaml.safe_dump(runs, sort_keys=False))
    return tune.Tuner(
        trainable,
        param_space={RESELECT: tune.grid_search(runs)},
        tune_config=tune.TuneConfig(
            metric=task.metric,
            mode=task.mode,
            # the search's watch (--trial-timeout, --pending-timeout); its only rung at --max-epochs,
            # the furthest a re-run goes, so every re-run goes the distance
            scheduler=watched_asha(options, options.max_epochs),
            max_concurrent_trials=options.max_concurrent,
            time_budget_s=time_left,
            reuse_actors=True,
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=options.storage_path or str(options.output),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),  # the latest only: enough to resume
        ),
    )


def reselect(
    task, options: SearchOptions, trainable, rows: list[dict], table, names: list[str], fit, time_left=None
) -> list | None:
    """Re-run the candidates and return them, their scores filled in, best mean first; None when
    there is nothing to choose between (--reselect 0, a fixed space, fewer than two scored trials)
    or no time for it (`time_left`: the seconds --time-budget leaves, None without one). `fit` is the
    tuner's Tuner.fit wrapper (signals -> SearchInterrupted)."""
    if not options.reselect or not names:
        return None
    candidates = pick_candidates(table, rows, options.reselect)
    if len(candidates) < 2:
        return None
    if time_left is not None and time_left <= 0:
        print("\nselection: skipped, --time-budget is spent: best.yaml holds the search's best single run")
        return None
    runs = plan(candidates, options)
    print(
        f"\nselection: re-running the top {len(candidates)} trials with seeds {seeds(options)} "
        f"({len(runs)} runs), to choose by the mean",
        flush=True,
    )
    try:
        grid = fit(build_tuner(task, options, trainable, runs, time_left))
    except SearchInterrupted:
        raise SearchInterrupted(
            f"interrupted during the selection; results.csv and best.yaml in {options.output} hold the search's "
            f"best single run; finish the selection with: python -m search resume {options.output}"
        ) from None
    by_id = {c.trial_id: c for c in candidates}
    for c in candidates:
        c.seeds = seeds(options)
    for result in grid:
        if result.config is None:  # the time budget ended before it started: nothing to count
            continue
        rerun = result.config[RESELECT]
        row = res.trial_row("", {}, result.metrics_dataframe, result.error, task.metric, task.mode, rerun["epochs"])
        hung = driver_stop(result.metrics) is not None  # stopped at --trial-timeout: short of its epochs
        cut = row["status"] == "stopped early"  # ASHA never stops a re-run early: --time-budget ended it
        if hung or cut:
            why = "timed out" if hung else "was cut short by --time-budget"
            print(f"  a re-run of {rerun['trial_id']} (seed {rerun['seed']}) {why}: left out of its mean")
        by_id[rerun["trial_id"]].scores.append(math.nan if hung or cut else row["score"])
    sign = -1 if task.mode == "max" else 1
    ranked = sorted(candidates, key=lambda c: sign * c.summary()["mean"] if c.summary()["runs"] else math.inf)
    for c in ranked:
        s = c.summary()
        shown = ", ".join(f"{v:.4f}" for v in c.scores)
        print(f"  {c.trial_id}: {task.metric} score mean {s['mean']:.4f} +- {s['std']:.4f} over {s['runs']} ({shown})")
    print(f"selection: chose {ranked[0].trial_id}", flush=True)
    return ranked


def apply(table, candidates: list[Candidate]):
    """`table` with the selection's columns (empty for the other trials), the candidates first in the
    order chosen (best mean first), the other trials after them as they were."""
    table = table.copy()
    for column in ("reselect_mean", "reselect_std", "reselect_runs", "reselect_scores"):
        table[column] = None
    for c in candidates:
        at = table["trial_id"] == c.trial_id
        s = c.summary()
        table.loc[at, ["reselect_mean", "reselect_std", "reselect_runs"]] = [s["mean"], s["std"], s["runs"]]
        table.loc[at, "reselect_scores"] = " ".join(f"{v:.4f}" for v in c.scores)
    order = {c.trial_id: i for i, c in enumerate(candidates)}
    rank = table["trial_id"].map(lambda t: order.get(t, len(order)))
    return table.iloc[rank.argsort(kind="stable")].reset_index(drop=True)


def block(candidates: list[Candidate]) -> dict:
    """best.yaml's `selection:` record."""
    return {
        "by": "mean score over the original run and each re-run",
        "seeds": candidates[0].seeds,
        "chosen": candidates[0].trial_id,
        "candidates": [
            {
                "trial_id": c.trial_id,
                "epochs": c.epochs,
                "scores": [round(v, 6) for v in c.scores],
                **{k: round(v, 6) if isinstance(v, float) else v for k, v in c.summary().items()},
            }
            for c in candidates
        ],
    }
