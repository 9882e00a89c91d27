"""The search report: `write_report(OUTPUT)` turns a finished or partial search (results.csv, best.yaml,
search.yaml, space.yaml, trials/*/result.json) into one self-contained page, OUTPUT/report.html
(figures embedded, inline CSS, opens offline), and saves each figure under OUTPUT/report/.
`write_scratch_comparison` plots a pretrained against a from-scratch `search train` run
(compare.png, compare.csv); the report includes it when those files sit in OUTPUT.
"""

import base64
import datetime
import html
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display, no GUI toolkit

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from search import results as res  # noqa: E402
from search.errors import UserError  # noqa: E402

FIGURES = "report"  # OUTPUT/report/: the figures as PNG files
FIGURE_FILES = ("curves.png", "params.png", "parallel.png", "importance.png", "timeline.png")
DPI = 110  # 11-inch-wide figures come out ~1200 px: sharp on the page, small in the HTML
KINDS = ("loguniform", "uniform", "randint", "choice")
TEXT_COLUMNS = ("trial_id", "status", "error")
STATUS_COLOURS = {"completed": "#1f77b4", "plateau": "#9467bd", "stopped early": "#9a9a9a",
                  "nan loss": "#d62728", "errored": "#d62728", "unfinished": "#ff7f0e"}
BEST_COLOUR = "#e6550d"
SLOT_SLACK_S = 1.0  # Ray's `timestamp` is whole seconds: trials that overlap by less may share a slot

STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9,
         "axes.spines.top": False, "axes.spines.right": False}  # applied per figure, never globally


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


# --- reading a search -----------------------------------------------------------------------------

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
            (kind, args), = entry.items()
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
            table[column] = cells.map(lambda cell: choices.get(cell, cell))
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


def _metric_column(table: pd.DataFrame) -> str | None:
    """results.csv puts the metric right after `status`."""
    columns = list(table.columns)
    return columns[columns.index("status") + 1] if "status" in columns[:-1] else None


def load_search(output: Path, metric: str | None = None, mode: str | None = None) -> Search:
    output = Path(output).expanduser().resolve()
    best, options = _read_yaml(output / "best.yaml"), _read_yaml(output / "search.yaml")
    stored = str(options.get("storage_path") or "")  # trials kept elsewhere (--storage-path); a URI: no curves
    results, trials = output / "results.csv", Path(stored, "trials") if stored and "://" not in stored else output / "trials"
    if not results.is_file() and not trials.is_dir():
        raise UserError(f"{output} holds no search (no results.csv and no trials/ there)")
    space = read_space(output / "space.yaml")
    table = read_results(results, space) if results.is_file() else pd.DataFrame(columns=["trial_id", "status"])
    best_metric = best.get("metric") if isinstance(best.get("metric"), dict) else {}
    metric = metric or best_metric.get("name") or _metric_column(table) or "val_accuracy"
    recorded_mode = best_metric.get("mode") if best_metric.get("name") == metric else None  # best.yaml's is for its metric
    mode = mode or recorded_mode or metric_mode(metric)
    if metric not in table:
        table[metric] = np.nan
    table[metric] = pd.to_numeric(table[metric], errors="coerce")
    if not space:  # no space.yaml: the columns between trial_id and epochs that vary
        columns = list(table.columns)
        before = columns[1:columns.index("epochs")] if "epochs" in columns else []
        space = {name: guess_distribution(table[name]) for name in before if table[name].nunique() > 1}
    search = Search(output, table, metric, mode, best, options, {n: s for n, s in space.items() if n in table},
                    read_histories(trials) if trials.is_dir() else {})
    search.best_trial = _best_trial(search, best_metric.get("trial_id") if best_metric.get("name") == metric else None)
    return search


