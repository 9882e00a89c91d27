"""Trial checkpoints through Ray Tune: every epoch's report carries a checkpoint (model, optimizer,
epoch, plateau counters), and a restarted or resumed trial continues from the latest one. Ray keeps
the best and the latest per trial (see search/tuner.py's CheckpointConfig).
"""

import tempfile
from collections.abc import Callable
from pathlib import Path

import ray
import torch
from ray import tune

from trainables.basics import is_uri

STATE_FILE = "state.pt"


def report_with_checkpoint(metrics: dict, state: Callable[[], dict]) -> None:
    """The trainables' `report`: one tune.report per epoch with the state saved beside it."""
    metrics = {**metrics, "node_id": ray.get_runtime_context().get_node_id()}  # where it ran, on a cluster
    with tempfile.TemporaryDirectory() as folder:
        torch.save(state(), Path(folder) / STATE_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def load_state(folder: str | Path) -> dict:
    if is_uri(folder):  # a checkpoint in cloud storage (--storage-path s3://...): fetch it first
        with tune.Checkpoint(str(folder)).as_directory() as local:
            return load_state(local)
    return torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)


def latest_state() -> dict | None:
    """The state of this trial's latest checkpoint, or None for a fresh trial."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return load_state(folder)
