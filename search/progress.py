"""The search's driver-side callback: one line per finished (or retried) trial, results.csv and
best.yaml rewritten as trials finish so an interrupted search still leaves a valid partial table,
and ASHA's rungs carried through Tune's experiment state so a resumed search keeps them.

Ray 2.60 saves the searcher's state on every experiment checkpoint but not the scheduler's, so a
restored ASHA would start with empty rungs and promote every unfinished trial; Tune does save and
restore callbacks' get_state()/set_state(), and the restored callback and scheduler come from one
pickle (tuner.pkl), so restoring the rungs through this callback puts them back where ASHA looks.
"""

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
    ):
        self.total, self.metric, self.mode, self.names, self.max_epochs = total, metric, mode, names, max_epochs
        self.scheduler, self.write_partial = scheduler, write_partial
        self.histories: dict[str, list[dict]] = {}
        self.finished: dict[str, dict] = {}  # trial_id -> {"config", "error"}
        self.started = time.monotonic()

    # Tune checkpoints this with the experiment state and hands it back on resume.
    def get_state(self) -> dict:
        return {"histories": self.histories, "finished": self.finished, "asha": asha_state(self.scheduler)}

    def set_state(self, state: dict) -> None:
        self.histories, self.finished = state["histories"], state["finished"]
        self.started = time.monotonic()  # the saved clock belonged to the interrupted process
        restore_asha(self.scheduler, state["asha"])

    def on_trial_result(self, iteration, trials, trial, result, **info):
        row = {key: result.get(key) for key in (self.metric, *KEPT)}
        self.histories.setdefault(trial.trial_id, []).append(row)

    def on_trial_recover(self, iteration, trials, trial, **info):
        print(
            f"          {trial.trial_id} failed ({_error_line(trial)}); retrying from its last checkpoint", flush=True
        )

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finished(trial, error=None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finished(trial, error=_error_line(trial) or "error")

    def _finished(self, trial, error: str | None) -> None:
        stop = driver_stop(getattr(trial, "last_result", None))  # tests pass plain stand-ins
        self.finished[trial.trial_id] = {"config": dict(trial.config), "error": error, "stop": stop}
        history = pd.DataFrame(self.histories.get(trial.trial_id, []))
        row = trial_row(
            trial.trial_id, trial.config, history, error, self.metric, self.mode, self.max_epochs, stop
        )  # as results.csv
        params = " ".join(f"{k}={_short(trial.config.get(k))}" for k in self.names)
        print(
            f"[{len(self.finished)}/{self.total} {time.monotonic() - self.started:5.0f}s] {trial.trial_id}  {params}  "
            f"{self.metric}={row[self.metric]:.4f} after {row['epochs']} epoch(s), {row['status']}"
            + (f": {error}" if error else ""),
            flush=True,
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
