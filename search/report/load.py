"""Reading a search's output folder for the report: results.csv typed by space.yaml, best.yaml,
search.yaml, each trial's result.json, which metric the report shows (and whether lower is better)
and which trial is the best, all loaded once into a `Search`.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from search import results as res
from search.layout import TRIALS, Layout
from trainables.basics import UserError, is_uri

KINDS = ("loguniform", "uniform", "randint", "choice")
TEXT_COLUMNS = ("trial_id", "status", "error")
SEARCH_METRICS = ("val_accuracy", "val_f1", "val_mrr", "val_perplexity", "val_loss")  # what the tasks search for


@dataclass
class Search:
    """What the report reads from OUTPUT, loaded once."""

    output: Path
    table: pd.DataFrame  # results.csv, values typed by the space
    metric: str
    mode: str  # "max" or "min"
    best: dict  # best.yaml ({} if absent)
    options: dict  # search.yaml ({} if absent)
    space: dict  # searched name -> (kind, args), in space.yaml's order
    histories: dict = field(default_factory=dict)  # trial_id -> DataFrame of its result.json lines
    best_trial: str | None = None

    def status(self, trial_id: str) -> str:
        rows = self.table[self.table["trial_id"] == trial_id] if "trial_id" in self.table else []
        return str(rows["status"].iloc[0]) if len(rows) else "unfinished"


def metric_mode(metric: str) -> str:
    """Whether a metric is minimised: losses and perplexities are, everything else is maximised."""
    return "min" if any(word in metric.lower() for word in ("loss", "perplexity", "error")) else "max"


def _read_yaml(path: Path) -> dict:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return doc if isinstance(doc, dict) else {}


def read_space(path: Path) -> dict:
    """space.yaml's searched entries as {name: (kind, args)}; fixed values are left out."""
    space = {}
    for name, entry in _read_yaml(path).items():
        if isinstance(entry, dict) and len(entry) == 1:
            ((kind, args),) = entry.items()
            if kind in KINDS and isinstance(args, list) and args:
                space[str(name)] = (kind, args)
    return space


def read_results(path: Path, space: dict) -> pd.DataFrame:
    """results.csv with each column typed: choices as the space's own values (so `none` or `True`
    stay what they were), other columns numeric where every non-empty cell is a number."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    table = pd.DataFrame(index=raw.index)
    for column in raw.columns:
        cells = raw[column]
        if column in TEXT_COLUMNS:
            table[column] = cells
        elif space.get(column, ("",))[0] == "choice":
            choices = {str(c): c for c in space[column][1]}
            table[column] = cells.map(lambda cell, choices=choices: choices.get(cell, cell))
        else:
            numbers = pd.to_numeric(cells.replace("", np.nan), errors="coerce")
            table[column] = numbers if numbers.notna().sum() == (cells != "").sum() else cells
    return table


def read_history(path: Path) -> pd.DataFrame:
    """A trial's result.json (one JSON object per epoch); a torn last line is skipped. A retried trial
    reports some epochs twice: the last report of each epoch is kept."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return pd.DataFrame()
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append({k: v for k, v in row.items() if not isinstance(v, (dict, list))})
    history = pd.DataFrame(rows)
    if history.empty:
        return history
    if "epoch" not in history:
        history["epoch"] = history.get("training_iteration", pd.Series(range(1, len(history) + 1)))
    return history.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)


def read_histories(trials: Path) -> dict[str, pd.DataFrame]:
    histories = {}
    for path in sorted(trials.glob("*/result.json")):
        history = read_history(path)
        if not history.empty:
            trial_id = str(history["trial_id"].iloc[-1]) if "trial_id" in history else path.parent.name
            histories[trial_id] = history
    return histories


def guess_distribution(values: pd.Series) -> tuple[str, list]:
    """A space entry for a column when space.yaml is gone: text is a choice, numbers spanning two
    decades or more log-uniform, other numbers uniform."""
    if not pd.api.types.is_numeric_dtype(values):
        return "choice", sorted(values.dropna().unique().tolist(), key=str)
    low, high = float(values.min()), float(values.max())
    return ("loguniform" if low > 0 and high >= 100 * low else "uniform"), [low, high]


