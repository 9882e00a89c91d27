"""search/options.py: a search's options validated at the edge (one line naming the flag), saved as
search.yaml and read back by `search resume`."""

from pathlib import Path

import pytest
import yaml

from search.options import SearchOptions, load_options, save_options
from trainables.basics import UserError


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"seed": -1}, "--seed must be 0 or more"),
        ({"trials": 0}, "--trials must be at least 1"),
        ({"max_failures": -1}, "--max-failures must not be negative"),
        ({"patience": -2}, "--patience must not be negative"),
        ({"val_fraction": 0.0}, "--val-fraction must be between 0 and 1"),
        ({"grace_period": 3, "max_epochs": 2}, "--grace-period must be in"),
        ({"amp": "bf16"}, "--amp bf16 needs a GPU"),
        ({"min_delta": -0.5}, "--min-delta must be a number of 0 or more"),
        ({"min_delta": float("nan")}, "--min-delta must be a number of 0 or more"),
        ({"cpus_per_trial": 1.5}, "a fraction below 1 or a whole number"),
        ({"seed": 2**32}, "--seed must be 0 or more"),
        ({"trials": "3"}, "--trials must be at least 1"),  # a hand-edited search.yaml
        ({"time_budget": float("inf")}, "--time-budget must be positive"),
        ({"trial_timeout": 0.0}, "--trial-timeout must be a positive number"),
        ({"pending_timeout": -1.0}, "--pending-timeout must be a positive number"),
        ({"memory_per_trial": 0.0}, "--memory-per-trial must be a positive number"),
        ({"reduction_factor": 1}, "reduction_factor must be a whole number"),
    ],
)
def test_bad_options_are_refused_naming_the_flag(tmp_path, changes, message):
    with pytest.raises(UserError, match=message):
        SearchOptions(task="hotdog", output=tmp_path, **changes).validate()


def test_defaults_are_valid(tmp_path):
    SearchOptions(task="hotdog", output=tmp_path).validate()
    SearchOptions(task="classify", output=tmp_path, max_epochs=None).validate()  # the task decides


def test_options_round_trip_through_search_yaml(tmp_path):
    options = SearchOptions(task="hotdog", output=tmp_path / "out", space=Path("my.yaml"), seed=3, amp="off")
    save_options(options, tmp_path / "search.yaml")
    assert yaml.safe_load((tmp_path / "search.yaml").read_text())["output"] == str(tmp_path / "out")
    assert load_options(tmp_path / "search.yaml") == options


@pytest.mark.parametrize("text", ["task: [", "- 1\n", "task: hotdog\noutput: x\nnot_an_option: 1\n", "task: hotdog\n"])
def test_a_damaged_search_yaml_is_refused(tmp_path, text):
    (tmp_path / "search.yaml").write_text(text)
    with pytest.raises(UserError, match="is damaged"):
        load_options(tmp_path / "search.yaml")
