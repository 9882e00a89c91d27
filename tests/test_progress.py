"""search.progress: ASHA's rungs survive a save and restore through the callback's state, and the
mechanism resume relies on holds: a callback and scheduler unpickled from one blob (as Tune's
tuner.pkl is) stay linked, so set_state on the callback refills the scheduler Tune uses."""

from types import SimpleNamespace

from ray import cloudpickle
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from search.progress import SearchProgress, asha_state, restore_asha


def scheduler() -> ASHAScheduler:
    return ASHAScheduler(
        time_attr="training_iteration", metric="val_accuracy", mode="max", max_t=8, grace_period=1, reduction_factor=2
    )


def feed(sched: ASHAScheduler, scores: list[float]) -> None:
    for i, score in enumerate(scores):
        trial = SimpleNamespace(trial_id=f"t{i}")
        sched.on_trial_add(None, trial)
        sched.on_trial_result(None, trial, {"training_iteration": 1, "val_accuracy": score})


def decision(sched: ASHAScheduler, score: float) -> str:
    newcomer = SimpleNamespace(trial_id="new")
    sched.on_trial_add(None, newcomer)
    return sched.on_trial_result(None, newcomer, {"training_iteration": 1, "val_accuracy": score})


def test_asha_rungs_round_trip():
    original = scheduler()
    feed(original, [0.9, 0.5, 0.7, 0.6])
    restored = scheduler()
    restore_asha(restored, asha_state(original))
    assert asha_state(restored) == asha_state(original)
    assert decision(restored, 0.55) == TrialScheduler.STOP  # below the median of the recorded rung
    assert decision(scheduler(), 0.55) == TrialScheduler.CONTINUE  # an empty ASHA lets it through


def test_callback_state_refills_the_scheduler_tune_restores(tmp_path):
    live = scheduler()
    progress = SearchProgress(4, "val_accuracy", "max", ["lr"], 8, live, write_partial=lambda rows: None)
    blob = cloudpickle.dumps({"scheduler": live, "callbacks": [progress]})  # tuner.pkl, written before any trial
    feed(live, [0.9, 0.5, 0.7, 0.6])
    saved = progress.get_state()  # what Tune saves with every experiment checkpoint

    restored = cloudpickle.loads(blob)  # Tuner.restore: scheduler and callback come back empty, together
    restored["callbacks"][0].set_state(saved)
    assert asha_state(restored["scheduler"]) == asha_state(live)
    assert decision(restored["scheduler"], 0.55) == TrialScheduler.STOP


def test_partial_rows_follow_finished_trials():
    written = []
    progress = SearchProgress(2, "val_accuracy", "max", ["lr"], 3, scheduler(), write_partial=written.append)
    trial = SimpleNamespace(trial_id="a", config={"lr": 0.1}, error_file=None)
    for epoch, score in enumerate([0.6, 0.8, 0.7], start=1):
        progress.on_trial_result(
            0,
            [],
            trial,
            {"val_accuracy": score, "epoch": epoch, "val_loss": 1.0 / epoch, "stop": "", "time_total_s": float(epoch)},
        )
    progress.on_trial_complete(0, [], trial)
    (rows,) = written
    assert [r["trial_id"] for r in rows] == ["a"] and rows[0]["config"] == {"lr": 0.1}
    assert rows[0]["history"]["val_accuracy"].tolist() == [0.6, 0.8, 0.7]


def finish_two(progress: SearchProgress) -> None:
    """Two trials: one starts, reports twice and completes while the other runs."""
    a = SimpleNamespace(trial_id="a", config={"lr": 0.1}, error_file=None, status="RUNNING")
    b = SimpleNamespace(trial_id="b", config={"lr": 0.2}, error_file=None, status="RUNNING")
    progress.on_trial_start(0, [a, b], a)
    for epoch, score in enumerate([0.6, 0.8], start=1):
        progress.on_trial_result(
            0, [a, b], a, {"val_accuracy": score, "epoch": epoch, "val_loss": 0.5, "time_total_s": 1.0 * epoch}
        )
    a.status = "TERMINATED"
    progress.on_trial_complete(0, [a, b], a)
    progress.on_experiment_end([a, b])


def make_progress(quiet=False, live=False) -> SearchProgress:
    progress = SearchProgress(2, "val_accuracy", "max", ["lr"], 2, scheduler(), lambda rows: None, quiet=quiet)
    progress.live = live  # as sys.stdout.isatty() would say
    return progress


def test_a_terminal_gets_one_live_line(capsys):
    progress = make_progress(live=True)
    finish_two(progress)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.endswith("\n")  # rewritten in place, ended once
    last = out.rstrip().split("\r")[-1]
    assert last.startswith("trials 1/2 done, 1 running, best val_accuracy 0.8000, ") and last.endswith("s")
    assert "\r" + "trials 0/2 done, 2 running, no score yet" in out


def test_plain_output_gets_a_line_per_trial_and_quiet_nothing(capsys):
    finish_two(make_progress(live=False))
    (line,) = capsys.readouterr().out.splitlines()
    assert "] a  lr=0.1  val_accuracy=0.8000 after 2 epoch(s), completed" in line and "\r" not in line
    finish_two(make_progress(quiet=True, live=True))
    assert capsys.readouterr().out == ""
