"""The pretrained against from-scratch comparison of `search train --compare-scratch`: test accuracy
per epoch of both runs (their metrics.json documents), plotted into OUTPUT/compare.png with the
numbers in OUTPUT/compare.csv; the report shows it when both files are there.
"""

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

from search.layout import Layout, write_atomic
from search.report.style import BEST_COLOUR, STYLE, save_figure
from trainables.basics import UserError


def _accuracy_history(metrics: dict) -> pd.DataFrame:
    """(epoch, test_accuracy) of a metrics.json; one point when it has no history (--from-checkpoint)."""
    history = metrics.get("history") or [
        {"epoch": metrics.get("epochs", 1), "test_accuracy": metrics.get("test_accuracy")}
    ]
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
    layout = Layout(Path(folder))
    layout.root.mkdir(parents=True, exist_ok=True)
    a, b = _accuracy_history(pretrained), _accuracy_history(scratch)
    both = a.merge(b, on="epoch", how="outer", suffixes=("_pretrained", "_scratch")).sort_values("epoch")
    both = both.rename(
        columns={
            "test_accuracy_pretrained": "pretrained_test_accuracy",
            "test_accuracy_scratch": "scratch_test_accuracy",
        }
    )
    both["epoch"] = both["epoch"].astype(int)
    write_atomic(layout.compare_csv, both.to_csv(index=False))
    fig, ax = plt.subplots(figsize=(9, 4.8), layout="constrained")
    ax.plot(
        a["epoch"],
        a["test_accuracy"],
        marker="o",
        linewidth=2.2,
        color=BEST_COLOUR,
        label=_run_label(pretrained, "pretrained"),
    )
    ax.plot(
        b["epoch"],
        b["test_accuracy"],
        marker="s",
        linewidth=2.2,
        color="#3b75af",
        linestyle="--",
        label=_run_label(scratch, "from scratch"),
    )
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    values = pd.concat([a["test_accuracy"], b["test_accuracy"]]).dropna()
    if not values.empty and values.between(0, 1).all():
        ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Fine-tuning a pretrained backbone against training it from scratch (same configuration)")
    return save_figure(fig, layout.compare_png)