def _scored(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Trials that count: not errored, with a metric."""
    return table[(table["status"] != "errored") & table[metric].notna()]


def _best_trial(search: Search, named: str | None) -> str | None:
    scored = _scored(search.table, search.metric)
    if named is not None and str(named) in set(scored["trial_id"]):
        return str(named)
    if scored.empty:
        return None
    if search.metric != _metric_column(search.table):  # `score` smooths the search's own metric only
        scored = scored.drop(columns="score", errors="ignore")
    return str(res.ranked(scored, search.metric, search.mode)["trial_id"].iloc[0])


# --- figures ----------------------------------------------------------------------------------------

def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    plt.close(fig)
    return path


def asha_rungs(grace_period: int, reduction_factor: float, max_epochs: int) -> list[int]:
    """The epochs at which ASHA compares trials: grace * rf^k, up to max_epochs."""
    rungs, epoch = [], max(1, int(grace_period))
    while epoch <= max_epochs and reduction_factor > 1:
        rungs.append(int(epoch))
        epoch *= reduction_factor
    return rungs


def _metric_cmap(mode: str):
    return plt.get_cmap("viridis" if mode == "max" else "viridis_r")  # better is always yellow


def _norm(values) -> matplotlib.colors.Normalize:
    values = [v for v in values if v is not None and math.isfinite(v)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    return matplotlib.colors.Normalize(low - 0.5, high + 0.5) if low == high else matplotlib.colors.Normalize(low, high)


def _trial_scores(search: Search) -> dict[str, float]:
    """Each trial's best metric: results.csv's, or its history's for trials not (yet) in it."""
    scores = {str(t): float(v) for t, v in zip(search.table["trial_id"], search.table[search.metric])}
    pick = np.nanmax if search.mode == "max" else np.nanmin
    for trial_id, history in search.histories.items():
        values = pd.to_numeric(history.get(search.metric), errors="coerce")
        if trial_id not in scores and values is not None and values.notna().any():
            scores[trial_id] = float(pick(values))
    return scores


@plt.rc_context(STYLE)
def plot_curves(search: Search, path: Path) -> Path:
    """Validation metric per epoch for every trial; ASHA's stops dashed grey, its rungs as lines."""
    fig, ax = plt.subplots(figsize=(11, 5.2), layout="constrained")
    scores = _trial_scores(search)
    cmap, norm = _metric_cmap(search.mode), _norm(scores.values())
    max_epochs = int(search.options.get("max_epochs") or max([len(h) for h in search.histories.values()] + [1]))
    rungs = asha_rungs(search.options.get("grace_period", 1), search.options.get("reduction_factor", 2), max_epochs)
    for rung in rungs:
        ax.axvline(rung, color="#4a7ab5", linestyle=":", linewidth=1.2, zorder=0)
        ax.annotate(f"rung {rung}", (rung, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=9, color="#4a7ab5")
    # draw the stopped ones first, the best last (on top)
    order = sorted(search.histories, key=lambda t: (t == search.best_trial, search.status(t) != "stopped early"))
    for trial_id in order:
        history = search.histories[trial_id]
        if search.metric not in history:
            continue
        status = search.status(trial_id)
        x, y = history["epoch"], pd.to_numeric(history[search.metric], errors="coerce")
        if trial_id == search.best_trial:
            ax.plot(x, y, color=BEST_COLOUR, linewidth=3, marker="o", markersize=5, zorder=5)
        elif status == "stopped early":
            ax.plot(x, y, color=STATUS_COLOURS[status], linewidth=1, linestyle="--", marker=".", markersize=4, alpha=0.8)
        elif status in ("errored", "nan loss", "unfinished"):
            ax.plot(x, y, color=STATUS_COLOURS[status], linewidth=1.5, linestyle=":", marker="x", markersize=6)
        else:
            colour = cmap(norm(scores[trial_id])) if math.isfinite(scores.get(trial_id, math.nan)) else "#555555"
            ax.plot(x, y, color=colour, linewidth=1.8, marker="o", markersize=3.5, alpha=0.9)
    ax.set_xlim(0.7, max_epochs + 0.5)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(search.metric)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{search.metric} per epoch, {len(search.histories)} trials "
                 f"({'higher' if search.mode == 'max' else 'lower'} is better)")
    handles = [Line2D([], [], color=BEST_COLOUR, linewidth=3, marker="o", label=f"best trial {search.best_trial}"),
               Line2D([], [], color=cmap(0.75), linewidth=1.8, marker="o", label="ran on (colour: its best score)"),
               Line2D([], [], color=STATUS_COLOURS["stopped early"], linestyle="--", label="stopped early by ASHA"),
               Line2D([], [], color="#4a7ab5", linestyle=":", label="ASHA rung")]
    for status in ("errored", "nan loss", "unfinished"):
        if any(search.status(t) == status for t in search.histories):
            handles.append(Line2D([], [], color=STATUS_COLOURS[status], linestyle=":", marker="x", label=status))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=f"best {search.metric}", pad=0.01)
    return _save(fig, path)


def _is_log(search: Search, name: str) -> bool:
    return search.space[name][0] == "loguniform"


