"""The report's accuracy-against-cost figure: each trial's best score against the seconds one of
its epochs took, one colour per backbone (or per value of the costliest searched choice), so a
bigger model's better scores are weighed against what they cost. ASHA compares trials per epoch,
not per second: this is where the difference shows.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from search.report.load import Search, scored_trials
from search.report.style import STYLE, save_figure


def trial_costs(search: Search) -> pd.DataFrame:
    """trial_id, score, median seconds per epoch and the group (backbone) of every scored trial."""
    table = scored_trials(search.table, search.metric)
    group = "backbone" if "backbone" in table else None
    rows = []
    for _, row in table.iterrows():
        history = search.histories.get(str(row["trial_id"]))
        if history is None or "epoch_seconds" not in history:
            continue
        seconds = pd.to_numeric(history["epoch_seconds"], errors="coerce").dropna()
        if seconds.empty:
            continue
        label = str(row[group]) if group else str(search.best.get("backbone", "all trials"))
        rows.append(
            {
                "trial_id": row["trial_id"],
                "score": float(row[search.metric]),
                "seconds": seconds.median(),
                "group": label,
            }
        )
    return pd.DataFrame(rows, columns=["trial_id", "score", "seconds", "group"])


def plot_cost(search: Search, path: Path) -> Path | None:
    costs = trial_costs(search)
    if costs.empty:
        return None
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(8, 4.6), layout="constrained")
        for group, rows in costs.groupby("group", sort=True):
            ax.scatter(
                rows["seconds"],
                rows["score"],
                s=36,
                alpha=0.85,
                label=f"{group} (median {rows['seconds'].median():.1f} s/epoch)",
            )
        ax.set_xlabel("seconds per epoch (median over the trial's epochs)")
        ax.set_ylabel(f"best {search.metric}")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
        ax.set_title(f"{search.metric} against cost, {len(costs)} trials")
    return save_figure(fig, path)
