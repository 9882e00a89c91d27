"""Tests for spaces: load_space turns YAML space files into Ray Tune domains, validated against the
image classifier's real hyperparameter table, and rejects bad files with a UserError naming file and key."""

import numpy as np
import pytest

from search.tasks import get_task, task_summaries
from spaces import SPACES_DIR, load_space
from trainables.basics import UserError, check_value
from trainables.image_classifier import HYPERPARAMETERS

SAMPLES = 400


def write(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def samples(domain, n=SAMPLES, seed=0):
    """n single draws, the way Tune draws one value per trial."""
    rng = np.random.default_rng(seed)
    return [domain.sample(random_state=rng) for _ in range(n)]


# (space text, name, how to check, expected)
#   "fixed": the loaded value equals expected, with expected's type
#   "range": every sample lies in the closed range and both ends are approached
#   "set": the set of sampled values is exactly expected
GOOD_SPACES = [
    pytest.param("lr: {loguniform: [1.0e-4, 1.0e-1]}", "lr", "range", (1e-4, 1e-1), id="loguniform"),
    pytest.param(
        "weight_decay: {loguniform: [1.0e-5, 1.0e-2]}", "weight_decay", "range", (1e-5, 1e-2), id="loguniform-wd"
    ),
    pytest.param("momentum: {uniform: [0.5, 0.99]}", "momentum", "range", (0.5, 0.99), id="uniform"),
    pytest.param(
        "weight_decay: {uniform: [0, 0.1]}", "weight_decay", "range", (0.0, 0.1), id="uniform-int-bounds-on-float"
    ),
    pytest.param(
        "frozen_layers: {randint: [0, 5]}", "frozen_layers", "set", {0, 1, 2, 3, 4, 5}, id="randint-inclusive"
    ),
    pytest.param("frozen_layers: {randint: [4, 5]}", "frozen_layers", "set", {4, 5}, id="randint-two-values"),
    pytest.param("frozen_layers: {randint: [3, 3]}", "frozen_layers", "set", {3}, id="randint-single-value"),
    pytest.param("batch_size: {choice: [16, 32, 64]}", "batch_size", "set", {16, 32, 64}, id="choice"),
    pytest.param("head_lr_mult: {choice: [1, 10.0]}", "head_lr_mult", "set", {1.0, 10.0}, id="choice-float"),
    pytest.param("momentum: 0.9", "momentum", "fixed", 0.9, id="fixed-float"),
    pytest.param("batch_size: 32", "batch_size", "fixed", 32, id="fixed-int"),
    pytest.param("batch_size: 32.0", "batch_size", "fixed", 32, id="fixed-whole-float-to-int"),
    pytest.param("weight_decay: 0", "weight_decay", "fixed", 0.0, id="fixed-int-to-float"),
    pytest.param("frozen_layers: 5", "frozen_layers", "fixed", 5, id="fixed-upper-edge"),
]


@pytest.mark.parametrize("text, name, check, expected", GOOD_SPACES)
def test_good_space(tmp_path, text, name, check, expected):
    space = load_space(write(tmp_path, text), HYPERPARAMETERS)
    assert list(space) == [name]
    value = space[name]
    spec = HYPERPARAMETERS[name]
    if check == "fixed":
        assert not hasattr(value, "sample")
        assert value == expected and type(value) is type(expected)
        return
    drawn = samples(value)
    for v in drawn:  # every draw is a value the trainable accepts, of the parameter's type
        assert check_value(name, v, spec) == v
        assert isinstance(v, spec.type)
    if check == "set":
        assert set(drawn) == expected
    else:
        low, high = expected
        assert all(low <= v <= high for v in drawn)
        span = np.log(high / low) if "loguniform" in text else high - low
        to_low = min(np.log(v / low) if "loguniform" in text else v - low for v in drawn)
        to_high = min(np.log(high / v) if "loguniform" in text else high - v for v in drawn)
        assert to_low < 0.05 * span and to_high < 0.05 * span


def test_randint_upper_bound_is_inclusive(tmp_path):
    space = load_space(write(tmp_path, "frozen_layers: {randint: [0, 5]}"), HYPERPARAMETERS)
    drawn = samples(space["frozen_layers"])
    assert max(drawn) == 5 and min(drawn) == 0


def test_loguniform_is_log_spaced(tmp_path):
    space = load_space(write(tmp_path, "lr: {loguniform: [1.0e-4, 1.0e-0]}"), HYPERPARAMETERS)
    drawn = np.array(samples(space["lr"], n=2000))
    below = np.mean(drawn < 1e-2)  # the lower half of the log range, but 1% of the linear range
    assert 0.4 < below < 0.6


def test_several_entries_keep_their_order(tmp_path):
    text = "lr: {loguniform: [1.0e-4, 1.0e-1]}\nmomentum: 0.8\nbatch_size: {choice: [8, 16]}\n"
    space = load_space(write(tmp_path, text), HYPERPARAMETERS)
    assert list(space) == ["lr", "momentum", "batch_size"]
    assert space["momentum"] == 0.8


def test_shipped_hotdog_space_loads():
    path = SPACES_DIR / "hotdog.yaml"
    assert get_task("hotdog").space_file == path
    space = load_space(path, HYPERPARAMETERS)
    assert set(space) <= set(HYPERPARAMETERS)
    assert space["momentum"] == 0.9
    searched = {k: v for k, v in space.items() if hasattr(v, "sample")}
    assert {"lr", "batch_size", "frozen_layers"} <= set(searched)
    for name, domain in searched.items():
        for v in samples(domain, n=100):
            assert check_value(name, v, HYPERPARAMETERS[name]) == v
            assert isinstance(v, HYPERPARAMETERS[name].type)
    assert set(samples(space["frozen_layers"])) == {4, 5}  # randint's upper bound is inclusive
    assert space["augment"] == "flip"


@pytest.mark.parametrize("name", list(task_summaries()))
def test_every_tasks_default_space_loads_against_its_table(name):
    task = get_task(name)
    table = task.hyperparameters
    space = load_space(task.space_file, table)
    searched = {k: v for k, v in space.items() if hasattr(v, "sample")}
    assert {"lr", "batch_size", "weight_decay"} <= set(searched)
    if "warmup_ratio" in table:  # the text tasks' schedule is searched too
        assert {"frozen_layers", "warmup_ratio"} <= set(searched)
    for key, domain in searched.items():
        for v in samples(domain, n=50):
            assert check_value(key, v, table[key]) == v


# (space text or None for "no file", the key the message must name or None)
BAD_SPACES = [
    pytest.param("learning_rate: 0.1", "learning_rate", id="unknown-hyperparameter"),
    pytest.param("lr: {normal: [0.01, 0.1]}", "lr", id="unknown-distribution"),
    pytest.param("lr: {uniform: [0.1, 0.01]}", "lr", id="lower-above-upper"),
    pytest.param("frozen_layers: {randint: [4, 1]}", "frozen_layers", id="randint-lower-above-upper"),
    pytest.param("weight_decay: {loguniform: [0.0, 1.0e-2]}", "weight_decay", id="loguniform-lower-zero"),
    pytest.param("lr: {loguniform: [-1.0, 1.0e-1]}", "lr", id="loguniform-lower-negative"),
    pytest.param("lr: {randint: [1, 5]}", "lr", id="randint-on-float"),
    pytest.param("batch_size: {choice: []}", "batch_size", id="choice-empty"),
    pytest.param("batch_size: {choice: 16}", "batch_size", id="choice-not-a-list"),
    pytest.param("lr: {uniform: [0.01, 0.1], loguniform: [0.01, 0.1]}", "lr", id="two-distributions"),
    pytest.param("lr: {}", "lr", id="no-distribution"),
    pytest.param("lr: {uniform: [0.01]}", "lr", id="one-bound"),
    pytest.param("lr: {uniform: 0.01}", "lr", id="bounds-not-a-list"),
    pytest.param("frozen_layers: 9", "frozen_layers", id="fixed-out-of-range"),
    pytest.param("frozen_layers: {randint: [0, 9]}", "frozen_layers", id="randint-out-of-range"),
    pytest.param("batch_size: {choice: [16, 0]}", "batch_size", id="choice-out-of-range"),
    pytest.param("lr: 100", "lr", id="lr-above-range"),
    pytest.param("batch_size: big", "batch_size", id="wrong-type-str"),
    pytest.param("batch_size: true", "batch_size", id="wrong-type-bool"),
    pytest.param("batch_size: 2.5", "batch_size", id="int-not-whole"),
    pytest.param("batch_size: [16, 32]", "batch_size", id="bare-list"),
    pytest.param("momentum: .nan", "momentum", id="float-nan"),
    pytest.param("- lr\n- batch_size\n", None, id="not-a-mapping-list"),
    pytest.param("42\n", None, id="not-a-mapping-scalar"),
    pytest.param("", None, id="empty-file"),
    pytest.param("lr: [0.1, 0.2\nbatch_size: 3\n", None, id="invalid-yaml"),
    pytest.param("lr: {loguniform: [1.0e-4, 1.0e-1]}\n\tbatch_size: 3\n", None, id="invalid-yaml-tab"),
    pytest.param(None, None, id="missing-file"),
    pytest.param("batch_size: {uniform: [16, 64]}", "batch_size", id="uniform-on-int"),
    pytest.param("frozen_layers: {loguniform: [1, 5]}", "frozen_layers", id="loguniform-on-int"),
    pytest.param("batch_size: .inf", "batch_size", id="int-infinite"),
    pytest.param("frozen_layers: .nan", "frozen_layers", id="int-nan"),
]


@pytest.mark.parametrize("text, key", BAD_SPACES)
def test_bad_space(tmp_path, text, key):
    path = tmp_path / "missing.yaml" if text is None else write(tmp_path, text, name="bad.yaml")
    with pytest.raises(UserError) as caught:
        load_space(path, HYPERPARAMETERS)
    message = str(caught.value)
    assert str(path) in message
    if key is not None:
        assert key in message
    assert "\n" not in message  # the CLI prints it as one line


def test_unknown_distribution_message_names_it(tmp_path):
    path = write(tmp_path, "lr: {normal: [0.01, 0.1]}")
    with pytest.raises(UserError, match="normal"):
        load_space(path, HYPERPARAMETERS)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(UserError) as caught:
        load_space(tmp_path, HYPERPARAMETERS)
    assert str(tmp_path) in str(caught.value)
