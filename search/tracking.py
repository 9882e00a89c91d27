"""--mlflow URI: every trial of a search as an MLflow run (its configuration as parameters, each
epoch's metrics, FINISHED or FAILED and the results table's status as a tag) through Ray Tune's
MLflowLoggerCallback on the driver, and `search train` as one more run in the same experiment
(named after the search's output folder) with the test metrics and model.yaml, metrics.json.
MLflow is the optional `track` extra: asked for without it, one line says how to install it.
"""

import math
import os
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from trainables.basics import UserError

KEPT_AUTO = ("training_iteration", "time_total_s")  # of the keys Ray adds to each report, the ones worth a curve


def require_mlflow():
    try:
        import mlflow
    except ImportError:
        raise UserError(
            "--mlflow needs MLflow, which is not installed: pip install -e '.[track]' (the track extra)"
        ) from None
    return mlflow


def check_tracking(uri: str) -> None:
    """Refuse, in one line and within seconds, a URI MLflow cannot use (a server that is down, a
    scheme it does not know), before the search starts."""
    require_mlflow()
    from mlflow.tracking import MlflowClient

    allow_file_store(uri)
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}  # not MLflow's minutes
    saved = {name: os.environ.get(name) for name in quick}
    os.environ.update(quick)
    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as e:  # MLflow raises many kinds (its own, requests', the store's)
        lines = [line for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        raise UserError(f"--mlflow {uri}: MLflow cannot use it ({lines[0][:200]})") from None
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def tracking_uri(uri: str) -> str:
    """The URI as given, but a plain local path made an absolute file: URI (a resumed search or
    `search train` may run from another folder)."""
    uri = str(uri).strip()
    if ":" in uri.split("/")[0] or uri == "databricks":  # has a scheme: file:, sqlite:, http:, databricks...
        return uri
    return Path(uri).expanduser().resolve().as_uri()


def allow_file_store(uri: str) -> None:
    # MLflow 3 refuses its file store unless this is set; a file: URI given to --mlflow asks for it
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def experiment_name(output: Path) -> str:
    """The MLflow experiment of a search and of its `search train` runs: the output folder's name."""
    return Path(output).expanduser().resolve().name


def search_callbacks(uri: str | None, output: Path, max_epochs: int) -> list:
    """The search's tracking callbacks: none without --mlflow."""
    if not uri:
        return []
    require_mlflow()
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class TrialRuns(MLflowLoggerCallback):
        """Ray's callback, with the file store allowed, the trial id and output folder as tags, only
        the trial's own metrics (not Ray's bookkeeping), the results table's status at the end, and
        a resumed trial continuing its run (Tune restores this callback, but not its run ids)."""

        def setup(self, *args, **kwargs):
            allow_file_store(self.tracking_uri)
            super().setup(*args, **kwargs)

        def log_trial_start(self, trial):
            if trial not in self._trial_runs:  # a resumed search: the trial's run from before, if any
                found = self.mlflow_util._get_client().search_runs(
                    [self.mlflow_util.experiment_id], f"tags.trial_id = '{trial.trial_id}'", max_results=1
                )
                if found:
                    self._trial_runs[trial] = found[0].info.run_id
                    self.mlflow_util._get_client().update_run(found[0].info.run_id, status="RUNNING")
            self.tags = {**(self.tags or {}), "trial_id": trial.trial_id}
            super().log_trial_start(trial)

        def log_trial_result(self, iteration, trial, result):
            super().log_trial_result(iteration, trial, own_metrics(result))

        def log_trial_end(self, trial, failed=False):
            run_id = self._trial_runs.get(trial)
            if run_id is not None:
                status = trial_status(getattr(trial, "last_result", None), failed, max_epochs)
                self.mlflow_util._get_client().set_tag(run_id, "status", status)
            super().log_trial_end(trial, failed)

    return [TrialRuns(uri, experiment_name=experiment_name(output), tags={"search.output": str(output)})]


def own_metrics(result: dict) -> dict:
    from ray.tune.result import AUTO_RESULT_KEYS

    return {k: v for k, v in result.items() if k not in AUTO_RESULT_KEYS or k in KEPT_AUTO}


def trial_status(last: dict | None, failed: bool, max_epochs: int) -> str:
    """As results.csv says it (search/results.py trial_row): errored, the loop's or the driver's stop
    reason, completed (every epoch), or stopped early (by ASHA)."""
    last = last or {}
    if failed:
        return "errored"
    if isinstance(last.get("stop"), str) and last["stop"]:
        return last["stop"]
    return "completed" if last.get("epoch", 0) >= max_epochs else "stopped early"


def saved_uri(search_folder: Path) -> str | None:
    """The --mlflow the search in `search_folder` ran with (its search.yaml), for `search train`."""
    try:
        saved = yaml.safe_load((Path(search_folder) / "search.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return saved.get("mlflow") if isinstance(saved, dict) else None


class FinalRun:
    """`search train`'s MLflow run: epochs as they finish, then the test metrics and the files."""

    def __init__(self, client, run_id: str):
        self.client, self.run_id = client, run_id

    def epoch(self, row: dict) -> None:
        self._metrics(row, step=int(row.get("epoch", 0)))

    def finish(self, metrics: dict, output: Path) -> None:
        tested = {k: v for k, v in metrics.items() if k.startswith("test_") or k == "seconds"}
        self._metrics(tested, step=int(metrics.get("epochs") or 0))
        for name in ("model.yaml", "metrics.json"):
            if (Path(output) / name).is_file():
                self.client.log_artifact(self.run_id, str(Path(output) / name))

    def _metrics(self, values: dict, step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(1000 * time.time())
        numbers = [
            Metric(k, float(v), stamp, step)
            for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and k != "epoch"
        ]
        if numbers:
            self.client.log_batch(self.run_id, metrics=numbers)


@contextmanager
def final_run(uri: str | None, search_folder: Path, doc: dict, output: Path):
    """An MLflow run around `search train` (FINISHED, or FAILED if it raised), or None without a URI."""
    if not uri:
        yield None
        return
    uri = tracking_uri(uri)
    check_tracking(uri)  # MLflow is there and the URI works, or one line
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    name = experiment_name(search_folder)
    found = client.get_experiment_by_name(name)
    experiment = found.experiment_id if found else client.create_experiment(name)
    tags = {"search.kind": "final", "search.output": str(output), "task": doc.get("task", "")}
    run = client.create_run(experiment, run_name=f"search train {Path(output).name}", tags=tags)
    params = [Param(k, str(v)[:6000]) for k, v in doc.get("hyperparameters", {}).items()]  # 6000: MLflow's limit
    client.log_batch(run.info.run_id, params=params)
    try:
        yield FinalRun(client, run.info.run_id)
    except BaseException:
        client.set_terminated(run.info.run_id, "FAILED")
        raise
    client.set_terminated(run.info.run_id, "FINISHED")
