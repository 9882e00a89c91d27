"""bench/quality.py: its quick mode runs a real (tiny) search and `search train` for the recipe
column and records one JSON per run; a second call skips the recorded run; the table averages over
seeds."""

import json

import pytest

from bench import quality
from search.tasks import get_task
from search.tuner import searched_names
from spaces import load_space
from tests.conftest import make_image_folder


@pytest.mark.slow
def test_quick_run_records_one_json_and_resumes_without_rerunning(tmp_path, capsys):
    data = make_image_folder(tmp_path / "images", {"train": 8, "test": 3})
    argv = ["--quick", "--sets", "hotdog", "--columns", "recipe", "--seeds", "0", "--data", f"hotdog={data}"]
    argv += ["--records", str(tmp_path / "records"), "--runs", str(tmp_path / "runs"), "--no-lock"]
    assert quality.main(argv) == 0
    record = json.loads((tmp_path / "records" / "hotdog-recipe-seed0.json").read_text())
    assert record["metric"] == "test_accuracy" and 0 <= record["test"] <= 1
    assert record["epochs"] == 1 and record["hyperparameters"]["lr"] == pytest.approx(5e-4)  # the recipe's
    assert "| hotdog | recipe | test_accuracy | 0 |" in capsys.readouterr().out
    log = tmp_path / "runs" / "hotdog-recipe-seed0.log"
    size = log.stat().st_size
    assert quality.main(argv) == 0  # recorded: not run again
    assert log.stat().st_size == size


def test_table_gives_mean_spread_and_wall_time_per_cell(tmp_path):
    for seed, test in ((0, 0.8), (1, 0.9)):
        record = {"set": "food20", "column": "old", "seed": seed, "test": test, "metric": "test_accuracy"}
        record |= {"search_s": 100.0, "train_s": 20.0 * (seed + 1)}
        (tmp_path / f"food20-old-seed{seed}.json").write_text(json.dumps(record))
    (row,) = quality.cell_rows(tmp_path)
    assert row["mean"] == pytest.approx(0.85) and row["std"] == pytest.approx(0.0707, abs=1e-4)
    assert row["seeds"] == [0, 1] and row["wall_s"] == pytest.approx(130.0)
    assert "| food20 | old | test_accuracy | 0,1 | 0.8500 | 0.0707 | 0.8000-0.9000 | 130 s |" in (
        quality.table_markdown([row])
    )


def test_recipe_and_old_columns_build_the_commands_a_user_would_type(tmp_path):
    ds = quality.SETS["pd1998"]
    search, train, env = quality.commands(ds, "recipe", 1, tmp_path, [], old_code=False)
    assert search[search.index("--space") + 1].endswith("recipes/text.yaml") and "--extend-vocab" in search
    assert train[-2:] == ["--epochs", "3"] and env.get("PYTHONPATH") != str(quality.OLD_TREE)
    _, _, env = quality.commands(quality.SETS["hotdog"], "old", 0, tmp_path, [], old_code=True)
    assert env["PYTHONPATH"] == str(quality.OLD_TREE)


@pytest.mark.parametrize("name", list(quality.SETS))
def test_each_recipe_is_a_fixed_space_of_its_task(name):
    ds = quality.SETS[name]
    space = load_space(quality.RECIPES / f"{ds.recipe}.yaml", get_task(ds.task).hyperparameters)
    assert space and not searched_names(space)  # every value plain: the search runs it once
