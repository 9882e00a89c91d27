"""The confusion matrix of the `search train` run in OUTPUT/final/ (its metrics.json's
test_confusion_matrix, written for image and text classification): rows the true class, columns
the predicted one, shaded by the row's share so small classes read as well as big ones, counts
written in each cell. Sized by the number of classes, so 20 stay readable.
"""

import base64
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from search.layout import METRICS, Layout
from search.report.style import STYLE, save_figure

FIGURE = "confusion.png"
CELL_INCHES = 0.45  # per class: 20 classes come out ~11 inches, the width of the other figures


@plt.rc_context(STYLE)
def plot_confusion(matrix: dict, path: Path) -> Path:
    classes, rows = matrix["classes"], np.array(matrix["rows"], dtype=float)
    n = len(classes)
    shares = rows / np.maximum(rows.sum(1, keepdims=True), 1)
    side = max(4.0, CELL_INCHES * n + 2.5)
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    small = 8 if n > 12 else 10
    for i in range(n):
        for j in range(n):
            if rows[i, j]:
                colour = "white" if shares[i, j] > 0.6 else "black"
                ax.text(j, i, f"{int(rows[i, j])}", ha="center", va="center", fontsize=small, color=colour)
    ax.set_xticks(range(n), classes, rotation=90 if n > 6 else 0, fontsize=small)
    ax.set_yticks(range(n), classes, fontsize=small)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    return save_figure(fig, path)


def confusion_html(output: Path) -> str:
    """The report's section for OUTPUT/final/metrics.json's confusion matrix; "" without one."""
    layout = Layout(output)
    (layout.figures / FIGURE).unlink(missing_ok=True)  # never a figure of an older run
    try:
        metrics = json.loads((layout.final() / METRICS).read_text(encoding="utf-8"))
        matrix = metrics["test_confusion_matrix"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    path = plot_confusion(matrix, layout.figures / FIGURE)
    data = base64.b64encode(path.read_bytes()).decode("ascii")  # the page stays one self-contained file
    accuracy = metrics.get("test_accuracy")
    shown = f" (test accuracy {accuracy:.4f})" if isinstance(accuracy, float) else ""
    return (
        f'<h2>Confusion matrix</h2><p class="note">The retrained model in final/ on the test split{shown}: '
        f"rows are the true class, columns the predicted one; cells count test examples, shaded by the "
        f'share of their row.</p><img src="data:image/png;base64,{data}" alt="confusion matrix">'
    )