@plt.rc_context(STYLE)
def plot_params(search: Search, path: Path) -> Path:
    """Each searched hyperparameter against the trial's best metric, over the whole searched range."""
    names = list(search.space)
    columns = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(11, 3.3 * rows + 0.4), layout="constrained", squeeze=False)
    scored = _scored(search.table, search.metric)
    jitter = np.random.default_rng(0).uniform(-0.12, 0.12, size=len(scored))  # spread equal categories apart
    for ax, name in zip(axes.flat, names):
        kind, args = search.space[name]
        y = scored[search.metric].to_numpy(float)
        if kind == "choice":
            index = {str(c): i for i, c in enumerate(args)}
            x = np.array([index.get(str(v), np.nan) for v in scored[name]]) + jitter
            ax.set_xticks(range(len(args)), [str(c) for c in args])
            ax.set_xlim(-0.5, len(args) - 0.5)
        else:
            x = pd.to_numeric(scored[name], errors="coerce").to_numpy(float)
            low, high = _range(args, x)
            if kind == "loguniform":
                ax.set_xscale("log")
                ax.set_xlim(low / 1.3, high * 1.3)
            else:
                pad = (high - low) * 0.05 or 0.5
                ax.set_xlim(low - pad, high + pad)
            if kind == "randint":
                x = x + jitter
                ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        colours = [STATUS_COLOURS.get(s, "#555555") for s in scored["status"]]
        ax.scatter(x, y, c=colours, s=36, alpha=0.85, edgecolors="white", linewidths=0.5)
        top = (scored["trial_id"] == search.best_trial).to_numpy()
        if top.any():
            ax.scatter(x[top], y[top], marker="*", s=260, color=BEST_COLOUR, edgecolors="black", linewidths=0.6, zorder=5)
        ax.set_xlabel(f"{name}  ({kind}{', log scale' if kind == 'loguniform' else ''})")
        ax.set_ylabel(f"best {search.metric}")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    statuses = [s for s in STATUS_COLOURS if s in set(scored["status"])]
    handles = [Line2D([], [], marker="*", color=BEST_COLOUR, markeredgecolor="black", markersize=13, linestyle="",
                      label="best")]
    handles += [Line2D([], [], marker="o", color=STATUS_COLOURS[s], linestyle="", label=s) for s in statuses]
    fig.legend(handles=handles, loc="outside upper center", ncols=len(handles), frameon=False)
    return _save(fig, path)


def _range(args: list, values: np.ndarray) -> tuple[float, float]:
    """The searched range, widened to any value outside it (a space edited since the search)."""
    finite = values[np.isfinite(values)]
    low, high = float(args[0]), float(args[-1])
    return (min(low, finite.min()), max(high, finite.max())) if finite.size else (low, high)


def _axis_position(search: Search, name: str, values: pd.Series) -> tuple[np.ndarray, list]:
    """Values of one parameter mapped onto [0, 1] over its searched range, and (position, label) ticks."""
    kind, args = search.space[name]
    if kind == "choice":
        step = 1 / max(1, len(args) - 1)
        index = {str(c): i for i, c in enumerate(args)}
        positions = np.array([index.get(str(v), np.nan) for v in values], float) * step
        if len(args) == 1:  # one choice: the middle of the axis
            return positions + 0.5, [(0.5, str(args[0]))]
        return positions, [(i * step, str(c)) for i, c in enumerate(args)]
    x = pd.to_numeric(values, errors="coerce").to_numpy(float)
    low, high = _range(args, x)
    if kind == "loguniform":
        to = lambda v: (np.log10(v) - math.log10(low)) / (math.log10(high) - math.log10(low) or 1)  # noqa: E731
        decades = [10.0 ** k for k in range(math.ceil(math.log10(low)), math.floor(math.log10(high)) + 1)]
        ticks = sorted({low, high, *decades})
    else:
        to = lambda v: (v - low) / ((high - low) or 1)  # noqa: E731
        few = kind == "randint" and high - low <= 8
        ticks = list(range(int(low), int(high) + 1)) if few else [low, (low + high) / 2, high]
    return to(x), [(float(to(t)), f"{t:.3g}") for t in ticks]


@plt.rc_context(STYLE)
def plot_parallel(search: Search, path: Path) -> Path:
    """Parallel coordinates: one vertical axis per searched hyperparameter (over its searched range)
    and one for the metric; one line per trial, coloured by its best metric."""
    names = list(search.space)
    table = search.table
    fig, ax = plt.subplots(figsize=(11, 5.2), layout="constrained")
    cmap = _metric_cmap(search.mode)
    scores = table[search.metric].to_numpy(float)
    norm = _norm(scores)
    columns, ticks = [], []
    for name in names:
        positions, axis_ticks = _axis_position(search, name, table[name])
        columns.append(positions)
        ticks.append(axis_ticks)
    finite = scores[np.isfinite(scores)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (math.nan, math.nan)
    metric_ticks = sorted({low, (low + high) / 2, high}) if finite.size else []
    columns.append(norm(scores) if finite.size else np.full(len(table), np.nan))
    ticks.append([(float(norm(v)), f"{v:.3g}") for v in metric_ticks])
    data = np.column_stack(columns) if len(table) else np.empty((0, len(names) + 1))
    xs = np.arange(len(names) + 1)
    ranked = -np.nan_to_num(scores, nan=-np.inf) if search.mode == "max" else np.nan_to_num(scores, nan=np.inf)
    better = np.argsort(ranked, kind="stable")  # best first, trials without a score last
    for i in better[::-1]:  # worst first, best on top
        trial_id = str(table["trial_id"].iloc[i])
        if not math.isfinite(scores[i]):
            ax.plot(xs[:-1], data[i, :-1], color=STATUS_COLOURS["errored"], linestyle=":", linewidth=1.2, alpha=0.8)
        elif trial_id == search.best_trial:
            ax.plot(xs, data[i], color="black", linewidth=4.5, zorder=4)
            ax.plot(xs, data[i], color=cmap(norm(scores[i])), linewidth=2.5, zorder=5)
        else:
            ax.plot(xs, data[i], color=cmap(norm(scores[i])), linewidth=1.6, alpha=0.85)
    for x, axis_ticks in zip(xs, ticks):
        ax.axvline(x, color="#333333", linewidth=1, zorder=1)
        last = x == xs[-1]  # the metric's labels go right of its axis, clear of the lines arriving from the left
        for position, label in axis_ticks:
            ax.text(x + 0.04 if last else x - 0.03, position, label, ha="left" if last else "right", va="center", fontsize=9,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}, zorder=6)
    ax.set_xticks(xs, [*[f"{n}\n(log)" if _is_log(search, n) else n for n in names], search.metric])
    ax.set_xlim(-0.45, len(names) + 0.4)
    ax.set_ylim(-0.06, 1.06)
    ax.set_yticks([])
    ax.spines[["left", "bottom"]].set_visible(False)
    ax.tick_params(axis="x", length=0, labelsize=11)
    unscored = "" if np.isfinite(scores).all() else f"; red dotted: no {search.metric}"
    ax.set_title(f"All {len(table)} trials across the searched ranges (thick black-edged line: best{unscored})")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=f"best {search.metric}", pad=0.01)
    return _save(fig, path)


