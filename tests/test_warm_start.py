"""search.warm_start: an earlier search's scored trials that fit the new space reach Optuna's study as
finished trials (outside ones and unscored ones skipped and counted), incompatible searches are
refused in one line, and a real search started with --warm-start says what it was told."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from bench.warm_start import run_order, trials_to_reach
from search.cli import main
from search.options import SearchOptions, save_options
from search.tasks import get_task
from search.warm_start import load_warm_start, summary
from spaces import load_space
from trainables.basics import UserError

TASK = get_task("hotdog")
SPACE = load_space(TASK.space_file, TASK.hyperparameters)  # lr 3e-5..3e-3, batch 16/32/64, frozen 4..5, ...
GOOD = {"lr": 1e-3, "batch_size": 32, "frozen_layers": 5, "head_lr_mult": 10.0, "weight_decay": 1e-2}


def old_search(folder: Path, rows: list[dict], task: str = "hotdog") -> Path:
    """A finished search's files as a search writes them: search.yaml and results.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    save_options(SearchOptions(task=task, output=folder), folder / "search.yaml")
    table = pd.DataFrame(
        [
            {"trial_id": f"t_{i:05d}", "augment": "flip", "momentum": 0.9, "status": "completed", **r}
            for i, r in enumerate(rows)
        ]
    )
    table.to_csv(folder / "results.csv", index=False)
    return folder


def test_fitting_trials_reach_the_study_as_finished(tmp_path):
    rows = [
        {**GOOD, "val_accuracy": 0.8},
        {**GOOD, "lr": 2e-4, "batch_size": 64, "val_accuracy": 0.7},
        {**GOOD, "lr": 0.1, "val_accuracy": 0.9},  # lr above the new space's 3e-3
        {**GOOD, "batch_size": 8, "val_accuracy": 0.9},  # not a choice
        {**GOOD, "augment": "none", "val_accuracy": 0.9},  # the new space fixes augment: flip
        {**GOOD, "status": "errored", "val_accuracy": float("nan")},
    ]
    warm = load_warm_start(old_search(tmp_path / "old", rows), TASK, SPACE)
    assert warm.rewards == [0.8, 0.7] and warm.outside == 3 and warm.unscored == 1
    assert warm.points[1] == {**GOOD, "lr": 2e-4, "batch_size": 64}
    assert isinstance(warm.points[0]["batch_size"], int) and isinstance(warm.points[0]["frozen_layers"], int)
    assert "2 scored trials" in summary(warm, tmp_path / "old") and "3 outside the new space" in summary(warm, "x")

    searcher = OptunaSearch(**warm.searcher_args())  # as search/tuner.py's build_tuner builds it
    searcher.set_search_properties(TASK.metric, TASK.mode, SPACE)
    told = searcher._ot_study.get_trials()
    assert [t.state for t in told] == [TrialState.COMPLETE] * 2
    assert [t.value for t in told] == [0.8, 0.7] and told[0].params == GOOD


@pytest.mark.parametrize(
    "rows, task, message",
    [
        ([{**GOOD, "val_accuracy": 0.8}], "classify", "searched task classify, not hotdog"),
        ([{k: v for k, v in GOOD.items() if k != "lr"} | {"val_accuracy": 0.8}], "hotdog", "no column lr"),
        ([{**GOOD, "lr": 1.0, "val_accuracy": 0.8}], "hotdog", "none of its 1 trials fits the new space"),
    ],
)
def test_incompatible_searches_are_refused(tmp_path, rows, task, message):
    with pytest.raises(UserError, match=message):
        load_warm_start(old_search(tmp_path / "old", rows, task), TASK, SPACE)


def test_a_folder_without_a_search_and_a_fixed_space_are_refused(tmp_path):
    with pytest.raises(UserError, match="holds no search"):
        load_warm_start(tmp_path, TASK, SPACE)
    fixed = {k: (v.sample() if hasattr(v, "sample") else v) for k, v in SPACE.items()}
    with pytest.raises(UserError, match="needs a space with something to search"):
        load_warm_start(old_search(tmp_path / "old", [{**GOOD, "val_accuracy": 0.8}]), TASK, fixed)


def test_the_benchmark_counts_trials_in_the_order_they_ran(tmp_path):
    ids, firsts = ["a", "b", "c"], [300, 100, None]  # c never reported
    pd.DataFrame({"trial_id": ids, "val_accuracy": [0.9, 0.5, None]}).to_csv(tmp_path / "results.csv")
    for trial_id, first in zip(ids, firsts):
        (tmp_path / "trials" / trial_id).mkdir(parents=True)
        if first:
            lines = [json.dumps({"timestamp": first + k, "epoch": k}) for k in (0, 1)]
            (tmp_path / "trials" / trial_id / "result.json").write_text("\n".join(lines) + "\n")
    assert run_order(tmp_path) == [0.5, 0.9, float("-inf")]
    assert trials_to_reach([0.5, 0.7, 0.9], 0.7) == 2 and trials_to_reach([0.5], 0.7) is None


@pytest.mark.slow
def test_a_warm_started_search_runs_and_keeps_the_option(tiny_images, tmp_path, capsys):
    old = old_search(tmp_path / "old", [{**GOOD, "val_accuracy": 0.9}, {**GOOD, "lr": 9.0, "val_accuracy": 0.9}])
    out = tmp_path / "new"
    argv = ["hotdog", "--data", str(tiny_images), "--output", str(out), "--trials", "2", "--max-epochs", "1"]
    argv += ["--image-size", "32", "--max-concurrent", "1", "--no-report", "--reselect", "0", "--warm-start", str(old)]
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert f"warm start: 1 scored trials from {old} told to the sampler (1 outside the new space skipped)" in said
    assert len(pd.read_csv(out / "results.csv")) == 2  # the told trials are not run again
    assert yaml.safe_load((out / "search.yaml").read_text())["warm_start"] == str(old)
    assert main([*argv[:-1], str(tmp_path / "nothing"), "--overwrite"]) == 2
