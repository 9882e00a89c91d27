"""Search spaces: small YAML files mapping hyperparameter names to distributions.

    lr: {loguniform: [1.0e-4, 1.0e-1]}
    batch_size: {choice: [16, 32, 64]}
    frozen_layers: {randint: [0, 5]}    # both bounds inclusive
    momentum: 0.9                       # a plain value is fixed, not searched

`load_space` validates a file against the task's hyperparameter table and turns it into Ray Tune
domains; every message names the file and the key.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ray import tune

from search.errors import UserError

SPACES_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Hyperparameter:
    """What a task accepts for one knob: its default, its type and its allowed closed range."""

    default: Any
    type: type  # int, float, bool or str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()  # for str parameters: the allowed values


def check_value(name: str, value: Any, spec: Hyperparameter) -> Any:
    """Return `value` coerced to the parameter's type, or raise ValueError saying what is wrong."""
    if spec.type is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if spec.type is str:
        if value not in spec.choices:
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


def _bounds(name: str, args: Any, spec: Hyperparameter, positive: bool = False) -> tuple:
    if not isinstance(args, list) or len(args) != 2:
        raise ValueError(f"{name}: expected [lower, upper], got {args!r}")
    low, high = (check_value(name, a, spec) for a in args)
    if low > high:
        raise ValueError(f"{name}: lower bound {low} is above upper bound {high}")
    if positive and low <= 0:
        raise ValueError(f"{name}: loguniform needs a lower bound above 0, got {low}")
    return low, high


def _real(name, kind, spec):
    if spec.type is not float:
        raise ValueError(f"{name}: {kind} is for real-valued parameters; use randint or choice for {spec.type.__name__} {name}")


def _uniform(name, args, spec):
    _real(name, "uniform", spec)
    return tune.uniform(*_bounds(name, args, spec))


def _loguniform(name, args, spec):
    _real(name, "loguniform", spec)
    return tune.loguniform(*_bounds(name, args, spec, positive=True))


def _randint(name, args, spec):
    if spec.type is not int:
        raise ValueError(f"{name}: randint is for whole-number parameters, {name} is {spec.type.__name__}")
    low, high = _bounds(name, args, spec)
    return tune.randint(low, high + 1)  # tune's upper bound is exclusive, ours inclusive


def _choice(name, args, spec):
    if not isinstance(args, list) or not args:
        raise ValueError(f"{name}: choice needs a non-empty list, got {args!r}")
    return tune.choice([check_value(name, a, spec) for a in args])


DISTRIBUTIONS = {"uniform": _uniform, "loguniform": _loguniform, "randint": _randint, "choice": _choice}


def parse_space(raw: Any, hyperparameters: dict[str, Hyperparameter]) -> dict[str, Any]:
    """Turn a parsed YAML mapping into {name: tune domain or fixed value}; raise ValueError on any mistake."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError("a space must be a non-empty mapping of hyperparameter names to distributions")
    space = {}
    for name, entry in raw.items():
        if name not in hyperparameters:
            raise ValueError(f"unknown hyperparameter {name!r} (known: {', '.join(sorted(hyperparameters))})")
        spec = hyperparameters[name]
        if isinstance(entry, dict):
            if len(entry) != 1:
                raise ValueError(f"{name}: give exactly one distribution, got {sorted(entry)}")
            (kind, args), = entry.items()
            if kind not in DISTRIBUTIONS:
                raise ValueError(f"{name}: unknown distribution {kind!r} (known: {', '.join(DISTRIBUTIONS)})")
            space[name] = DISTRIBUTIONS[kind](name, args, spec)
        else:
            space[name] = check_value(name, entry, spec)
    return space


def load_space(path: str | Path, hyperparameters: dict[str, Hyperparameter]) -> dict[str, Any]:
    """Read and validate a space file; raise UserError naming the file on any problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"cannot read space file {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise UserError(f"space file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    try:
        return parse_space(raw, hyperparameters)
    except ValueError as e:
        raise UserError(f"space file {path}: {e}") from None