def _distribution(kind: str, args: list):
    d = optuna.distributions
    if kind == "choice":
        return d.CategoricalDistribution(args)
    if kind == "randint":
        return d.IntDistribution(int(args[0]), int(args[1]))
    return d.FloatDistribution(float(args[0]), float(args[1]), log=kind == "loguniform")


def _param_value(kind: str, args: list, value):
    """`value` as the distribution holds it, or None when it lies outside (space.yaml edited since)."""
    if kind == "choice":
        return next((c for c in args if str(c) == str(value)), None)
    number = pd.to_numeric(value, errors="coerce")
    if pd.isna(number) or not float(args[0]) <= number <= float(args[1]):
        return None
    return int(number) if kind == "randint" else float(number)


def param_importances(search: Search) -> tuple[dict, int, str]:
    """Optuna's (PED-ANOVA) importance of each searched hyperparameter for the metric, from a study
    rebuilt out of results.csv. Returns (importances, trials used, "") or ({}, 0, why there are none)."""
    names = [n for n in search.space if not (search.space[n][0] == "choice" and len(search.space[n][1]) < 2)]
    trials = []  # (params, value) of every scored trial whose values all lie in the space
    for _, row in _scored(search.table, search.metric).iterrows():
        params = {n: _param_value(*search.space[n], row[n]) for n in names}
        if all(v is not None for v in params.values()):
            trials.append((params, float(row[search.metric])))
    if len(trials) < 2 or not names:
        return {}, 0, (f"Importance needs at least 2 scored trials and a searched hyperparameter; "
                       f"this search has {len(trials)} such trial(s).")
    if len({value for _, value in trials}) < 2:
        return {}, 0, (f"Every scored trial reached the same {search.metric} ({trials[0][1]:.4g}), so no "
                       f"hyperparameter can explain a difference: no importance to show.")
    distributions = {n: _distribution(*search.space[n]) for n in names}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # no "A new study created" line
    try:
        study = optuna.create_study(direction="maximize" if search.mode == "max" else "minimize")
        study.add_trials([optuna.trial.create_trial(params=p, distributions=distributions, value=v) for p, v in trials])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()  # Optuna's default; fANOVA would need scikit-learn
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError) as e:  # a degenerate study
        return {}, 0, f"Optuna could not compute the importances: {(str(e).splitlines() or [type(e).__name__])[0]}."
    finally:
        optuna.logging.set_verbosity(verbosity)
    if not importances or not all(math.isfinite(v) for v in importances.values()):
        return {}, 0, "Optuna could not compute the importances for these trials."
    return dict(importances), len(trials), ""


@plt.rc_context(STYLE)
def plot_importance(search: Search, importances: dict, used: int, path: Path) -> Path:
    """Importances as horizontal bars, the largest at the top."""
    names = list(importances)[::-1]  # largest at the top
    values = [importances[n] for n in names]
    fig, ax = plt.subplots(figsize=(11, 0.5 * len(names) + 1.6), layout="constrained")
    ax.barh(names, values, color="#3b75af", height=0.6)
    for y, value in enumerate(values):
        ax.text(value + 0.01, y, f"{value:.0%}", va="center", fontsize=10)
    ax.set_xlim(0, max(values) * 1.15 if max(values) > 0 else 1)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel(f"share of {search.metric}'s variation explained (importances sum to 100%)")
    ax.set_title(f"Hyperparameter importance for {search.metric}: Optuna PED-ANOVA over {used} scored trials")
    return _save(fig, path)


