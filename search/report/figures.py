"""The report's figures of the trials: each trial's learning curve (with ASHA's rungs), every searched
hyperparameter against the metric, and parallel coordinates through all of them, each saved as a
PNG (see importance.py and timeline.py for the other two).
"""

import math
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from search.report.load import Search, scored_trials
from search.report.style import BEST_COLOUR, STATUS_COLOURS, STYLE, save_figure


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
        ax.annotate(
            f"rung {rung}",
            (rung, 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=9,
            color="#4a7ab5",
        )
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
            ax.plot(
                x, y, color=STATUS_COLOURS[status], linewidth=1, linestyle="--", marker=".", markersize=4, alpha=0.8
            )
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
    ax.set_title(
        f"{search.metric} per epoch, {len(search.histories)} trials "
        f"({'higher' if search.mode == 'max' else 'lower'} is better)"
    )
    handles = [
        Line2D([], [], color=BEST_COLOUR, linewidth=3, marker="o", label=f"best trial {search.best_trial}"),
        Line2D([], [], color=cmap(0.75), linewidth=1.8, marker="o", label="ran on (colour: its best score)"),
        Line2D([], [], color=STATUS_COLOURS["stopped early"], linestyle="--", label="stopped early by ASHA"),
        Line2D([], [], color="#4a7ab5", linestyle=":", label="ASHA rung"),
    ]
    for status in ("errored", "nan loss", "unfinished"):
        if any(search.status(t) == status for t in search.histories):
            handles.append(Line2D([], [], color=STATUS_COLOURS[status], linestyle=":", marker="x", label=status))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=f"best {search.metric}", pad=0.01)
    return save_figure(fig, path)


def _is_log(search: Search, name: str) -> bool:
    return search.space[name][0] == "loguniform"


@plt.rc_context(STYLE)
def plot_params(search: Search, path: Path) -> Path:
    """Each searched hyperparameter against the trial's best metric, over the whole searched range."""
    names = list(search.space)
    columns = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(11, 3.3 * rows + 0.4), layout="constrained", squeeze=False)
    scored = scored_trials(search.table, search.metric)
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
            ax.scatter(
                x[top], y[top], marker="*", s=260, color=BEST_COLOUR, edgecolors="black", linewidths=0.6, zorder=5
            )
        ax.set_xlabel(f"{name}  ({kind}{', log scale' if kind == 'loguniform' else ''})")
        ax.set_ylabel(f"best {search.metric}")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    statuses = [s for s in STATUS_COLOURS if s in set(scored["status"])]
    handles = [
        Line2D(
            [], [], marker="*", color=BEST_COLOUR, markeredgecolor="black", markersize=13, linestyle="", label="best"
        )
    ]
    handles += [Line2D([], [], marker="o", color=STATUS_COLOURS[s], linestyle="", label=s) for s in statuses]
    fig.legend(handles=handles, loc="outside upper center", ncols=len(handles), frameon=False)
    return save_figure(fig, path)


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
        to = lambda v: (np.log10(v) - math.log10(low)) / (math.log10(high) - math.log10(low) or 1)
        decades = [10.0**k for k in range(math.ceil(math.log10(low)), math.floor(math.log10(high)) + 1)]
        ticks = sorted({low, high, *decades})
    else:
        to = lambda v: (v - low) / ((high - low) or 1)
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
            ax.text(
                x + 0.04 if last else x - 0.03,
                position,
                label,
                ha="left" if last else "right",
                va="center",
                fontsize=9,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
                zorder=6,
            )
    ax.set_xticks(xs, [*[f"{n}\n(log)" if _is_log(search, n) else n for n in names], search.metric])
    ax.set_xlim(-0.45, len(names) + 0.4)
    ax.set_ylim(-0.06, 1.06)
    ax.set_yticks([])
    ax.spines[["left", "bottom"]].set_visible(False)
    ax.tick_params(axis="x", length=0, labelsize=11)
    unscored = "" if np.isfinite(scores).all() else f"; red dotted: no {search.metric}"
    ax.set_title(f"All {len(table)} trials across the searched ranges (thick black-edged line: best{unscored})")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=f"best {search.metric}", pad=0.01)
    return save_figure(fig, path)
