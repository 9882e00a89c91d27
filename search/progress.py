"""The search's driver-side callback: on a terminal one live line (trials done and running, the best
score so far, time), rewritten in place; otherwise (CI, `ray job` logs) one plain line per finished
(or retried) trial; nothing with --quiet. results.csv and best.yaml are rewritten as trials finish
so an interrupted search still leaves a valid partial table, and ASHA's rungs are carried through
Tune's experiment state so a resumed search keeps them.

Ray 2.60 saves the searcher's state on every experiment checkpoint but not the scheduler's, so a
restored ASHA would start with empty rungs and promote every unfinished trial; Tune does save and
restore callbacks' get_state()/set_state(), and the restored callback and scheduler come from one
pickle (tuner.pkl), so restoring the rungs through this callback puts them back where ASHA looks.
"""

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from search.results import error_summary, trial_row
from search.watch import TIMED_OUT, stop_search

KEPT = ("epoch", "val_loss", "stop", "time_total_s", "checkpoint_dir_name")  # what the partial table needs


def asha_state(scheduler: ASHAScheduler) -> dict:
    return {
        "rungs": [
            [(milestone, dict(recorded)) for milestone, recorded in bracket._rungs] for bracket in scheduler._brackets
        ],
        "num_stopped": scheduler._num_stopped,
    }


def restore_asha(scheduler: ASHAScheduler, state: dict) -> None:
    for bracket, rungs in zip(scheduler._brackets, state["rungs"]):
        bracket._rungs = [(milestone, dict(recorded)) for milestone, recorded in rungs]
    scheduler._num_stopped = state["num_stopped"]


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


class SearchProgress(tune.Callback):
    def __init__(
        self,
        total: int,
        metric: str,
        mode: str,
        names: list[str],
        max_epochs: int,
        scheduler: ASHAScheduler,
        write_partial: Callable[[list[dict]], None],
        quiet: bool = False,
    ):
        self.total, self.metric, self.mode, self.names, self.max_epochs = total, metric, mode, names, max_epochs
        self.scheduler, self.write_partial, self.quiet = scheduler, write_partial, quiet
        self.histories: dict[str, list[dict]] = {}
        self.finished: dict[str, dict] = {}  # trial_id -> {"config", "error"}
        self.started = time.monotonic()
        self.live = sys.stdout.isatty()
        self.running = 0
        self.best: float | None = None  # the best score any epoch reported so far
        self.shown = 0  # length of the live line on screen, to blank what a shorter one leaves

    def __getstate__(self) -> dict:  # sys.stdout's tty-ness belongs to this process, not the pickle
        return {k: v for k, v in self.__dict__.items() if k != "live"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.live = sys.stdout.isatty()

    # Tune checkpoints this with the experiment state and hands it back on resume.
    def get_state(self) -> dict:
        return {"histories": self.histories, "finished": self.finished, "asha": asha_state(self.scheduler)}

    def set_state(self, state: dict) -> None:
        self.histories, self.finished = state["histories"], state["finished"]
        self.started = time.monotonic()  # the saved clock belonged to the interrupted process
        restore_asha(self.scheduler, state["asha"])

    def on_trial_start(self, iteration, trials, trial, **info):
        self._update(trials)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        row = {key: result.get(key) for key in (self.metric, *KEPT)}
        self.histories.setdefault(trial.trial_id, []).append(row)
        score = result.get(self.metric)
        if isinstance(score, (int, float)) and score == score:  # not NaN
            better = self.best is None or (score > self.best if self.mode == "max" else score < self.best)
            self.best = score if better else self.best
        self._update(trials)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._say(f"          {trial.trial_id} failed ({_error_line(trial)}); retrying from its last checkpoint")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finished(trial, error=None)
        self._update(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finished(trial, error=_error_line(trial) or "error")
        self._update(trials)

    def on_experiment_end(self, trials, **info):
        if self.live and self.shown and not self.quiet:
            print(flush=True)  # end the live line: what follows starts on its own
            self.shown = 0

    def status_line(self) -> str:
        best = f"best {self.metric} {self.best:.4f}" if self.best is not None else "no score yet"
        return (
            f"trials {len(self.finished)}/{self.total} done, {self.running} running, {best}, "
            f"{time.monotonic() - self.started:.0f}s"
        )

    def _update(self, trials) -> None:
        """The live line, on a terminal only (plain output gets the finished trials' lines)."""
        self.running = sum(getattr(t, "status", None) == "RUNNING" for t in trials or [])
        if self.quiet or not self.live:
            return
        line = self.status_line()
        print(f"\r{line}{' ' * max(0, self.shown - len(line))}", end="", flush=True)
        self.shown = len(line)

    def _say(self, line: str) -> None:
        """A line of its own: above the live line on a terminal, nothing with --quiet."""
        if self.quiet:
            return
        if self.live and self.shown:
            line = f"\r{line}{' ' * max(0, self.shown - len(line))}"
            self.shown = 0
        print(line, flush=True)

    def _finished(self, trial, error: str | None) -> None:
        stop = driver_stop(getattr(trial, "last_result", None))  # tests pass plain stand-ins
        self.finished[trial.trial_id] = {"config": dict(trial.config), "error": error, "stop": stop}
        history = pd.DataFrame(self.histories.get(trial.trial_id, []))
        row = trial_row(
            trial.trial_id, trial.config, history, error, self.metric, self.mode, self.max_epochs, stop
        )  # as results.csv
        params = " ".join(f"{k}={_short(trial.config.get(k))}" for k in self.names)
        if error or not self.live:  # on a terminal the live line says the rest
            self._say(
                f"[{len(self.finished)}/{self.total} {time.monotonic() - self.started:5.0f}s] {trial.trial_id}  "
                f"{params}  {self.metric}={row[self.metric]:.4f} after {row['epochs']} epoch(s), {row['status']}"
                + (f": {error}" if error else "")
            )
        try:
            self.write_partial(self.rows())
        except OSError as e:  # a full or read-only disk: the last good tables stay (atomic writes)
            stop_search(f"cannot write the results table ({e.filename or 'results.csv'}): {e.strerror or e}")

    def rows(self) -> list[dict]:
        """(trial_id, config, history DataFrame, error, stop) for every finished trial."""
        return [
            {
                "trial_id": trial_id,
                "config": done["config"],
                "error": done["error"],
                "stop": done.get("stop"),
                "history": pd.DataFrame(self.histories.get(trial_id, [])),
            }
            for trial_id, done in self.finished.items()
        ]


def driver_stop(last_result: dict | None) -> str | None:
    """Why the driver ended a trial ("timed out", see search/watch.py), if it did."""
    return TIMED_OUT if (last_result or {}).get("stop") == TIMED_OUT else None


def _error_line(trial) -> str:
    """What the trial's error file says went wrong, and where the whole traceback is."""
    path = getattr(trial, "error_file", None)
    try:
        return f"{error_summary(Path(path).read_text())} (traceback: {path})" if path else ""
    except OSError:
        return ""