def search_metric(best: dict, options: dict) -> tuple[str | None, str | None]:
    """(metric, mode) the search ranked its trials by: best.yaml's, else that of the task search.yaml
    names; (None, None) when neither says (the mode may be None when best.yaml records none)."""
    recorded = best.get("metric") if isinstance(best.get("metric"), dict) else {}
    if recorded.get("name"):
        return str(recorded["name"]), recorded.get("mode")
    if options.get("task"):
        from search.tasks import get_task  # the task registry, only when best.yaml does not say

        try:
            task = get_task(str(options["task"]))
        except UserError:  # a task this version does not know
            return None, None
        return task.metric, task.mode
    return None, None


def metric_in_table(table: pd.DataFrame) -> str | None:
    """The search metric when no file names it: the first known one results.csv has, in the order
    of SEARCH_METRICS (so val_loss only when there is no other)."""
    return next((name for name in SEARCH_METRICS if name in table), None)


def scored_trials(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Trials that count: not errored, with a metric."""
    return table[(table["status"] != "errored") & table[metric].notna()]


def trials_folder(output: Path, options: dict) -> Path:
    """Where Ray kept the trials: under --storage-path when search.yaml has a local one (a URI: none
    here, so no curves), else OUTPUT/trials."""
    stored = str(options.get("storage_path") or "")
    return Path(stored) / TRIALS if stored and not is_uri(stored) else Layout(output).trials


def load_search(output: Path, metric: str | None = None, mode: str | None = None) -> Search:
    """Read OUTPUT once. The metric is `metric`, else the search's (best.yaml's, else its task's),
    else one of SEARCH_METRICS found in results.csv; its mode `mode`, else the one recorded with it,
    else guessed from its name (see metric_mode)."""
    output = Path(output).expanduser().resolve()
    layout = Layout(output)
    best, options = _read_yaml(layout.best), _read_yaml(layout.options)
    results, trials = layout.results, trials_folder(output, options)
    if not results.is_file() and not trials.is_dir():
        raise UserError(f"{output} holds no search (no results.csv and no trials/ there)")
    space = read_space(layout.space)
    table = read_results(results, space) if results.is_file() else pd.DataFrame(columns=["trial_id", "status"])
    searched, searched_mode = search_metric(best, options)
    metric = metric or searched or metric_in_table(table) or "val_accuracy"
    mode = mode or (searched_mode if metric == searched else None) or metric_mode(metric)
    if metric not in table:
        table[metric] = np.nan
    table[metric] = pd.to_numeric(table[metric], errors="coerce")
    if not space:  # no space.yaml: the columns between trial_id and epochs that vary
        columns = list(table.columns)
        before = columns[1 : columns.index("epochs")] if "epochs" in columns else []
        space = {name: guess_distribution(table[name]) for name in before if table[name].nunique() > 1}
    search = Search(
        output,
        table,
        metric,
        mode,
        best,
        options,
        {n: s for n, s in space.items() if n in table},
        read_histories(trials) if trials.is_dir() else {},
    )
    recorded = best.get("metric") if isinstance(best.get("metric"), dict) else {}
    named = recorded.get("trial_id") if recorded.get("name") == metric else None  # best.yaml's is for its metric
    search.best_trial = _best_trial(search, named, smoothed=metric == searched)
    return search


def _best_trial(search: Search, named: str | None, smoothed: bool) -> str | None:
    """The trial best.yaml names, if it is scored; else the best by `score` when results.csv's
    `score` smooths this metric (it is the search's own: `smoothed`), else by the metric."""
    scored = scored_trials(search.table, search.metric)
    if named is not None and str(named) in set(scored["trial_id"]):
        return str(named)
    if scored.empty:
        return None
    if not smoothed:  # `score` smooths the search's own metric only
        scored = scored.drop(columns="score", errors="ignore")
    return str(res.ranked(scored, search.metric, search.mode)["trial_id"].iloc[0])
