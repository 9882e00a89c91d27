"""The selection step (search/selection.py) with real Ray on a tiny generated image set: the top
trials are re-run with other seeds for the epochs they ran, the chosen one has the best mean score,
results.csv and best.yaml carry the record, `search train` and `search resume` still work, and a
fixed space or --reselect 0 skips it. Plus the table arithmetic without Ray."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from search import selection
from search.cli import main
from search.options import SearchOptions

TINY = ["--max-epochs", "2", "--image-size", "32", "--max-concurrent", "2", "--seed", "3"]


def search(data, output, *extra) -> int:
    return main(["hotdog", "--data", str(data), "--output", str(output), "--trials", "3", *TINY, *extra])


def reruns(output: Path) -> list[dict]:
    """What each re-run of OUTPUT/reselect/ was given and how many epochs it reported."""
    found = []
    for params in sorted((output / "reselect").glob("*/params.json")):
        rerun = json.loads(params.read_text())[selection.RESELECT]
        lines = (params.parent / "result.json").read_text().splitlines()
        found.append({**rerun, "reported": len([line for line in lines if line.strip()])})
    return found


@pytest.fixture(scope="module")
def selected(tiny_images, tmp_path_factory):
    output = tmp_path_factory.mktemp("selected")
    assert search(tiny_images, output, "--reselect", "2", "--reselect-seeds", "1") == 0
    return output


def test_top_trials_are_rerun_with_other_seeds_for_their_epochs(selected):
    table = pd.read_csv(selected / "results.csv", dtype={"trial_id": str})
    candidates = table.dropna(subset=["reselect_runs"])
    assert len(candidates) == 2 and table["reselect_runs"].isna().sum() == 1  # empty for the other trial
    runs = reruns(selected)
    assert sorted(r["trial_id"] for r in runs) == sorted(candidates["trial_id"])
    assert {r["seed"] for r in runs} == {3 + selection.SEED_STEP}  # --seed 3, one more seed
    epochs = dict(zip(candidates["trial_id"], candidates["epochs"]))
    for r in runs:
        assert r["epochs"] == epochs[r["trial_id"]] == r["reported"]  # as far as the original ran
        original = table.set_index("trial_id").loc[r["trial_id"]]
        assert r["config"]["lr"] == pytest.approx(original["lr"])  # the candidate's own hyperparameters


def test_the_chosen_candidate_has_the_best_mean_and_leads_best_yaml(selected):
    table = pd.read_csv(selected / "results.csv", dtype={"trial_id": str})
    best = yaml.safe_load((selected / "best.yaml").read_text())
    block = best["selection"]
    means = {c["trial_id"]: c["mean"] for c in block["candidates"]}
    assert block["chosen"] == max(means, key=means.get) == best["metric"]["trial_id"] == table["trial_id"][0]
    for c in block["candidates"]:
        assert len(c["scores"]) == c["runs"] == 2
        assert c["mean"] == pytest.approx(sum(c["scores"]) / 2)
        row = table.set_index("trial_id").loc[c["trial_id"]]
        # best.yaml rounds to 6 decimals, results.csv keeps every digit
        assert row["reselect_mean"] == pytest.approx(c["mean"], abs=1e-6)
        assert row["reselect_std"] == pytest.approx(c["std"], abs=1e-6)
        assert c["scores"][0] == pytest.approx(row["score"], abs=1e-6)  # the original run's score comes first
    chosen = table.iloc[0]
    assert best["epochs"] == chosen["best_epoch"]
    assert best["hyperparameters"]["lr"] == pytest.approx(chosen["lr"])


def test_search_train_and_resume_work_on_a_selected_search(selected, tmp_path, capsys):
    assert main(["train", str(selected / "best.yaml"), "--output", str(tmp_path / "final")]) == 0
    assert "test_accuracy" in capsys.readouterr().out
    before = yaml.safe_load((selected / "best.yaml").read_text())["selection"]
    assert main(["resume", str(selected)]) == 0  # finished: the selection comes back from reselect/, not re-run
    assert yaml.safe_load((selected / "best.yaml").read_text())["selection"] == before
    assert len(reruns(selected)) == 2


def test_fixed_space_and_reselect_0_skip_the_selection(tiny_images, tmp_path):
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text("lr: 0.01\nfrozen_layers: 5\naugment: none\n")
    assert search(tiny_images, tmp_path / "one", "--space", str(fixed)) == 0
    assert not (tmp_path / "one" / "reselect").exists()
    assert "selection" not in yaml.safe_load((tmp_path / "one" / "best.yaml").read_text())
    assert "reselect_mean" not in pd.read_csv(tmp_path / "one" / "results.csv")


@pytest.mark.parametrize("flag", [["--reselect", "-1"], ["--reselect", "1"], ["--reselect-seeds", "0"]])
def test_bad_reselect_flags_are_one_line_errors(flag, tmp_path, capsys):
    """--reselect 1 is refused too: one candidate is nothing to choose between (it re-ran nothing)."""
    assert main(["hotdog", "--data", str(tmp_path), "--output", str(tmp_path / "o"), *flag]) == 2
    assert flag[0] in capsys.readouterr().err


def test_apply_puts_candidates_first_by_mean_and_leaves_the_rest():
    table = pd.DataFrame({"trial_id": ["a", "b", "c", "d"], "score": [0.9, 0.8, 0.7, math.nan]})
    picked = [selection.Candidate("b", {}, 2, [0.8, 0.9], [1005]), selection.Candidate("a", {}, 2, [0.9, 0.7], [1005])]
    out = selection.apply(table, picked)
    assert list(out["trial_id"]) == ["b", "a", "c", "d"]
    assert out["reselect_mean"].tolist()[:2] == pytest.approx([0.85, 0.8])
    assert out["reselect_runs"].tolist() == [2, 2, None, None]
    block = selection.block(picked)
    assert block["chosen"] == "b" and block["seeds"] == [1005]
    assert selection.seeds(SearchOptions(task="hotdog", output=Path("o"), seed=5)) == [1005, 2005]
    assert block["candidates"][1]["std"] == pytest.approx(0.141421, abs=1e-5)


def test_an_errored_rerun_is_left_out_of_the_mean():
    c = selection.Candidate("a", {}, 2, [0.8, math.nan, 0.6])
    assert c.summary() == {"mean": pytest.approx(0.7), "std": pytest.approx(0.141421, abs=1e-5), "runs": 2}


def slow_rerun(config):
    """A stand-in trainable for the selection's re-runs: one report a second, as far as each was asked."""
    import time

    from ray import tune

    for epoch in range(1, config[selection.RESELECT]["epochs"] + 1):
        time.sleep(1.0)
        tune.report({"epoch": epoch, "val_accuracy": 0.5, "val_loss": 0.7, "stop": ""})


