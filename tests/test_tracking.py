"""search.tracking: a real search with --mlflow against a local file store logs one MLflow run per
trial (its parameters, each epoch's metrics, FINISHED and results.csv's status), TensorBoard's event
files are still written, and `search train` adds its run to the same experiment; without MLflow,
--mlflow is one line naming the extra."""

import json
import sys

import pandas as pd
import pytest
import yaml

from search.cli import main
from search.tracking import check_tracking, tracking_uri, trial_status
from trainables.basics import UserError

mlflow = pytest.importorskip("mlflow")  # the track extra (CI installs it)


def test_uris_and_statuses():
    assert tracking_uri("file:/tmp/x") == "file:/tmp/x" and tracking_uri("http://h:5000") == "http://h:5000"
    assert tracking_uri("databricks") == "databricks" and tracking_uri("/tmp/m") == "file:///tmp/m"
    assert trial_status({"epoch": 3, "stop": ""}, False, 3) == "completed"
    assert trial_status({"epoch": 1}, False, 3) == "stopped early"
    assert trial_status({"epoch": 1, "stop": "timed out"}, False, 3) == "timed out"
    assert trial_status(None, True, 3) == "errored"


def test_a_uri_mlflow_cannot_use_is_one_line():
    with pytest.raises(UserError, match=r"--mlflow http://127.0.0.1:9: MLflow cannot use it \(API request"):
        check_tracking("http://127.0.0.1:9")  # nothing listens on port 9: refused at once, not after retries


def test_missing_mlflow_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    out = tmp_path / "out"
    assert main(["hotdog", "--data", str(tmp_path), "--output", str(out), "--mlflow", f"file:{tmp_path}/m"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "search: error: --mlflow needs MLflow, which is not installed: pip install -e '.[track]' (the track extra)"
    )
    assert not out.exists()  # refused before anything was written


@pytest.mark.slow
def test_trials_and_the_final_run_are_read_back(tiny_images, tmp_path):
    from mlflow.tracking import MlflowClient

    uri, out = f"file:{tmp_path / 'mlruns'}", tmp_path / "tracked"
    argv = ["hotdog", "--data", str(tiny_images), "--output", str(out), "--trials", "2", "--max-epochs", "2"]
    argv += ["--image-size", "32", "--max-concurrent", "1", "--no-report", "--reselect", "0", "--mlflow", uri]
    assert main(argv) == 0
    assert yaml.safe_load((out / "search.yaml").read_text())["mlflow"] == uri  # resume and `search train` see it
    table = pd.read_csv(out / "results.csv").set_index("trial_id")

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tracked")  # named after the output folder
    runs = {r.data.tags["trial_id"]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == set(table.index)
    for trial_id, run in runs.items():
        row = table.loc[trial_id]
        assert run.info.status == "FINISHED" and run.data.tags["status"] == row["status"]
        assert float(run.data.params["lr"]) == pytest.approx(row["lr"]) and run.data.params["batch_size"] == str(
            row["batch_size"]
        )
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == list(range(1, row["epochs"] + 1))
        assert "config/lr" not in run.data.metrics and "pid" not in run.data.metrics  # the trial's own metrics
        assert list((out / "trials" / trial_id).glob("events.out.tfevents*"))  # TensorBoard still gets them

    assert main(["train", str(out / "best.yaml")]) == 0  # --mlflow from the search's search.yaml
    metrics = json.loads((out / "final" / "metrics.json").read_text())
    (final,) = client.search_runs([experiment.experiment_id], filter_string="tags.`search.kind` = 'final'")
    assert final.info.status == "FINISHED"
    assert final.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert len(client.get_metric_history(final.info.run_id, "train_loss")) == metrics["epochs"]
    assert final.data.params["lr"] == str(yaml.safe_load((out / "best.yaml").read_text())["hyperparameters"]["lr"])
    assert {a.path for a in client.list_artifacts(final.info.run_id)} == {"model.yaml", "metrics.json"}


class Trial:
    """What the callback reads of a Tune trial (hashable, as Tune's are)."""

    def __init__(self, trial_id: str):
        self.trial_id, self.config, self.last_result = trial_id, {"lr": 0.1, "batch_size": 16}, {}

    def __str__(self) -> str:
        return self.trial_id


def test_a_resumed_trial_continues_its_run(tmp_path):
    from mlflow.tracking import MlflowClient
    from ray import cloudpickle

    from search.tracking import search_callbacks

    uri, trial = f"file:{tmp_path / 'mlruns'}", Trial("t_00000")
    (callback,) = search_callbacks(uri, tmp_path / "out", max_epochs=2)
    pickled = cloudpickle.dumps(callback)  # tuner.pkl holds it as it was before the search started
    callback.setup()
    callback.log_trial_start(trial)
    callback.log_trial_result(1, trial, {"training_iteration": 1, "epoch": 1, "val_accuracy": 0.5, "pid": 7})

    restored = cloudpickle.loads(pickled)  # the search was killed; `search resume` restores the callback
    restored.setup()
    restored.log_trial_start(trial)
    trial.last_result = {"training_iteration": 2, "epoch": 2, "val_accuracy": 0.75, "stop": ""}
    restored.log_trial_result(2, trial, trial.last_result)
    restored.log_trial_end(trial)

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("out").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["status"] == "completed"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [0.5, 0.75]
    assert "pid" not in run.data.metrics and run.data.params == {"lr": "0.1", "batch_size": "16"}
