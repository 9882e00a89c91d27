"""Fault injection for search.tuner: a search killed outright (SIGKILL to its whole session, as a
crash or reboot would) and resumed ends where an uninterrupted one does; a trial that fails twice
recovers from its checkpoint; a trial that always fails is recorded as errored and the search goes on."""

import dataclasses
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from ray import cloudpickle

from search import tasks
from search.cli import main
from trainables.image_classifier import fit_image_classifier

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import tests/
REPO = Path(__file__).resolve().parents[1]
NAMES = ["lr", "batch_size", "frozen_layers", "head_lr_mult", "weight_decay", "augment"]


def small_search(data, output, trials=5):
    return [
        "hotdog",
        "--data",
        str(data),
        "--output",
        str(output),
        "--trials",
        str(trials),
        "--max-epochs",
        "3",
        "--image-size",
        "32",
        "--max-concurrent",
        "1",
        "--seed",
        "7",
        "--reselect",  # the search is what is killed and resumed (test_selection resumes a selection)
        "0",
    ]


def kill_session(pid: int) -> None:
    """SIGKILL every process in the session `pid` leads: the driver and the Ray it started."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == pid:  # field 6 of /proc/PID/stat: the session id
                os.kill(int(stat.parent.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


def epochs_logged(trial_dir: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_killed_search_resumes_to_the_same_result(tiny_images, tmp_path):
    reference = tmp_path / "reference"
    assert main(small_search(tiny_images, reference)) == 0

    output = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "search", *small_search(tiny_images, output)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    finished_before = []
    try:
        for line in proc.stdout:
            if line.startswith("[1/5") or line.startswith("[2/5"):
                finished_before.append(line.split()[2])
            if len(finished_before) == 2:
                break
        time.sleep(2)  # the experiment state is saved every second
    finally:
        kill_session(proc.pid)
        proc.wait(timeout=30)
    assert len(finished_before) == 2, "the search did not get two trials done"
    assert proc.returncode == -signal.SIGKILL
    logged_before = {t: epochs_logged(output / "trials" / t) for t in finished_before}

    assert main(["resume", str(output)]) == 0
    table = pd.read_csv(output / "results.csv", dtype={"trial_id": str})
    assert len(table) == 5 and table["trial_id"].is_unique
    for trial_id, epochs in logged_before.items():
        assert epochs_logged(output / "trials" / trial_id) == epochs  # finished trials were not run again
    assert set(table["status"]) <= {"completed", "stopped early", "plateau"}

    expected = pd.read_csv(reference / "results.csv", dtype={"trial_id": str})
    # the searcher came back (same configurations) and so did ASHA's rungs (same epochs and stops)
    key = lambda t: t[[*NAMES, "epochs", "status", "best_epoch"]].sort_values("lr").reset_index(drop=True)
    pd.testing.assert_frame_equal(key(table), key(expected))
    best, best_expected = (yaml.safe_load((d / "best.yaml").read_text()) for d in (output, reference))
    assert best["hyperparameters"] == best_expected["hyperparameters"]
    assert best["metric"]["value"] == pytest.approx(best_expected["metric"]["value"])


def flaky_fit(config, settings, train, evaluation, report, resume=None, *, faults: str, fail_attempts: int):
    """The real fit, made to raise right after its epoch-`attempt` report on its first
    `fail_attempts` attempts (each attempt counted in a file under `faults`)."""
    counter = Path(faults) / "attempts"
    attempt = len(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text("x" * attempt)

    def report_then_fail(metrics, state):
        report(metrics, state)
        if attempt <= fail_attempts and metrics["epoch"] >= attempt:
            raise RuntimeError(f"injected fault on attempt {attempt}")

    return fit_image_classifier(config, settings, train, evaluation, report_then_fail, resume)


def register_flaky_task(monkeypatch, faults: Path, fail_attempts: int):
    fit = functools.partial(flaky_fit, faults=str(faults), fail_attempts=fail_attempts)
    monkeypatch.setitem(tasks.REGISTERED, "flaky", dataclasses.replace(tasks.get_task("hotdog"), name="flaky", fit=fit))


def test_trial_failing_twice_recovers_from_its_checkpoint(tiny_images, tmp_path, monkeypatch, capsys, shared_ray):
    register_flaky_task(monkeypatch, tmp_path, fail_attempts=2)
    space = tmp_path / "space.yaml"
    space.write_text("lr: 0.001\nfrozen_layers: {randint: [5, 5]}\naugment: none\n")
    args = [
        "flaky",
        "--data",
        str(tiny_images),
        "--output",
        str(tmp_path / "out"),
        "--trials",
        "1",
        "--max-epochs",
        "3",
        "--image-size",
        "32",
        "--space",
        str(space),
        "--max-failures",
        "2",
        "--patience",
        "0",
    ]
    assert main(args) == 0
    assert (tmp_path / "attempts").read_text() == "xxx"  # failed twice, succeeded on the third try
    table = pd.read_csv(tmp_path / "out" / "results.csv", dtype={"trial_id": str})
    assert table.loc[0, "status"] == "completed" and table.loc[0, "epochs"] == 3
    trial_dir = tmp_path / "out" / "trials" / table.loc[0, "trial_id"]
    assert epochs_logged(trial_dir) == [1, 2, 3]  # each retry continued from the last checkpoint
    assert capsys.readouterr().out.count("retrying from its last checkpoint") == 2


def test_trial_that_keeps_failing_is_errored_and_the_search_goes_on(
    tiny_images, tmp_path, monkeypatch, capsys, shared_ray
):
    register_flaky_task(monkeypatch, tmp_path, fail_attempts=1)  # only the first trial's first attempt fails
    args = [
        "flaky",
        "--data",
        str(tiny_images),
        "--output",
        str(tmp_path / "out"),
        "--trials",
        "3",
        "--max-epochs",
        "2",
        "--image-size",
        "32",
        "--max-concurrent",
        "1",
        "--max-failures",
        "0",
    ]
    assert main(args) == 0
    table = pd.read_csv(tmp_path / "out" / "results.csv", dtype={"trial_id": str})
    assert len(table) == 3
    errored = table[table["status"] == "errored"]
    assert len(errored) == 1 and "injected fault" in errored["error"].iloc[0]
    assert errored.index[0] == 2  # errored trials sort last
    assert (table["status"] != "errored").sum() == 2
    assert "errored" in capsys.readouterr().out


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
def test_memory_stays_flat_over_many_trials(tiny_images, tmp_path, shared_ray):
    """18 one-epoch trials through reused actors: neither the worker nor the driver keeps growing
    (each trial builds a model, an optimizer and cached features, and must let them go)."""
    driver = []
    sampling = threading.Event()

    def sample():
        while not sampling.wait(0.2):
            driver.append(resident_mb())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        code = main(
            [
                "hotdog",
                "--data",
                str(tiny_images),
                "--output",
                str(tmp_path),
                "--trials",
                "18",
                "--max-epochs",
                "1",
                "--image-size",
                "32",
                "--max-concurrent",
                "1",
                "--reselect",  # the 18 trials are what is measured; no re-runs after them
                "0",
            ]
        )
    finally:
        sampling.set()
        thread.join()
    assert code == 0
    reports = [
        json.loads(line)
        for d in (tmp_path / "trials").iterdir()
        if d.is_dir()
        for line in (d / "result.json").read_text().splitlines()
    ]
    reports.sort(key=lambda r: r["timestamp"])
    by_worker = {}
    for r in reports:
        by_worker.setdefault(r["pid"], []).append(r["rss_mb"])
    worker = max(by_worker.values(), key=len)  # the actor reused the most
    assert len(worker) >= 9, f"actors were not reused: {len(by_worker)} processes for 18 trials"
    third = len(worker) // 3
    print(
        f"worker rss first/last third: {max(worker[:third]):.0f}/{max(worker[-third:]):.0f} MB; "
        f"driver {max(driver[: len(driver) // 3]):.0f}/{max(driver[-len(driver) // 3 :]):.0f} MB"
    )
    assert max(worker[-third:]) < max(worker[:third]) + 100  # a leak of one model per trial would add ~150 MB
    assert max(driver[-len(driver) // 3 :]) < max(driver[: len(driver) // 3]) + 150


def test_best_checkpoint_is_the_best_epochs_when_kept(tmp_path):
    """best.yaml's epochs come from the smoothed score; --from-checkpoint must load that epoch's
    checkpoint when Ray kept it, and the best-ranked kept one otherwise."""
    from search.tuner import _best_checkpoint

    trial = tmp_path / "trials" / "t1"
    for name in ("checkpoint_000001", "checkpoint_000003"):
        (trial / name).mkdir(parents=True)
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4],
            "val_accuracy": [0.70, 0.90, 0.80, 0.75],
            "val_loss": [0.9, 0.3, 0.5, 0.6],
            "checkpoint_dir_name": [f"checkpoint_00000{i}" for i in range(4)],
        }
    )
    # kept: epochs 2 (index 1 -> checkpoint_000001) and 4 (checkpoint_000003)
    assert _best_checkpoint(str(trial), history, "val_accuracy", "max", tmp_path, 4) == "trials/t1/checkpoint_000003"
    assert _best_checkpoint(str(trial), history, "val_accuracy", "max", tmp_path, 2) == "trials/t1/checkpoint_000001"
    # epoch 3 was not kept: the best of the kept ones by the metric
    assert _best_checkpoint(str(trial), history, "val_accuracy", "max", tmp_path, 3) == "trials/t1/checkpoint_000001"
