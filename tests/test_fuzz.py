"""Property-based fuzzing of `python -m search hotdog` with hypothesis: random flag values and random
space files on a tiny generated dataset. Whatever they are, the outcome is exit 0, or exit 2 with
one line on stderr (argparse's usage is allowed for a value that is no number at all), with no
traceback, no change to a file the user already had in --output, and no run past a bound. Most
examples are refused before Ray starts; those that pass run one 1-epoch trial on a shared Ray.
"""

import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search.cli import main
from search.tasks import get_task
from tests.conftest import make_image_folder

BOUND_S = 180  # one example: a refusal takes well under a second, a 1-trial search on the shared Ray ~10-30 s
SMALL = ["--trials", "1", "--max-epochs", "1", "--image-size", "32", "--max-concurrent", "1", "--no-report"]
FLAGS = [
    "--seed",
    "--val-fraction",
    "--patience",
    "--min-delta",
    "--grace-period",
    "--cpus-per-trial",
    "--gpus-per-trial",
    "--memory-per-trial",
    "--max-failures",
    "--time-budget",
    "--pending-timeout",
    "--trial-timeout",
]
NAMES = [*get_task("hotdog").hyperparameters, "dropout"]

numbers = st.one_of(
    st.integers(-3, 3).map(str),
    st.sampled_from(["0", "-1", "0.5", "2.5", "1e9", "4294967296", "nan", "inf", "-inf", "abc", "", "1_0"]),
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
)
flags = st.lists(st.tuples(st.sampled_from(FLAGS), numbers), max_size=3)
scalars = st.one_of(
    st.integers(-10, 5000), st.floats(allow_nan=True, width=32), st.booleans(), st.text(max_size=4), st.none()
)
distributions = st.dictionaries(
    st.sampled_from(["uniform", "loguniform", "randint", "choice", "gaussian"]),
    st.lists(scalars, max_size=3),
    min_size=1,
    max_size=2,
)
spaces = st.one_of(
    st.dictionaries(st.sampled_from(NAMES), st.one_of(scalars, distributions), max_size=4).map(yaml.safe_dump),
    st.text(max_size=30),  # not even a mapping
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("fuzz-data"), {"train": 4, "test": 2}, size=12)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chosen=flags, space=st.none() | spaces)
def test_any_flags_and_space_exit_0_or_one_line_2(chosen, space, shared_ray, data, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("fuzz")
    output = folder / "out"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    args = ["hotdog", "--data", str(data), "--output", str(output)]
    for flag, value in chosen:
        args += [f"{flag}={value}"]  # `=`: a value starting with '-' stays the flag's value
    if space is not None:
        (folder / "space.yaml").write_text(space, encoding="utf-8")
        args += ["--space", str(folder / "space.yaml")]
    capsys.readouterr()
    started = time.monotonic()
    try:
        code = main(args + SMALL)
        usage = False
    except SystemExit as e:  # argparse: a value that is no number at all
        code, usage = e.code, True
    err = capsys.readouterr().err.strip().splitlines()
    assert time.monotonic() - started < BOUND_S
    assert (output / "notes.txt").read_text() == "mine"
    assert "Traceback" not in "\n".join(err)
    if code == 0:
        assert (output / "results.csv").is_file()
    elif usage:
        assert code == 2 and "error: argument" in err[-1], err
    else:
        assert code == 2 and len(err) == 1 and err[0].startswith("search: error:"), err
