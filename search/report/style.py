"""What every figure of the report shares: the headless matplotlib backend, the per-figure style,
the status and best-trial colours, and how a figure is saved as a PNG.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display, no GUI toolkit

import matplotlib.pyplot as plt

DPI = 110  # 11-inch-wide figures come out ~1200 px: sharp on the page, small in the HTML
STATUS_COLOURS = {
    "completed": "#1f77b4",
    "plateau": "#9467bd",
    "stopped early": "#9a9a9a",
    "nan loss": "#d62728",
    "errored": "#d62728",
    "unfinished": "#ff7f0e",
}
BEST_COLOUR = "#e6550d"

STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}  # applied per figure, never globally


def save_figure(fig, path: Path) -> Path:
    """Write `fig` to `path` as a PNG (on white) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    plt.close(fig)
    return path
