"""The project's leaf: what search/, trainables/ and spaces/ all use, importing nothing of theirs
(and nothing heavy), so any of them may import it. The errors the CLI turns into exit codes, the
hyperparameter table type with its value check, and how a storage location says it is a URI.
"""

import math
from dataclasses import dataclass
from typing import Any


class UserError(Exception):
    """Bad input from the user (a path, a flag, a space file, a best.yaml): one line, exit status 2."""


class SearchInterrupted(Exception):
    """The search was stopped by a signal after saving its state (exit status 130); `search resume`
    continues it. Everything else is a bug and keeps its traceback."""


@dataclass(frozen=True)
class Hyperparameter:
    """What a task accepts for one knob: its default, its type and its allowed closed range."""

    default: Any
    type: type  # int, float, bool or str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()  # for str parameters: the allowed values


def _allowed(value: str, choices: tuple) -> bool:
    """A choice ending in "*" stands for any value with that prefix (backbone: timm:NAME); the
    choice "*+*" for several other choices joined by "+" (backbone: mobilenet_v2+efficientnet_lite0)."""
    if "*+*" in choices and "+" in value:
        return all(part and _allowed(part, choices) for part in value.split("+"))
    prefixes = [c[:-1] for c in choices if c.endswith("*") and c != "*+*"]
    return value in choices or any(value.startswith(p) and len(value) > len(p) for p in prefixes)


def check_value(name: str, value: Any, spec: Hyperparameter) -> Any:
    """Return `value` coerced to the parameter's type, or raise ValueError saying what is wrong."""
    if spec.type is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if spec.type is str:
        if not isinstance(value, str) or not _allowed(value, spec.choices):
            raise ValueError(f"{name} must be one of {list(spec.choices)}, got {value!r}")
        return value
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no decimal point) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if spec.type is int:
        if value != int(value):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
        raise ValueError(f"{name} must lie in [{spec.low}, {spec.high}], got {value!r}")
    return value


def with_defaults(table: dict[str, Hyperparameter], config: dict) -> dict:
    """`config` with every hyperparameter it leaves out at the table's default."""
    return {**{name: spec.default for name, spec in table.items()}, **config}


def is_uri(path) -> bool:
    """Whether a storage location is a URI (s3://, gs://, file://...) rather than a local path."""
    return "://" in str(path)


# --- flag types: argparse `type=` functions named for what they accept. Ranges are checked where the
# options are validated (SearchOptions.validate), which names the flag in one line.


def whole_number(text: str) -> int:
    import argparse

    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def number(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    return value


UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def byte_size(text: str) -> int:
    """A size such as 512M, 4G or 1.5T (powers of 1024; a plain number is bytes)."""
    import argparse

    number_part, unit = text.strip().upper().rstrip("B"), ""
    if number_part and number_part[-1] in UNITS:
        number_part, unit = number_part[:-1], number_part[-1]
    try:
        value = float(number_part) * UNITS[unit]
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a size such as 512M or 4G, got {text!r}")
    return int(value)
