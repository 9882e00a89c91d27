"""search/watch.py on a real Ray (one private Ray, 2 CPUs, for the module): a trial that hangs is
stopped at --trial-timeout and recorded as `timed out` while the search goes on (a selection re-run
too, left out of its candidate's mean); trials refused by
their reused actor (Ray's reset_config race) are retried and every trial keeps its own row and id;
a search none of whose trials can start stops at --pending-timeout and resumes once they can."""

import dataclasses
import functools
import sys
import time
from pathlib import Path

import pandas as pd
import ray
import yaml
from ray import cloudpickle

from search import selection, tasks
from search.cli import main
from trainables.image_classifier import fit_image_classifier

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import tests/


def search_args(task, data, output, *extra):
    return ["hotdog" if task is None else task, "--data", str(data), "--output", str(output), "--image-size", "32"] + [
        "--no-report",
        *extra,
    ]


def register(monkeypatch, name: str, fit) -> None:
    monkeypatch.setitem(tasks.REGISTERED, name, dataclasses.replace(tasks.get_task("hotdog"), name=name, fit=fit))


def hanging_fit(config, settings, train, evaluation, report, resume=None, *, faults: str, hang_s: float):
    """The real fit; the first trial to run hangs after its first epoch's report."""
    counter = Path(faults) / "attempts"
    attempt = len(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text("x" * attempt)

    def report_then_hang(metrics, state):
        report(metrics, state)
        if attempt == 1:
            time.sleep(hang_s)

    return fit_image_classifier(config, settings, train, evaluation, report_then_hang, resume)


def test_a_hung_trial_is_stopped_as_timed_out_and_the_search_goes_on(
    shared_ray, tiny_images, tmp_path, monkeypatch, capsys
):
    register(monkeypatch, "hangs", functools.partial(hanging_fit, faults=str(tmp_path), hang_s=600))
    monkeypatch.setenv("TUNE_FORCE_TRIAL_CLEANUP_S", "3")  # kill the stuck actor soon (default here: 30 s)
    args = ["--trials", "2", "--max-epochs", "2", "--max-concurrent", "1", "--trial-timeout", "5"]
    assert main(search_args("hangs", tiny_images, tmp_path / "out", *args)) == 0
    table = pd.read_csv(tmp_path / "out" / "results.csv", dtype={"trial_id": str}).set_index("status")
    assert sorted(table.index) == ["completed", "timed out"]
    assert table.loc["timed out", "epochs"] == 1 and table.loc["completed", "epochs"] == 2  # its last epoch kept
    assert "after 1 epoch(s), timed out" in capsys.readouterr().out


def rerun_hanging_fit(config, settings, train, evaluation, report, resume=None, *, hang_s: float):
    """The real fit, except that every selection re-run (seed search + 1000 i) hangs before its first epoch."""
    if settings.seed >= selection.SEED_STEP:
        time.sleep(hang_s)
    return fit_image_classifier(config, settings, train, evaluation, report, resume)


def test_a_hung_selection_rerun_times_out_and_is_left_out_of_the_mean(
    shared_ray, tiny_images, tmp_path, monkeypatch, capsys
):
    register(monkeypatch, "rerun-hangs", functools.partial(rerun_hanging_fit, hang_s=600))
    monkeypatch.setenv("TUNE_FORCE_TRIAL_CLEANUP_S", "3")
    args = ["--trials", "2", "--max-epochs", "1", "--max-concurrent", "1", "--trial-timeout", "5"]
    assert (
        main(
            search_args("rerun-hangs", tiny_images, tmp_path / "out", *args, "--reselect", "2", "--reselect-seeds", "1")
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("timed out: left out of its mean") == 2  # one re-run of each candidate: none hangs the search
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    for candidate in best["selection"]["candidates"]:
        assert candidate["runs"] == 1 and candidate["mean"] == candidate["scores"][0]  # the original run only


def lingering_fit(config, settings, train, evaluation, report, resume=None, *, linger_s: float):
    """The real fit, slow to let go: when its thread ends (ASHA's stop reaches it as a SystemExit in
    `report`) it keeps the thread busy for `linger_s`, as a trial does whose clean-up is slow on busy
    CPUs. Ray gives a reused actor's old thread 2 s (TUNE_FUNCTION_THREAD_TIMEOUT_S) to end, then
    refuses the reuse: the next trial fails at its start with the reset_config error."""
    try:
        return fit_image_classifier(config, settings, train, evaluation, report, resume)
    finally:
        time.sleep(linger_s)


def test_trials_refused_by_a_reused_actor_are_retried_under_their_own_ids(
    shared_ray, tiny_images, tmp_path, monkeypatch, capsys
):
    register(monkeypatch, "lingers", functools.partial(lingering_fit, linger_s=4))
    # ASHA stops trials after epoch 1 while others wait, so their actors are reused and refused; each
    # refusal counts as a failure and a retried trial may meet another lingering actor, hence 4
    args = ["--trials", "6", "--max-epochs", "2", "--max-concurrent", "2", "--max-failures", "4", "--seed", "1"]
    assert main(search_args("lingers", tiny_images, tmp_path / "out", *args, "--reselect", "0")) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "out" / "results.csv", dtype={"trial_id": str})
    folders = {d.name for d in (tmp_path / "out" / "trials").iterdir() if (d / "result.json").is_file()}
    assert len(table) == 6 and table["trial_id"].is_unique and set(table["trial_id"]) == folders
    assert "errored" not in set(table["status"])  # each refused trial ran on its retry
    assert "Trainable runner reuse requires reset_config()" in out  # the race happened ...
    assert "retrying" in out  # ... and was retried


def test_a_refused_trial_past_its_retries_is_errored_and_the_search_ends(
    shared_ray, tiny_images, tmp_path, monkeypatch
):
    register(monkeypatch, "lingers", functools.partial(lingering_fit, linger_s=4))
    args = ["--trials", "4", "--max-epochs", "1", "--max-concurrent", "2", "--max-failures", "0", "--reselect", "0"]
    assert main(search_args("lingers", tiny_images, tmp_path / "out", *args)) == 0  # ends: no trial left staged
    table = pd.read_csv(tmp_path / "out" / "results.csv", dtype={"trial_id": str})
    assert len(table) == 4 and table["trial_id"].is_unique
    refused = table[table["status"] == "errored"]
    assert len(refused) >= 1 and refused["error"].str.contains("reset_config").all()


def test_a_search_that_cannot_start_stops_at_the_pending_timeout_and_resumes(shared_ray, tiny_images, tmp_path, capsys):
    @ray.remote(num_cpus=1)
    class Holder:  # another job's work: a trial asking for both CPUs fits the node but cannot start
        def ready(self):
            return True

    holder = Holder.remote()
    ray.get(holder.ready.remote())
    address = ray.get_runtime_context().gcs_address
    args = ["--trials", "2", "--max-epochs", "1", "--cpus-per-trial", "2", "--address", address]
    assert main(search_args(None, tiny_images, tmp_path / "out", *args, "--pending-timeout", "3")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no trial could start within --pending-timeout 3 s" in err[0], err
    assert "continue with: python -m search resume" in err[0]
    ray.kill(holder)  # the other job ends
    assert main(["resume", str(tmp_path / "out")]) == 0
    assert len(pd.read_csv(tmp_path / "out" / "results.csv")) == 2


def test_a_private_ray_has_no_autoscaler(shared_ray):
    from search.options import SearchOptions
    from search.resources import cluster_can_grow

    too_big = SearchOptions(task="hotdog", output="out", cpus_per_trial=64)
    assert not cluster_can_grow(too_big)  # so it is refused, not waited for