def trial_spans(histories: dict[str, pd.DataFrame]) -> dict[str, tuple[float, float]]:
    """(start, end) in Unix seconds of each trial: from its first report less that epoch's duration to
    its last report. Ray's timestamps are whole seconds (truncated), so each is read as its midpoint;
    time_total_s cannot replace them: it leaves out the time between reports (checkpointing)."""
    spans = {}
    for trial_id, history in histories.items():
        stamps = pd.to_numeric(history.get("timestamp", pd.Series(dtype=float)), errors="coerce").dropna() + 0.5
        if stamps.empty:
            continue
        first = history.loc[stamps.index[0]]
        took = next((float(first[k]) for k in ("time_this_iter_s", "epoch_seconds")
                     if k in first and pd.notna(first[k])), 0.0)
        start = float(stamps.iloc[0]) - took
        spans[trial_id] = (start, max(float(stamps.max()), start + 0.05))
    return spans


def assign_slots(spans: dict[str, tuple[float, float]], limit: int | None = None) -> dict[str, int]:
    """Stack trials into concurrent slots: each goes to the lowest slot already free when it starts,
    else to one freeing within the timestamps' one-second slack, else to a new slot (unless `limit`
    slots exist: then to the one that frees first)."""
    ends: list[float] = []
    slots = {}
    for trial_id, (start, end) in sorted(spans.items(), key=lambda item: item[1]):
        free = [i for i, e in enumerate(ends) if e <= start]
        nearly = [i for i, e in enumerate(ends) if e <= start + SLOT_SLACK_S]
        if free:
            slot = free[0]
        elif nearly:
            slot = min(nearly, key=lambda i: ends[i])
        elif limit is None or len(ends) < limit:
            ends.append(start)
            slot = len(ends) - 1
        else:
            slot = int(np.argmin(ends))
        ends[slot] = max(ends[slot], end)
        slots[trial_id] = slot
    return slots


def busy_fraction(spans: list[tuple[float, float]], slots: int) -> tuple[np.ndarray, np.ndarray]:
    """(times, fraction of slots busy from each time to the next) as a step function."""
    edges = sorted({t for span in spans for t in span})
    if not edges or slots < 1:
        return np.array([]), np.array([])
    busy = [sum(start <= t < end for start, end in spans) / slots for t in edges]
    return np.array(edges), np.minimum(np.array(busy, float), 1.0)


@plt.rc_context(STYLE)
def plot_timeline(search: Search, path: Path) -> Path:
    """One bar per trial from its first to its last report, stacked into concurrent slots; below, the
    fraction of slots busy over time."""
    spans = trial_spans(search.histories)
    limit = search.options.get("max_concurrent")
    slots = assign_slots(spans, int(limit) if isinstance(limit, (int, float)) else None)
    count = max(slots.values(), default=-1) + 1
    fig, (ax, low) = plt.subplots(2, 1, figsize=(11, 2.6 + 0.5 * max(count, 2)), sharex=True, layout="constrained",
                                  gridspec_kw={"height_ratios": [max(count, 2), 1.6]})
    origin = min((s for s, _ in spans.values()), default=0.0)
    length = max((e for _, e in spans.values()), default=origin + 1) - origin
    for trial_id, (start, end) in spans.items():
        status = search.status(trial_id)
        best = trial_id == search.best_trial
        ax.barh(slots[trial_id], end - start, left=start - origin, height=0.64,
                color=BEST_COLOUR if best else STATUS_COLOURS.get(status, "#555555"),
                edgecolor="black" if best else "white", linewidth=1.2 if best else 0.8)
        if end - start > 0.07 * length:
            ax.text((start + end) / 2 - origin, slots[trial_id], trial_id, ha="center", va="center", fontsize=8.5,
                    color="white", fontweight="bold", clip_on=True)
    busy = {i: sum(e - s for t, (s, e) in spans.items() if slots[t] == i) for i in range(count)}
    ax.set_yticks(range(count), [f"slot {i + 1}\n{busy[i] / length:.0%} busy" for i in range(count)])
    ax.set_ylim(count - 0.4, -0.6)  # slot 1 at the top
    ax.tick_params(axis="y", length=0)
    ax.set_axisbelow(True)
    ax.grid(axis="x", alpha=0.3)
    overall = sum(busy.values()) / (count * length) if count and length > 0 else 0.0
    started = datetime.datetime.fromtimestamp(origin).strftime("%Y-%m-%d %H:%M:%S") if spans else "-"
    ax.set_title(f"Time line of {len(spans)} trials in {count} concurrent slot(s), {length:.0f} s from the first "
                 f"trial's start ({started}); slots busy {overall:.0%}")
    times, fraction = busy_fraction(list(spans.values()), count)
    if len(times):
        low.fill_between(times - origin, fraction, step="post", color="#3b75af", alpha=0.35, linewidth=0)
        low.step(times - origin, fraction, where="post", color="#3b75af", linewidth=1.3)
    low.set_ylim(0, 1.05)
    low.set_yticks([0, 0.5, 1])
    low.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    low.set_ylabel("slots busy")
    low.grid(alpha=0.3)
    low.set_xlim(0, length * 1.01)
    low.set_xlabel("seconds since the first trial started")
    statuses = [s for s in STATUS_COLOURS if any(search.status(t) == s for t in spans)]
    handles = [Patch(color=BEST_COLOUR, label=f"best trial {search.best_trial}"),
               *[Patch(color=STATUS_COLOURS[s], label=s) for s in statuses]]
    fig.legend(handles=handles, loc="outside upper right", ncols=len(handles), frameon=False)
    return _save(fig, path)


