"""The search's watch: ASHA plus what Tune leaves to chance, checked on the driver at every step of
Tune's loop (choose_trial_to_run is the hook Tune calls each step, with its controller). A trial with
no epoch report for --trial-timeout seconds is stopped and recorded as `timed out`; a search none of
whose trials has started after --pending-timeout is stopped (resumable); a trial whose reused actor
refused it ("Trainable runner reuse requires reset_config()", which Ray 2.60 errors outright) is
retried like any failure. The last two reach into Ray's TuneController (ray is pinned: 2.60.0).
"""

import os
import signal
import time

from ray.tune.execution.tune_controller import TuneController
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler

from search.options import SearchOptions

MIN_TRIAL_TIMEOUT_S = 600.0  # the default --trial-timeout's floor: a first epoch also loads data and weights
SLOW_EPOCHS = 10  # ...and its multiple of the slowest epoch seen: a trial this far behind has hung
TIMED_OUT = "timed out"  # the trial's status in results.csv
stop_reasons: list[str] = []  # why the watch (or the progress callback) stopped the search; read by the tuner


def stop_search(reason: str) -> None:
    """Stop the whole search the way Ctrl-C does (Tune's graceful stop: state saved, resumable)."""
    stop_reasons.append(reason)
    os.kill(os.getpid(), signal.SIGUSR1)


class WatchedASHA(ASHAScheduler):
    def __init__(self, *, pending_timeout: float, trial_timeout: float | None, **asha):
        super().__init__(**asha)
        self.pending_timeout, self.trial_timeout = pending_timeout, trial_timeout
        self._start_clock()

    def _start_clock(self) -> None:
        """What belongs to this process only: a restored scheduler starts its clocks again."""
        self.first_step = None  # time.monotonic() of the first step
        self.any_started = False
        self.last_report: dict[str, float] = {}  # trial_id -> when it last reported (or started)
        self.slowest_epoch = 0.0

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for name in ("first_step", "any_started", "last_report", "slowest_epoch"):
            state.pop(name)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._start_clock()

    def limit(self) -> float:
        return self.trial_timeout or max(MIN_TRIAL_TIMEOUT_S, SLOW_EPOCHS * self.slowest_epoch)

    def on_trial_result(self, tune_controller, trial, result):
        self.last_report[trial.trial_id] = time.monotonic()
        self.slowest_epoch = max(self.slowest_epoch, float(result.get("time_this_iter_s") or 0.0))
        return super().on_trial_result(tune_controller, trial, result)

    def choose_trial_to_run(self, tune_controller):
        controller = tune_controller._tune_controller  # the wrapper Tune hands schedulers hides stop-and-kill
        now = time.monotonic()
        self.first_step = self.first_step or now
        if controller._actor_manager.num_live_actors:  # some trial got its resources (its actor may still be starting)
            self.any_started = True
        for trial in tune_controller.get_trials():
            if trial.status != Trial.RUNNING:  # a retried or resumed trial's clock starts when it runs again
                self.last_report.pop(trial.trial_id, None)
                continue
            self.any_started = True
            if now - self.last_report.setdefault(trial.trial_id, now) > self.limit():
                self._stop_hung(controller, trial)
        if not self.any_started and now - self.first_step > self.pending_timeout and not stop_reasons:
            stop_search(f"no trial could start within --pending-timeout {self.pending_timeout:g} s")
        return super().choose_trial_to_run(tune_controller)

    def _stop_hung(self, controller, trial) -> None:
        """Stop a trial as complete, at its last epoch, without caching its actor for the next trial:
        the actor is busy in the hung epoch and is killed after TUNE_FORCE_TRIAL_CLEANUP_S. Its last
        result says why (saved with the experiment state, so a resumed search keeps it), and carries
        its config: a trial that hung before its first report has no other, and its Result none."""
        trial.run_metadata.last_result["stop"] = TIMED_OUT
        trial.run_metadata.last_result.setdefault("config", trial.config)
        reuse = controller._reuse_actors
        controller._reuse_actors = False
        try:
            controller.stop_trial(trial)
        finally:
            controller._reuse_actors = reuse


def watched_asha(options: SearchOptions, grace_period: int) -> WatchedASHA:
    """The watch for a run of the search's options: ASHA over epochs up to --max-epochs with its
    first rung at `grace_period` (the search's --grace-period; --max-epochs: never stopped early)."""
    return WatchedASHA(
        pending_timeout=options.pending_timeout,
        trial_timeout=options.trial_timeout,
        time_attr="training_iteration",
        max_t=options.max_epochs,
        grace_period=grace_period,
        reduction_factor=options.reduction_factor,
    )


def _retry_refused_trial(controller, trial, success: bool) -> None:
    """TuneController._on_trial_reset, then: a trial whose reused actor did not finish its previous
    trial within TUNE_FUNCTION_THREAD_TIMEOUT_S, which Ray errors telling neither the searcher nor
    the callbacks, is retried instead, from its checkpoint, within --max-failures (it counts).
    Ray leaves such a trial staged (only a started actor unstages it), and a staged trial waits for a
    cached actor only: without the unstaging the retried trial stayed PENDING for ever, and an
    errored one kept the search from ending (tests/test_watch.py reproduces both)."""
    _ray_on_trial_reset(controller, trial, success)
    if success:
        return
    if trial in controller._staged_trials:
        controller._staged_trials.remove(trial)
        controller._actor_cache.decrease_max(trial.placement_group_factory)
    if trial.should_recover():
        controller._requeue_trial(trial)
        controller._callbacks.on_trial_recover(iteration=controller._iteration, trials=controller._trials, trial=trial)
    else:
        controller._search_alg.on_trial_complete(trial.trial_id, error=True)
        controller._callbacks.on_trial_error(iteration=controller._iteration, trials=controller._trials, trial=trial)


# Patched on the class, not the instance: Tune pickles the controller's __dict__ into every
# experiment checkpoint, and a bound closure there would make each checkpoint fail.
_ray_on_trial_reset = TuneController._on_trial_reset
TuneController._on_trial_reset = _retry_refused_trial
