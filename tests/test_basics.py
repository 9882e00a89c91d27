"""trainables/basics.py, the leaf every package imports: the value check of the hyperparameter type,
defaults merged into a config, storage URIs, and the flag types."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from trainables.basics import Hyperparameter, check_value, is_uri, number, whole_number, with_defaults

REPO = Path(__file__).resolve().parents[1]


def test_the_leaf_imports_nothing_of_the_project_and_nothing_heavy():
    probe = (
        "import sys, trainables.basics\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('search', 'spaces', 'torch', 'ray', 'yaml')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize(
    "value, spec, expected",
    [
        ("1e-4", Hyperparameter(0.1, float, 0.0, 1.0), 1e-4),  # YAML 1.1 reads 1e-4 as a string
        (3.0, Hyperparameter(1, int, 0, 5), 3),
        ("flip", Hyperparameter("none", str, choices=("none", "flip")), "flip"),
    ],
)
def test_check_value_coerces(value, spec, expected):
    assert check_value("x", value, spec) == expected and type(check_value("x", value, spec)) is type(expected)


@pytest.mark.parametrize(
    "value, spec, message",
    [
        (2.5, Hyperparameter(1, int, 0, 5), "whole number"),
        (9, Hyperparameter(1, int, 0, 5), "must lie in"),
        (float("nan"), Hyperparameter(0.1, float), "finite"),
        (True, Hyperparameter(0.1, float), "must be a number"),
        ("crop", Hyperparameter("none", str, choices=("none",)), "must be one of"),
        (1, Hyperparameter(False, bool), "true or false"),
    ],
)
def test_check_value_refuses(value, spec, message):
    with pytest.raises(ValueError, match=message):
        check_value("x", value, spec)


def test_with_defaults_fills_what_the_config_leaves_out():
    table = {"lr": Hyperparameter(0.1, float), "batch_size": Hyperparameter(32, int)}
    assert with_defaults(table, {"lr": 0.5}) == {"lr": 0.5, "batch_size": 32}
    assert with_defaults(table, {"extra": 1})["extra"] == 1


def test_is_uri():
    assert is_uri("s3://bucket/x") and is_uri("file:///tmp/x") and not is_uri("/tmp/x") and not is_uri(Path("runs"))


def test_flag_types_name_what_they_accept():
    assert whole_number("-3") == -3 and number("1e-3") == 1e-3
    for parse, text in [(whole_number, "2.5"), (whole_number, "ten"), (number, "nan"), (number, "inf"), (number, "x")]:
        with pytest.raises(argparse.ArgumentTypeError, match="expected a"):
            parse(text)