def two_candidates() -> tuple[pd.DataFrame, list[dict]]:
    table = pd.DataFrame({"trial_id": ["a", "b"], "status": ["completed"] * 2, "score": [0.9, 0.8], "epochs": [30, 30]})
    return table, [{"trial_id": t, "config": {"lr": 0.01}} for t in ("a", "b")]


def test_a_spent_time_budget_skips_the_selection(tmp_path, capsys):
    def fit(tuner):
        raise AssertionError("no re-run may start once --time-budget is spent")

    options = SearchOptions(task="hotdog", output=tmp_path, time_budget=60)
    table, rows = two_candidates()
    task = selection_task()
    assert selection.reselect(task, options, slow_rerun, rows, table, ["lr"], fit, time_left=-1.0) is None
    assert "--time-budget is spent" in capsys.readouterr().out


def test_re_runs_the_time_budget_cuts_short_are_left_out_of_the_mean(shared_ray, tmp_path, capsys):
    from search.tuner import _fit

    options = SearchOptions(task="hotdog", output=tmp_path, time_budget=60, max_epochs=30, max_concurrent=2)
    table, rows = two_candidates()
    picked = selection.reselect(selection_task(), options, slow_rerun, rows, table, ["lr"], _fit, time_left=4.0)
    assert [c.trial_id for c in picked] == ["a", "b"]  # by the originals' scores alone
    assert all(c.summary()["runs"] == 1 for c in picked)  # no re-run counted: each was cut or never started
    assert "cut short by --time-budget" in capsys.readouterr().out


def selection_task():
    from search.tasks import get_task

    return get_task("hotdog")
