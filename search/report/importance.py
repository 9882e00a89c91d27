"""How much each searched hyperparameter matters: Optuna's PED-ANOVA importance, from a study rebuilt
out of results.csv (values outside space.yaml's ranges left out), and its bar chart.
"""

import math
import warnings
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import optuna
import pandas as pd

from search.report.load import Search, scored_trials
from search.report.style import STYLE, save_figure


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
    for _, row in scored_trials(search.table, search.metric).iterrows():
        params = {n: _param_value(*search.space[n], row[n]) for n in names}
        if all(v is not None for v in params.values()):
            trials.append((params, float(row[search.metric])))
    if len(trials) < 2 or not names:
        return (
            {},
            0,
            (
                f"Importance needs at least 2 scored trials and a searched hyperparameter; "
                f"this search has {len(trials)} such trial(s)."
            ),
        )
    if len({value for _, value in trials}) < 2:
        return (
            {},
            0,
            (
                f"Every scored trial reached the same {search.metric} ({trials[0][1]:.4g}), so no "
                f"hyperparameter can explain a difference: no importance to show."
            ),
        )
    distributions = {n: _distribution(*search.space[n]) for n in names}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # no "A new study created" line
    try:
        study = optuna.create_study(direction="maximize" if search.mode == "max" else "minimize")
        study.add_trials([optuna.trial.create_trial(params=p, distributions=distributions, value=v) for p, v in trials])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = (
                optuna.importance.PedAnovaImportanceEvaluator()
            )  # Optuna's default; fANOVA would need scikit-learn
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
    return save_figure(fig, path)
