"""The report's time line: when each trial ran (from its result.json's timestamps), stacked into the
slots that ran at once, and the share of slots busy over time.
"""

import datetime
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from search.report.load import Search
from search.report.style import BEST_COLOUR, STATUS_COLOURS, STYLE, save_figure

SLOT_SLACK_S = 1.0  # Ray's `timestamp` is whole seconds: trials that overlap by less may share a slot


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
        took = next(
            (float(first[k]) for k in ("time_this_iter_s", "epoch_seconds") if k in first and pd.notna(first[k])), 0.0
        )
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
    fig, (ax, low) = plt.subplots(
        2,
        1,
        figsize=(11, 2.6 + 0.5 * max(count, 2)),
        sharex=True,
        layout="constrained",
        gridspec_kw={"height_ratios": [max(count, 2), 1.6]},
    )
    origin = min((s for s, _ in spans.values()), default=0.0)
    length = max((e for _, e in spans.values()), default=origin + 1) - origin
    for trial_id, (start, end) in spans.items():
        status = search.status(trial_id)
        best = trial_id == search.best_trial
        ax.barh(
            slots[trial_id],
            end - start,
            left=start - origin,
            height=0.64,
            color=BEST_COLOUR if best else STATUS_COLOURS.get(status, "#555555"),
            edgecolor="black" if best else "white",
            linewidth=1.2 if best else 0.8,
        )
        if end - start > 0.07 * length:
            ax.text(
                (start + end) / 2 - origin,
                slots[trial_id],
                trial_id,
                ha="center",
                va="center",
                fontsize=8.5,
                color="white",
                fontweight="bold",
                clip_on=True,
            )
    busy = {i: sum(e - s for t, (s, e) in spans.items() if slots[t] == i) for i in range(count)}
    ax.set_yticks(range(count), [f"slot {i + 1}\n{busy[i] / length:.0%} busy" for i in range(count)])
    ax.set_ylim(count - 0.4, -0.6)  # slot 1 at the top
    ax.tick_params(axis="y", length=0)
    ax.set_axisbelow(True)
    ax.grid(axis="x", alpha=0.3)
    overall = sum(busy.values()) / (count * length) if count and length > 0 else 0.0
    started = datetime.datetime.fromtimestamp(origin).strftime("%Y-%m-%d %H:%M:%S") if spans else "-"
    ax.set_title(
        f"Time line of {len(spans)} trials in {count} concurrent slot(s), {length:.0f} s from the first "
        f"trial's start ({started}); slots busy {overall:.0%}"
    )
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
    handles = [
        Patch(color=BEST_COLOUR, label=f"best trial {search.best_trial}"),
        *[Patch(color=STATUS_COLOURS[s], label=s) for s in statuses],
    ]
    fig.legend(handles=handles, loc="outside upper right", ncols=len(handles), frameon=False)
    return save_figure(fig, path)