# --- the scratch comparison ------------------------------------------------------------------------

def _accuracy_history(metrics: dict) -> pd.DataFrame:
    """(epoch, test_accuracy) of a metrics.json; one point when it has no history (--from-checkpoint)."""
    history = metrics.get("history") or [{"epoch": metrics.get("epochs", 1), "test_accuracy": metrics.get("test_accuracy")}]
    frame = pd.DataFrame(history)
    if "epoch" not in frame or "test_accuracy" not in frame:
        raise UserError("metrics.json has no per-epoch test_accuracy (expected one written by `search train`)")
    return frame[["epoch", "test_accuracy"]].astype(float).drop_duplicates("epoch", keep="last")


def _run_label(metrics: dict, fallback: str) -> str:
    backbone = metrics.get("backbone", "")
    weights = "ImageNet weights" if metrics.get("pretrained", True) else "random initialisation"
    final = metrics.get("test_accuracy")
    score = f", test accuracy {final:.3f}" if isinstance(final, (int, float)) else ""
    return f"{fallback}: {backbone} {weights}{score}".replace("  ", " ")


@plt.rc_context(STYLE)
def write_scratch_comparison(pretrained: dict, scratch: dict, folder: Path) -> Path:
    """Plot test accuracy per epoch of a pretrained and a from-scratch `search train` run (their
    metrics.json documents) into folder/compare.png, the numbers into folder/compare.csv."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    a, b = _accuracy_history(pretrained), _accuracy_history(scratch)
    both = a.merge(b, on="epoch", how="outer", suffixes=("_pretrained", "_scratch")).sort_values("epoch")
    both = both.rename(columns={"test_accuracy_pretrained": "pretrained_test_accuracy",
                                "test_accuracy_scratch": "scratch_test_accuracy"})
    both["epoch"] = both["epoch"].astype(int)
    (folder / "compare.csv").write_text(both.to_csv(index=False), encoding="utf-8")
    fig, ax = plt.subplots(figsize=(9, 4.8), layout="constrained")
    ax.plot(a["epoch"], a["test_accuracy"], marker="o", linewidth=2.2, color=BEST_COLOUR,
            label=_run_label(pretrained, "pretrained"))
    ax.plot(b["epoch"], b["test_accuracy"], marker="s", linewidth=2.2, color="#3b75af", linestyle="--",
            label=_run_label(scratch, "from scratch"))
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    values = pd.concat([a["test_accuracy"], b["test_accuracy"]]).dropna()
    if not values.empty and values.between(0, 1).all():
        ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Fine-tuning a pretrained backbone against training it from scratch (same configuration)")
    return _save(fig, folder / "compare.png")


# --- the page --------------------------------------------------------------------------------------

CSS = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 15px;
       color: #222; margin: 0 auto; padding: 24px 32px 48px; max-width: 1280px; line-height: 1.45; background: #fff; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 20px; margin: 34px 0 6px; border-bottom: 2px solid #e3e3e3; padding-bottom: 4px; }
p.lead { font-size: 17px; margin: 4px 0 14px; }
p.note { color: #555; margin: 4px 0 10px; }
.warn { background: #fff4e0; border-left: 4px solid #f0a030; padding: 8px 12px; margin: 10px 0; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 3px 18px; margin: 10px 0; font-size: 14px; }
dl.facts dt { color: #666; } dl.facts dd { margin: 0; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; border: 1px solid #eee; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { padding: 4px 7px; border-bottom: 1px solid #e6e6e6; text-align: right; white-space: nowrap; }
th { background: #f3f5f8; font-weight: 600; white-space: normal; vertical-align: bottom; }
td.text, th.text { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
tr.best td { background: #ffe8c2; font-weight: 600; }
tr.errored td { background: #fde2e2; color: #8a1f1f; }
td.status-errored, td.status-nan-loss { color: #b00020; font-weight: 600; }
td.status-stopped-early { color: #777; }
.wrap { overflow-x: auto; }
code { background: #f3f3f3; padding: 1px 4px; border-radius: 3px; }
"""


