"""--warm-start OLD_OUTPUT: an earlier search's scored trials (results.csv, the task from its
search.yaml) told to the new search's Optuna sampler as already evaluated (OptunaSearch's
`points_to_evaluate` with `evaluated_rewards`), so TPE models from its first trial instead of
sampling at random. Refused in one line when the searches do not fit together (another task, a
searched name the old one lacks); a trial outside the new space's bounds or choices is skipped.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from optuna.distributions import CategoricalDistribution, IntDistribution
from ray.tune.search.optuna import OptunaSearch

from search.layout import Layout
from search.options import load_options
from trainables.basics import UserError
from trainables.task import Task


@dataclass
class WarmStart:
    """What the sampler is told (points and their scores) and what was left out, for the summary."""

    points: list[dict] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    outside: int = 0  # trials with a value outside the new space (or another fixed value)
    unscored: int = 0  # errored trials, or ones that reported no score

    def searcher_args(self) -> dict:
        return {"points_to_evaluate": self.points, "evaluated_rewards": self.rewards} if self.points else {}


def load_warm_start(old_output: Path, task: Task, space: dict) -> WarmStart:
    """The trials of the search in `old_output` that fit `space` (the new search's), with their scores."""
    old_output = Path(old_output).expanduser().resolve()
    layout = Layout(old_output)
    if not layout.options.is_file() or not layout.results.is_file():
        raise UserError(f"--warm-start {old_output} holds no search (no {layout.options.name}, {layout.results.name})")
    old_task = load_options(layout.options).task
    if old_task != task.name:
        raise UserError(f"--warm-start {old_output} searched task {old_task}, not {task.name}: its scores do not carry")
    distributions = OptunaSearch.convert_search_space(space)  # the searched names, as Optuna samples them
    if not distributions:
        raise UserError("--warm-start needs a space with something to search (this one fixes every hyperparameter)")
    try:
        table = pd.read_csv(layout.results)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {layout.results}: {str(e).splitlines()[0]}") from None
    missing = [name for name in distributions if name not in table]
    if missing or task.metric not in table:
        raise UserError(
            f"--warm-start {old_output}: its {layout.results.name} has no column "
            f"{', '.join(missing or [task.metric])}, which the new search needs; the searches are not compatible"
        )
    fixed = {name: value for name, value in space.items() if name not in distributions and name in table}
    warm = WarmStart()
    for _, row in table.iterrows():
        score = row[task.metric]
        if row.get("status") == "errored" or not _number(score):
            warm.unscored += 1
            continue
        point = {name: _inside(row[name], dist) for name, dist in distributions.items()}
        if any(value is None for value in point.values()) or any(not _same(row[n], v) for n, v in fixed.items()):
            warm.outside += 1
            continue
        warm.points.append(point)
        warm.rewards.append(float(score))
    if not warm.points:
        raise UserError(
            f"--warm-start {old_output}: none of its {len(table)} trials fits the new space "
            f"({warm.outside} outside its bounds or choices, {warm.unscored} without a score)"
        )
    return warm


def summary(warm: WarmStart, old_output: Path) -> str:
    skipped = [f"{n} {why}" for n, why in ((warm.outside, "outside the new space"), (warm.unscored, "unscored")) if n]
    return f"warm start: {len(warm.points)} scored trials from {old_output} told to the sampler" + (
        f" ({', '.join(skipped)} skipped)" if skipped else ""
    )


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _inside(value, dist):
    """`value` (as results.csv holds it) as the distribution's own value, or None when outside it."""
    if isinstance(dist, CategoricalDistribution):  # the choice itself (the CSV reads 16 as 16, "flip" as "flip")
        return next((c for c in dist.choices if c == value or str(c) == str(value)), None)
    if not _number(value) or (isinstance(dist, IntDistribution) and not float(value).is_integer()):
        return None
    value = int(value) if isinstance(dist, IntDistribution) else float(value)
    return value if dist._contains(dist.to_internal_repr(value)) else None  # bounds, and the step if any


def _same(old, new) -> bool:
    """A fixed hyperparameter's old value (from the CSV) equals the new space's."""
    return old == new or str(old) == str(new) or (_number(old) and _number(new) and math.isclose(old, new))
