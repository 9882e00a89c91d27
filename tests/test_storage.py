"""--storage-path on one machine with a real private Ray: the trials go to the storage path (a
directory, or a file:// URI through pyarrow as s3:// would), the tables stay in --output, an
interrupted search resumes from there, and best.yaml's checkpoint still loads."""

import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from search.cli import main


def search_args(data, output, storage, *extra):
    return [
        "hotdog",
        "--data",
        str(data),
        "--output",
        str(output),
        "--storage-path",
        str(storage),
        "--image-size",
        "32",
        "--max-epochs",
        "2",
        "--seed",
        "3",
        *extra,
    ]


def interrupt_after_first_trial(results: Path) -> threading.Thread:
    """Ctrl-C this process (the search's graceful stop) once a trial is in results.csv."""

    def watch():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not results.is_file():
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_trials_go_to_the_storage_path_and_the_search_resumes(tiny_images, tmp_path, capsys, shared_ray):
    output, store = tmp_path / "out", tmp_path / "store"
    watcher = interrupt_after_first_trial(output / "results.csv")
    assert main(search_args(tiny_images, output, store, "--trials", "3", "--max-concurrent", "1", "--no-report")) == 130
    watcher.join()
    assert "continue with: python -m search resume" in capsys.readouterr().err
    assert not (output / "trials").exists()  # Ray's experiment is only under the storage path
    assert yaml.safe_load((output / "search.yaml").read_text())["storage_path"] == str(store)

    assert main(["resume", str(output)]) == 0
    table = pd.read_csv(output / "results.csv", dtype={"trial_id": str})
    assert len(table) == 3 and table["trial_id"].is_unique
    assert {d.name for d in (store / "trials").iterdir() if (d / "result.json").is_file()} == set(table["trial_id"])
    best = yaml.safe_load((output / "best.yaml").read_text())
    assert Path(best["checkpoint"]).is_absolute() and Path(best["checkpoint"]).is_relative_to(store / "trials")
    assert main(["train", str(output / "best.yaml"), "--from-checkpoint"]) == 0
    assert (output / "final-checkpoint" / "metrics.json").is_file()
    assert (output / "report" / "curves.png").is_file()  # the report read the trials under the storage path


def test_a_uri_storage_path_keeps_a_uri_checkpoint(tiny_images, tmp_path, shared_ray):
    output, store = tmp_path / "out", tmp_path / "bucket"
    uri = f"file://{store}"  # pyarrow's local filesystem behind a URI: the code path s3:// and gs:// take
    assert main(search_args(tiny_images, output, uri, "--trials", "2", "--no-report")) == 0
    best = yaml.safe_load((output / "best.yaml").read_text())
    assert best["checkpoint"].startswith(f"{uri}/trials/")
    assert (store / best["checkpoint"].removeprefix(f"{uri}/")).is_dir()
    assert main(["train", str(output / "best.yaml"), "--from-checkpoint"]) == 0  # fetched through the URI


@pytest.mark.parametrize(
    "storage, expected",
    [
        ("nosuchscheme://bucket/path", "--storage-path nosuchscheme://bucket/path: "),
        ("{held}", "already holds a search's trials; pass --overwrite"),
    ],
)
def test_bad_storage_path_is_refused_and_nothing_written(tiny_images, tmp_path, capsys, storage, expected):
    held = tmp_path / "held"
    (held / "trials").mkdir(parents=True)
    output = tmp_path / "out"
    assert main(search_args(tiny_images, output, storage.format(held=held), "--trials", "1")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err
    assert not output.exists()