def _cell(value, column: str, metric: str) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if column in (metric, "val_loss"):
            return f"{value:.4f}"
        if column == "seconds":
            return f"{value:.1f}"
        return f"{value:.4g}"
    return str(value)


def results_html(search: Search) -> str:
    """The results table (results.csv less its error column), best row highlighted, errored rows marked."""
    table = search.table
    columns = [c for c in table.columns if c != "error"]
    numeric = {c: pd.api.types.is_numeric_dtype(table[c]) for c in columns}
    head = "".join(f'<th class="{"" if numeric[c] else "text"}">{html.escape(str(c)).replace("_", "_<wbr>")}</th>'
                   for c in columns)  # long names may break after an underscore
    rows = []
    for _, row in table.iterrows():
        trial_id = str(row.get("trial_id"))
        status = str(row.get("status", ""))
        kind = "best" if trial_id == search.best_trial else "errored" if status == "errored" else ""
        error = str(row.get("error") or "")
        title = f' title="{html.escape(error)}"' if error else ""
        cells = []
        for c in columns:
            text = _cell(row[c], c, search.metric)
            if c == "trial_id" and kind == "best":
                text = f"★ {text}"
            elif c == "status" and status in ("errored", "nan loss"):
                text = f"⚠ {text}"
            css = " ".join(filter(None, ["" if numeric[c] else "text",
                                         f"status-{status.replace(' ', '-')}" if c == "status" else ""]))
            cells.append(f'<td class="{css}">{html.escape(text)}</td>')
        rows.append(f'<tr class="{kind}"{title}>{"".join(cells)}</tr>')
    errors = [(str(r["trial_id"]), str(r["error"])) for _, r in table.iterrows()
              if "error" in table and str(r.get("error") or "").strip()]
    items = "".join(f"<li><code>{html.escape(t)}</code>: {html.escape(e)}</li>" for t, e in errors)
    listing = (f'<p class="note">Errors (the whole tracebacks are in <code>trials/&lt;trial_id&gt;/error.txt</code>):</p>'
               f"<ul>{items}</ul>") if errors else ""
    return f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{listing}'


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _facts(search: Search) -> str:
    best, options = search.best, search.options
    pretrained = best.get("pretrained", options.get("pretrained", True))
    weights = best.get("weights") if pretrained else "none (random initialisation)"
    facts = {
        "data": best.get("data") or options.get("data"),
        "backbone": f"{best.get('backbone') or options.get('backbone', '?')} ({weights or 'weights unknown'})",
        "image size": best.get("image_size") or options.get("image_size"),
        "trials": f"{len(search.table)} in results.csv of {options.get('trials', '?')} asked for",
        "epochs": f"at most {options.get('max_epochs', '?')} per trial; ASHA grace period "
                  f"{options.get('grace_period', '?')}, reduction factor {options.get('reduction_factor', '?')}",
        "concurrency": options.get("max_concurrent") or "as many as the CPUs/GPUs fit",
        "seed": options.get("seed", best.get("seed")),
        "output": str(search.output),
    }
    return '<dl class="facts">' + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>"
                                          for k, v in facts.items() if v is not None) + "</dl>"


def _headline(search: Search) -> tuple[str, str]:
    task = search.best.get("task") or search.options.get("task") or "search"
    data = search.best.get("data") or search.options.get("data") or ""
    backbone = search.best.get("backbone") or search.options.get("backbone") or ""
    title = f"{task}: hyperparameter search report"
    if search.best_trial is None:
        return title, f"No trial has a {search.metric} yet."
    row = search.table[search.table["trial_id"] == search.best_trial].iloc[0]
    epoch = f", epoch {int(row['best_epoch'])}" if "best_epoch" in row and pd.notna(row["best_epoch"]) else ""
    lead = (f"Best {search.metric} <b>{row[search.metric]:.4f}</b> (trial <code>{html.escape(search.best_trial)}</code>"
            f"{epoch}) &middot; {html.escape(backbone)} on {html.escape(str(data))}")
    return title, lead


def _partial_notes(search: Search) -> list[str]:
    notes = []
    asked = search.options.get("trials")
    if isinstance(asked, int) and len(search.table) < asked:
        notes.append(f"Partial search: {len(search.table)} of {asked} trials finished "
                     f"(continue it with <code>python -m search resume {html.escape(str(search.output))}</code>).")
    listed = set(search.table["trial_id"].astype(str))
    unfinished = sorted(set(search.histories) - listed)
    if unfinished:
        notes.append(f"Trials with results but not in results.csv (unfinished): {html.escape(', '.join(unfinished))}.")
    epochs = pd.to_numeric(search.table.get("epochs", pd.Series(1, index=search.table.index)), errors="coerce")
    reported = set(search.table.loc[epochs.fillna(1) > 0, "trial_id"].astype(str))  # an errored trial may never report
    missing = sorted(reported - set(search.histories))
    if missing:
        notes.append(f"Trials in results.csv without a result.json (no curve or time line): "
                     f"{html.escape(', '.join(missing))}.")
    return notes


