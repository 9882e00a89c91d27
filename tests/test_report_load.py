"""Tests for search.report.load on hand-written output folders (no Ray): which metric the report
shows (best.yaml's, else the task's in search.yaml, else a known metric column of results.csv),
its mode, whether `score` ranks the trials, and where the trials are read from (--storage-path).
"""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from search.report.load import load_search


def make_output(root: Path, columns: dict, best: dict | None = None, options: dict | None = None) -> Path:
    """An output folder with a results.csv of `columns` and, when given, best.yaml and search.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(columns).to_csv(root / "results.csv", index=False)
    if best is not None:
        (root / "best.yaml").write_text(yaml.safe_dump(best))
    if options is not None:
        (root / "search.yaml").write_text(yaml.safe_dump(options))
    return root


TRIALS = {"trial_id": ["a", "b"], "status": ["completed", "completed"]}


@pytest.mark.parametrize(
    "columns, best, options, metric, mode",
    [
        pytest.param(
            {"val_accuracy": [0.9, 0.8], "val_f1": [0.5, 0.6], "val_loss": [0.2, 0.3]},
            {"metric": {"name": "val_f1", "mode": "max", "trial_id": "b"}},
            {"task": "lm"},
            "val_f1",
            "max",
            id="best-yaml-first",
        ),
        pytest.param(
            {"val_perplexity": [3.0, 2.0], "val_loss": [1.1, 0.7]},
            {"metric": {"name": "val_perplexity", "trial_id": "b"}},
            None,
            "val_perplexity",
            "min",
            id="best-yaml-without-mode",
        ),
        pytest.param(
            {"val_accuracy": [0.9, 0.8], "val_f1": [0.5, 0.6], "val_loss": [0.2, 0.3]},
            None,
            {"task": "ner"},
            "val_f1",
            "max",
            id="then-the-task",
        ),
        pytest.param(
            {"val_accuracy": [0.9, 0.8], "val_loss": [0.2, 0.3]},
            {"task": "title"},
            {"task": "title"},
            "val_loss",
            "min",
            id="task-when-best-yaml-has-no-metric",
        ),
        pytest.param(
            {"val_loss": [0.2, 0.3], "val_mrr": [0.5, 0.6], "val_perplexity": [3.0, 2.0]},
            None,
            {"task": "no-such-task"},
            "val_mrr",
            "max",
            id="unknown-task-then-columns",
        ),
        pytest.param(
            {"val_loss": [0.2, 0.3], "val_perplexity": [3.0, 2.0]},
            None,
            None,
            "val_perplexity",
            "min",
            id="columns-by-preference",
        ),
        pytest.param(
            {"val_loss": [0.2, 0.3], "lr": [0.1, 0.01]},
            None,
            {"trials": 2},
            "val_loss",
            "min",
            id="val-loss-only-when-alone",
        ),
        pytest.param({"bleu": [0.2, 0.3]}, None, None, "val_accuracy", "max", id="nothing-known"),
    ],
)
def test_metric_fallback_order(tmp_path, columns, best, options, metric, mode):
    search = load_search(make_output(tmp_path / "run", {**TRIALS, **columns}, best, options))
    assert (search.metric, search.mode) == (metric, mode)


def test_explicit_metric_and_mode_win(tmp_path):
    output = make_output(
        tmp_path / "run",
        {**TRIALS, "val_accuracy": [0.9, 0.8], "val_loss": [0.2, 0.3]},
        {"metric": {"name": "val_accuracy", "mode": "max", "trial_id": "a"}},
        {"task": "hotdog"},
    )
    assert (load_search(output, metric="val_loss").mode, load_search(output, metric="val_loss").best_trial) == (
        "min",
        "a",
    )
    search = load_search(output, metric="val_loss", mode="max")
    assert (search.metric, search.mode, search.best_trial) == ("val_loss", "max", "b")
    assert load_search(output, mode="min").best_trial == "a"  # best.yaml names its trial for its own metric


@pytest.mark.parametrize(
    "options, best_trial",
    [
        pytest.param({"task": "hotdog"}, "b", id="search-metric-ranked-by-score"),
        pytest.param({"task": "ner"}, "a", id="another-metric-ranked-by-itself"),
        pytest.param(None, "a", id="no-search-metric-ranked-by-itself"),
    ],
)
def test_score_smooths_the_search_metric_only(tmp_path, options, best_trial):
    """Without best.yaml: `score` (the smoothed search metric) ranks the trials only when the metric
    shown is the search's own (the task's); otherwise the metric itself does."""
    columns = {**TRIALS, "val_accuracy": [0.9, 0.8], "score": [0.7, 0.85], "val_loss": [0.3, 0.3]}
    search = load_search(make_output(tmp_path / "run", columns, None, options), metric="val_accuracy")
    assert search.best_trial == best_trial


def test_trials_under_a_local_storage_path(tmp_path):
    storage = tmp_path / "shared"
    trial = storage / "trials" / "train_a"
    trial.mkdir(parents=True)
    (trial / "result.json").write_text(json.dumps({"trial_id": "a", "epoch": 1, "val_accuracy": 0.9}) + "\n")
    output = make_output(
        tmp_path / "run", {**TRIALS, "val_accuracy": [0.9, 0.8]}, None, {"task": "hotdog", "storage_path": str(storage)}
    )
    assert list(load_search(output).histories) == ["a"]
    (output / "search.yaml").write_text(yaml.safe_dump({"task": "hotdog", "storage_path": "s3://bucket/searches"}))
    assert load_search(output).histories == {}  # a URI: no local trials, so no curves
