"""Search spaces: small YAML files mapping hyperparameter names to distributions.

    lr: {loguniform: [1.0e-4, 1.0e-1]}
    batch_size: {choice: [16, 32, 64]}
    frozen_layers: {randint: [0, 5]}    # both bounds inclusive
    momentum: 0.9                       # a plain value is fixed, not searched

`load_space` validates a file against the task's hyperparameter table and turns it into Ray Tune
domains; every message names the file and the key. Ray Tune is imported only there, when domains
are built, so importing this package (the CLI does, for --help) stays cheap.
"""

from pathlib import Path
from typing import Any

import yaml

from trainables.basics import Hyperparameter, UserError, check_value

SPACES_DIR = Path(__file__).parent


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
        raise ValueError(
            f"{name}: {kind} is for real-valued parameters; use randint or choice for {spec.type.__name__} {name}"
        )


# Each checks one entry and returns (the ray.tune function that builds its domain, its arguments).
def _uniform(name, args, spec):
    _real(name, "uniform", spec)
    return "uniform", _bounds(name, args, spec)


def _loguniform(name, args, spec):
    _real(name, "loguniform", spec)
    return "loguniform", _bounds(name, args, spec, positive=True)


def _randint(name, args, spec):
    if spec.type is not int:
        raise ValueError(f"{name}: randint is for whole-number parameters, {name} is {spec.type.__name__}")
    low, high = _bounds(name, args, spec)
    return "randint", (low, high + 1)  # tune's upper bound is exclusive, ours inclusive


def _choice(name, args, spec):
    if not isinstance(args, list) or not args:
        raise ValueError(f"{name}: choice needs a non-empty list, got {args!r}")
    return "choice", ([check_value(name, a, spec) for a in args],)


DISTRIBUTIONS = {"uniform": _uniform, "loguniform": _loguniform, "randint": _randint, "choice": _choice}


def parse_space(raw: Any, hyperparameters: dict[str, Hyperparameter]) -> dict[str, Any]:
    """Turn a parsed YAML mapping into {name: tune domain or fixed value}; raise ValueError on any mistake."""
    from ray import tune  # only here, where domains are built

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
            ((kind, args),) = entry.items()
            if kind not in DISTRIBUTIONS:
                raise ValueError(f"{name}: unknown distribution {kind!r} (known: {', '.join(DISTRIBUTIONS)})")
            maker, domain_args = DISTRIBUTIONS[kind](name, args, spec)
            space[name] = getattr(tune, maker)(*domain_args)
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
    except UnicodeDecodeError as e:
        raise UserError(f"space file {path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    try:
        return parse_space(raw, hyperparameters)
    except ValueError as e:
        raise UserError(f"space file {path}: {e}") from None