def _comparison_html(output: Path) -> str:
    png, csv = output / "compare.png", output / "compare.csv"
    if not (png.is_file() and csv.is_file()):
        return ""
    try:
        table = pd.read_csv(csv)
    except (OSError, ValueError, pd.errors.ParserError):
        table = pd.DataFrame()
    rows = "".join("<tr>" + "".join(f"<td>{_cell(float(v), c, '') if c != 'epoch' else int(v)}</td>"
                                    for c, v in row.items()) + "</tr>" for _, row in table.iterrows())
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    return (f"<h2>Pretrained against from scratch</h2><p class=\"note\">The best configuration trained again on "
            f"train + validation (<code>search train</code>), once from ImageNet weights and once from random "
            f"initialisation; test accuracy after each epoch.</p>{_image(png, 'pretrained against from scratch')}"
            f"<div class=\"wrap\"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")


def section(heading: str, caption: str, body) -> str:
    """One part of the page: a heading, then its figure (a PNG path) with a caption, its HTML, or a
    note saying why it is missing (plain text)."""
    if isinstance(body, Path):
        body = f'<p class="note">{html.escape(caption)}</p>{_image(body, heading)}'
    elif not body.startswith("<"):
        body = f'<p class="note missing">{html.escape(body)}</p>'
    else:
        body = f'<p class="note">{html.escape(caption)}</p>{body}'
    return f"<h2>{html.escape(heading)}</h2>{body}"


def write_report(output: Path, metric: str | None = None, mode: str | None = None) -> Path:
    """Write OUTPUT/report.html (one self-contained page) and the figures as OUTPUT/report/*.png, for a
    finished or partial search. The metric and its mode default to best.yaml's (min for losses)."""
    search = load_search(output, metric, mode)
    figures = search.output / FIGURES
    for name in FIGURE_FILES:  # an earlier report's figure must not outlive the data behind it
        (figures / name).unlink(missing_ok=True)
    title, lead = _headline(search)
    table = results_html(search) if len(search.table) else "No trial has finished yet."
    sections = [section("Trials", f"Best first; the best trial's row is highlighted (★), errored rows are red (hover "
                                  f"for the error). {search.metric} is each trial's best over its epochs (reached at "
                                  f"best_epoch).", table)]

    rungs = asha_rungs(search.options.get("grace_period", 1), search.options.get("reduction_factor", 2),
                       int(search.options.get("max_epochs") or 1))
    curves = plot_curves(search, figures / "curves.png") if search.histories else None
    sections.append(section("Learning curves", f"{search.metric} after each epoch. ASHA compares trials at its rungs "
                            f"(epochs {', '.join(map(str, rungs)) or '-'}) and stops the worse ones: those are thin "
                            f"dashed grey.", curves or "No trial has reported an epoch yet (no trials/*/result.json)."))

    scored = search.space and not _scored(search.table, search.metric).empty
    params = plot_params(search, figures / "params.png") if scored else None
    sections.append(section(f"Hyperparameters against {search.metric}", f"Each trial's best {search.metric} against "
                            f"each searched hyperparameter, over its whole searched range (log axes for log-uniform "
                            f"ones).", params or "No scored trial yet, or nothing searched."))
    parallel = plot_parallel(search, figures / "parallel.png") if scored else None
    sections.append(section("Parallel coordinates", f"One line per trial through every searched hyperparameter, "
                            f"coloured by its best {search.metric}.", parallel or "No scored trial yet."))

    importances, used, why = param_importances(search)
    importance = plot_importance(search, importances, used, figures / "importance.png") if importances else None
    sections.append(section("Hyperparameter importance", "Optuna's PED-ANOVA on a study rebuilt from results.csv: how "
                            "much each hyperparameter explains of what separates the best trials. With few trials, read "
                            "it as a hint.", importance or why))

    timeline = plot_timeline(search, figures / "timeline.png") if trial_spans(search.histories) else None
    sections.append(section("Time line", "Each trial from its first to its last report, stacked into the slots that ran "
                            "concurrently (from Ray's whole-second timestamps); below, the share of slots busy.",
                            timeline or "No trial has reported an epoch yet."))
    sections.append(_comparison_html(search.output))
    notes = "".join(f'<p class="warn">{n}</p>' for n in _partial_notes(search))
    generated = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
            f"<h1>{html.escape(title)}</h1><p class=\"lead\">{lead}</p>{notes}{_facts(search)}{''.join(sections)}"
            f'<p class="note" style="margin-top:40px">Generated {generated} by <code>search.report</code> from '
            f"{html.escape(str(search.output))}.</p></body></html>\n")
    path = search.output / "report.html"
    tmp = path.with_name(".report.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
