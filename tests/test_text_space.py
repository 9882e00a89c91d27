"""The text tasks' default space and budget chosen from the data (trainables/text_space.py): the
rules of its table for small, large, long, short and extended-vocabulary data, the epochs the budget
fits, and each task's `choose_space` on tiny data giving a space the search accepts. No Ray."""

import pytest
import yaml

from search.options import SearchOptions
from search.tasks import get_task
from spaces import parse_space
from tests.conftest import write_text_data
from trainables import text_space
from trainables.text_space import TextFacts, asha_epochs, budget_epochs, choose_space

BASE = {"lr": {"loguniform": [1e-5, 3e-4]}, "frozen_layers": {"randint": [0, 4]}, "max_length": 64}


def facts(examples=3000, length=48, long=176, smallest=1500, extended=False, task="classify", **kw) -> TextFacts:
    """Facts whose median length is `length` and 90% quantile `long`."""
    lengths = [length] * (examples * 8 // 10) + [long] * (examples - examples * 8 // 10)
    return TextFacts(
        task=task,
        examples=examples,
        lengths=sorted(lengths),
        labels=2,
        smallest_label=smallest,
        unk_share=0.0,
        embeddings_train=extended,
        stages=7,
        **kw,
    )


@pytest.mark.parametrize(
    "seen, name, expected",
    [
        (facts(length=20, long=30), "max_length", 32),  # short texts: nothing to cut
        (facts(length=48, long=176), "max_length", {"choice": [64, 128]}),  # long tail: the step below too
        (facts(length=100, long=120), "max_length", 128),  # the step below would cut most of them
        (facts(length=400, long=500), "max_length", 128),  # a CPU's longest
        (facts(extended=True), "frozen_layers", {"randint": [0, 2]}),  # new token rows train anyway
        (facts(examples=400, smallest=20), "frozen_layers", {"randint": [3, 6]}),  # few per class: freeze more
        (facts(examples=20_000, smallest=5000), "frozen_layers", {"randint": [0, 3]}),  # much data: deeper
        (facts(), "frozen_layers", {"randint": [0, 5]}),
        (facts(), "batch_size", {"choice": [16, 32]}),
        (facts(task="lm", windowed=True), "max_length", 64),  # the base's: lm's windows read every token
        (facts(task="lm", windowed=True), "frozen_layers", {"randint": [0, 4]}),  # lm keeps its own range
    ],
)
def test_the_rules_set_the_space_from_the_data(seen, name, expected):
    space, why = choose_space(BASE, seen)
    assert space[name] == expected
    assert space["lr"] == BASE["lr"]  # what no rule sets stays the task's
    assert f"{seen.examples} training examples" in why


def test_every_rule_gives_a_reason():
    assert all(rule.why and len(rule.why) > 20 for rule in text_space.RULES)


def test_asha_spends_fewer_trial_epochs_than_running_every_trial_to_the_end():
    assert asha_epochs(8, 1) == pytest.approx(1.3 * 8)
    assert asha_epochs(8, 4) == pytest.approx(1.3 * (8 + 4 + 2 * 2))
    assert asha_epochs(8, 8) < 1.3 * 8 * 8 / 2


def options(**kw) -> SearchOptions:
    return SearchOptions(task="classify", output="unused", max_epochs=None, trials=8, **kw)


def test_the_budget_fits_the_target_and_gives_more_epochs_to_less_data():
    small, _ = budget_epochs(facts(examples=600), {"max_length": 64}, 150, options(), most=15, slots=2)
    large, line = budget_epochs(facts(examples=3000), {"max_length": 64}, 600, options(), most=8, slots=2)
    assert 1 <= large < small <= 15
    assert "trial-epoch" in line and "re-runs" in line
    huge, _ = budget_epochs(facts(examples=300_000), {"max_length": 128}, 10_000, options(), most=5, slots=2)
    assert huge == 1  # nothing fits: one epoch, the least a trial can run


def test_a_shared_frozen_prefix_makes_epochs_cheaper_unless_the_embeddings_train():
    frozen = {"max_length": 64, "frozen_layers": {"randint": [4, 6]}}
    full = text_space.epoch_seconds(facts(), {"max_length": 64, "frozen_layers": 0}, 600)
    assert text_space.epoch_seconds(facts(), frozen, 600) < full / 2
    assert text_space.epoch_seconds(facts(extended=True), frozen, 600) == pytest.approx(full)


@pytest.mark.parametrize("name", ["classify", "ner", "qa", "title", "lm"])
def test_each_text_task_chooses_a_space_the_search_accepts(name, tmp_path, tiny_text):
    task = get_task(name)
    raw, why = task.choose_space(task, SearchOptions(task=name, output=tmp_path / "out", data=str(tiny_text[name])))
    space = parse_space(raw, task.hyperparameters)
    assert set(space) >= set(yaml.safe_load(task.space_file.read_text(encoding="utf-8")))
    assert "training examples" in why and "\n" not in why


def test_prepare_fills_max_epochs_from_the_budget_and_keeps_a_given_one(tmp_path):
    data = write_text_data(tmp_path / "data.tsv", "classify", 60)
    task = get_task("classify")
    searched = SearchOptions(task="classify", output=tmp_path / "a", data=str(data), max_epochs=None)
    chosen = task.prepare(task, searched)
    assert 1 <= chosen.settings.epochs <= 15 and "budget:" in chosen.summary
    assert searched.reselect == 3  # tiny data: the selection's re-runs fit the budget
    given = task.prepare(task, SearchOptions(task="classify", output=tmp_path / "b", data=str(data), max_epochs=3))
    assert given.settings.epochs == 3 and "budget:" not in given.summary


def test_the_selection_re_runs_go_before_a_search_of_one_epoch_trials():
    """pd1998-like NER on a grown vocabulary: even the cheaper space fits one epoch with the
    selection's six re-runs; without them each trial trains more, and the budget says so."""
    base = yaml.safe_load(get_task("ner").space_file.read_text(encoding="utf-8"))
    pd1998 = facts(length=37, long=78, extended=True, task="ner")
    space, _ = choose_space(base, pd1998)
    with_reruns, _ = budget_epochs(pd1998, space, 500, options(), 8, 2)
    assert with_reruns == 1
    budget = text_space.fit_budget(space, pd1998, 500, options(), 8, 2)
    assert budget.epochs >= text_space.MIN_EPOCHS and budget.reselect == 0
    assert "--reselect 0" in budget.line and "0 re-runs" in budget.line
    fits = text_space.fit_budget(BASE, facts(examples=600), 150, options(), most=15, slots=2)
    assert fits.reselect == options().reselect and fits.epochs >= text_space.MIN_EPOCHS  # nothing to give up
